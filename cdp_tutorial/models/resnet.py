"""The CIFAR ResNet-50 of ``kuangliu/pytorch-cifar`` with ``keras.applications`` layer names."""

from __future__ import annotations

import keras
from keras import layers

from cdp_tutorial.models.common import (bn_relu, check_ties, classifier, conv, depth_order, resolve_drops,
                                        resolve_widths, start)

__all__ = ["RESNET50_DEPTH_ORDER", "RESNET50_STAGES", "RESNET_EXPANSION", "resnet50"]

# ResNet-50: (stage, blocks, bottleneck width, stride of the stage's first block).
RESNET50_STAGES = ((2, 3, 64, 1), (3, 4, 128, 2), (4, 6, 256, 2), (5, 3, 512, 2))
RESNET_EXPANSION = 4

# Every bottleneck but a stage's first (which changes width and stride through its projection)
# adds its own input, so it can be dropped without changing any shape.
RESNET50_DEPTH_ORDER = depth_order(
    [[f"conv{stage}_block{b}" for b in range(2, blocks + 1)] for stage, blocks, _, _ in RESNET50_STAGES],
    [1] * len(RESNET50_STAGES))


def _resnet50_layout(drops=frozenset()):
    """Return ``(defaults, ties)``: every built conv's unpruned width and the Add-tied groups."""
    defaults = {"conv1": 64}
    ties = []
    for stage, blocks, planes, _ in RESNET50_STAGES:
        out = planes * RESNET_EXPANSION
        defaults[f"conv{stage}_block1_0_conv"] = out
        kept = [b for b in range(1, blocks + 1) if f"conv{stage}_block{b}" not in drops]
        for b in kept:
            prefix = f"conv{stage}_block{b}"
            defaults.update({f"{prefix}_1_conv": planes, f"{prefix}_2_conv": planes, f"{prefix}_3_conv": out})
        # Block 1 adds its projection shortcut to its 3rd conv; every later block adds the previous
        # block's output to its own 3rd conv, so all of them carry one stage-wide channel count.
        ties.append([f"conv{stage}_block1_0_conv"] + [f"conv{stage}_block{b}_3_conv" for b in kept])
    return defaults, ties


def resnet50(num_classes=10, input_shape=(32, 32, 3), widths=None, width_multiplier=1.0, name=None,
             drop_blocks=None):
    """Build the CIFAR ResNet-50 of ``kuangliu/pytorch-cifar`` with ``keras.applications`` layer names.

    Stem ``conv1`` (3x3, 64, stride 1) ``bn1`` ``relu1`` and no max-pool, so stage 2 sees 32x32.
    Four stages ``conv2`` ... ``conv5`` of 3, 4, 6, 3 bottleneck blocks with widths 64, 128, 256, 512
    and expansion 4 (stage outputs 256, 512, 1024, 2048 channels); stages 3-5 halve the resolution
    with stride 2 on the first block's 3x3 conv (32 -> 16 -> 8 -> 4). Block ``b`` of stage ``s`` is
    ``conv{s}_block{b}_1_conv/_1_bn/_1_relu`` (1x1), ``_2_conv/_2_bn/_2_relu`` (3x3),
    ``_3_conv/_3_bn`` (1x1, 4x wider), ``_add`` and ``_out`` (ReLU). Block 1 of every stage has a
    projection shortcut ``conv{s}_block1_0_conv/_0_bn`` (1x1); the others add their input.
    Then ``avg_pool`` (global average) and ``predictions``. 53 Conv2D layers, 16 Add layers.

    The convs feeding one stage's Add layers (``_0_conv`` and every ``_3_conv`` of the stage) must
    keep equal widths: ``width_multiplier`` scales them together, and ``widths`` that set them
    differently raise ValueError.

    With 10 classes: 23,573,962 parameters from ``count_params()`` (this includes the BatchNorm
    moving statistics; 23,520,842 trainable) and 1,297,829,888 MACs per 32x32x3 image
    (1,297,809,408 in the convs).

    Parameters
    ----------
    num_classes : int, default 10
        Number of output classes.
    input_shape : tuple of int, default (32, 32, 3)
        Image shape.
    widths : mapping, optional
        ``{"conv3_block2_1_conv": 64, ...}`` overrides the filters of the named conv layers.
        Overrides are not scaled by ``width_multiplier``.
    width_multiplier : float, default 1.0
        Scales every conv width to ``max(1, round(w * width_multiplier))``; must be > 0.
    name : str, optional
        Model name (default ``"resnet50"``).
    drop_blocks : collection of str, optional
        Bottlenecks to leave out (the *depth* dimension), e.g. ``["conv4_block6"]``: any block but
        the first of a stage. The remaining blocks keep their names (``conv4_block5`` is followed
        by the ``conv5`` stage). :data:`RESNET50_DEPTH_ORDER` is the order depth shrinking uses.

    Returns
    -------
    keras.Model
        An uncompiled functional model with a softmax output of ``num_classes``.

    Examples
    --------
    >>> model = resnet50(width_multiplier=0.5)
    >>> model.get_layer("conv5_block3_out").output.shape
    (None, 4, 4, 1024)
    >>> RESNET50_DEPTH_ORDER[:3]  # EdgeCompress's depth 0.8: (3, 4, 6, 3) -> (3, 3, 4, 3) blocks
    ('conv4_block6', 'conv4_block5', 'conv3_block4')
    """
    drops = resolve_drops("resnet50", drop_blocks, sorted(RESNET50_DEPTH_ORDER))
    defaults, ties = _resnet50_layout(drops)
    resolved = resolve_widths("resnet50", defaults, widths, width_multiplier)
    check_ties("resnet50", resolved, ties)

    inputs = start(num_classes, input_shape)
    x = conv(inputs, resolved["conv1"], 3, name="conv1")
    x = bn_relu(x, "bn1", "relu1")
    for stage, blocks, _, stage_stride in RESNET50_STAGES:
        for b in range(1, blocks + 1):
            prefix = f"conv{stage}_block{b}"
            if prefix in drops:
                continue
            strides = stage_stride if b == 1 else 1
            if b == 1:
                shortcut = conv(x, resolved[f"{prefix}_0_conv"], 1, name=f"{prefix}_0_conv", strides=strides)
                shortcut = bn_relu(shortcut, f"{prefix}_0_bn")
            else:
                shortcut = x
            y = conv(x, resolved[f"{prefix}_1_conv"], 1, name=f"{prefix}_1_conv")
            y = bn_relu(y, f"{prefix}_1_bn", f"{prefix}_1_relu")
            # The stride sits on the 3x3 conv, as in kuangliu (torchvision's "ResNet v1.5").
            y = conv(y, resolved[f"{prefix}_2_conv"], 3, name=f"{prefix}_2_conv", strides=strides)
            y = bn_relu(y, f"{prefix}_2_bn", f"{prefix}_2_relu")
            y = conv(y, resolved[f"{prefix}_3_conv"], 1, name=f"{prefix}_3_conv")
            y = bn_relu(y, f"{prefix}_3_bn")
            x = layers.Add(name=f"{prefix}_add")([shortcut, y])
            x = layers.ReLU(name=f"{prefix}_out")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, classifier(x, num_classes), name=name or "resnet50")

