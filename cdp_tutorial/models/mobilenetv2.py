"""The CIFAR MobileNetV2: kuangliu's strides, the original paper's identity residuals."""

from __future__ import annotations

import keras
from keras import layers

from cdp_tutorial.models.common import (bn_relu, check_ties, classifier, conv, depth_order, resolve_drops,
                                        resolve_widths, start)

__all__ = ["MOBILENETV2_CFG", "MOBILENETV2_DEPTH_ORDER", "mobilenetv2"]

# MobileNetV2 (expansion t, output channels c, repeats n, first stride s). The CIFAR variant keeps
# stride 1 in the stem and in the 24-channel stage, so the last feature map is 4x4, not 1x1.
MOBILENETV2_CFG = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2),
                   (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _mobilenetv2_blocks():
    """Yield ``(index, t, out_channels, stride, in_channels, has_add)`` for blocks 1-17."""
    index, in_channels = 0, 32
    for t, c, n, s in MOBILENETV2_CFG:
        for repeat in range(n):
            index += 1
            stride = s if repeat == 0 else 1
            # Identity residual only where shapes match in the unpruned network (as in the paper and
            # keras.applications). The structure never depends on `widths`: ties keep shapes equal.
            yield index, t, c, stride, in_channels, stride == 1 and in_channels == c
            in_channels = c


def _stages() -> list[list[tuple[int, bool]]]:
    """Per configuration row, its blocks as ``(index, has_add)``."""
    stages, blocks = [], list(_mobilenetv2_blocks())
    start_index = 0
    for _, _, n, _ in MOBILENETV2_CFG:
        stages.append([(i, has_add) for i, *_, has_add in blocks[start_index:start_index + n]])
        start_index += n
    return stages


# Blocks with an identity residual keep their input's shape, so they can be dropped.
MOBILENETV2_DEPTH_ORDER = depth_order(
    [[f"block{i}" for i, has_add in stage if has_add] for stage in _stages()],
    [sum(not has_add for _, has_add in stage) for stage in _stages()])


def _mobilenetv2_layout(drops=frozenset()):
    """Return ``(defaults, ties)``: every built Conv2D's unpruned width and the Add-tied groups."""
    defaults = {"conv1": 32}
    ties = []
    previous = "conv1"
    for i, t, c, _, in_channels, has_add in _mobilenetv2_blocks():
        if f"block{i}" in drops:
            continue
        if t != 1:
            defaults[f"block{i}_expand"] = t * in_channels
        defaults[f"block{i}_project"] = c
        if has_add:
            # The Add joins this block's projection with its input, the previous projection.
            if ties and ties[-1][-1] == previous:
                ties[-1].append(f"block{i}_project")
            else:
                ties.append([previous, f"block{i}_project"])
        previous = f"block{i}_project"
    defaults["conv_last"] = 1280
    return defaults, ties


def mobilenetv2(num_classes=10, input_shape=(32, 32, 3), widths=None, width_multiplier=1.0, name=None,
                drop_blocks=None):
    """Build the CIFAR MobileNetV2: kuangliu's strides, the original paper's identity residuals.

    Stem ``conv1`` (3x3, 32, stride 1) ``bn1`` ``relu1``, then 17 inverted-residual blocks
    ``block1`` ... ``block17`` with (expansion t, channels c, repeats n, stride s) = (1,16,1,1),
    (6,24,2,1), (6,32,3,2), (6,64,4,2), (6,96,3,1), (6,160,3,2), (6,320,1,1). Block ``i`` is
    ``block{i}_expand/_expand_bn/_expand_relu`` (1x1 to t x input channels; absent when t = 1),
    ``block{i}_depthwise/_depthwise_bn/_depthwise_relu`` (3x3 DepthwiseConv2D, carries the stride),
    ``block{i}_project/_project_bn`` (1x1, linear) and ``block{i}_add`` when the stride is 1 and
    input and output channels match (10 blocks). Then ``conv_last`` (1x1, 1280) ``conv_last_bn``
    ``conv_last_relu``, ``avg_pool`` (4x4 -> 1x1) and ``predictions``. All activations are ReLU6.

    Strides follow ``kuangliu/pytorch-cifar`` (stride 1 in the stem and the 24-channel stage, so
    the last feature map is 4x4); the residuals follow the paper and ``keras.applications``
    (kuangliu adds 1x1 conv shortcuts where channels change, which are not in the original design).

    An expand conv's width defaults to t x its block's actual input channels (after
    ``width_multiplier`` and ``widths``), unless ``widths`` names it. The projections joined by an
    Add (for example ``block4_project``, ``block5_project``, ``block6_project``) must keep equal
    widths. Unlike ``keras.applications``, ``width_multiplier`` also scales ``conv_last`` and does
    not round widths to multiples of 8.

    With 10 classes: 2,270,794 parameters from ``count_params()`` (this includes the BatchNorm
    moving statistics; 2,236,682 trainable) and 87,976,448 MACs per 32x32x3 image
    (87,963,648 in the convs). The parameter count equals that of
    ``keras.applications.MobileNetV2(alpha=1.0, classes=10, weights=None)``: the layers are the
    same, only the strides differ.

    Parameters
    ----------
    num_classes : int, default 10
        Number of output classes.
    input_shape : tuple of int, default (32, 32, 3)
        Image shape.
    widths : mapping, optional
        ``{"block5_expand": 96, ...}`` overrides the filters of the named Conv2D layers
        (``conv1``, ``block{i}_expand``, ``block{i}_project``, ``conv_last``); depthwise convs have
        no width of their own. Overrides are not scaled by ``width_multiplier``.
    width_multiplier : float, default 1.0
        Scales every Conv2D width to ``max(1, round(w * width_multiplier))``; must be > 0.
    name : str, optional
        Model name (default ``"mobilenetv2"``).
    drop_blocks : collection of str, optional
        Inverted-residual blocks to leave out (the *depth* dimension), e.g. ``["block16"]``: only
        the 10 blocks with an identity residual (``block3``, ``block5``, ``block6``, ``block8``,
        ``block9``, ``block10``, ``block12``, ``block13``, ``block15``, ``block16``). The remaining
        blocks keep their names. :data:`MOBILENETV2_DEPTH_ORDER` is the order depth shrinking uses.

    Returns
    -------
    keras.Model
        An uncompiled functional model with a softmax output of ``num_classes``.

    Examples
    --------
    >>> model = mobilenetv2(widths={"block1_project": 8})
    >>> model.get_layer("block2_expand").filters
    48
    >>> mobilenetv2(drop_blocks=["block16"]).get_layer("block17_expand").input.shape
    (None, 4, 4, 160)
    """
    droppable = [f"block{i}" for i, *_, has_add in _mobilenetv2_blocks() if has_add]
    drops = resolve_drops("mobilenetv2", drop_blocks, droppable)
    defaults, ties = _mobilenetv2_layout(drops)
    resolved = resolve_widths("mobilenetv2", defaults, widths, width_multiplier)
    check_ties("mobilenetv2", resolved, ties)
    given = set(widths or ())

    inputs = start(num_classes, input_shape)
    x = conv(inputs, resolved["conv1"], 3, name="conv1")
    x = bn_relu(x, "bn1", "relu1", max_value=6.0)
    channels = resolved["conv1"]
    for i, t, _, stride, _, has_add in _mobilenetv2_blocks():
        if f"block{i}" in drops:
            continue
        block_input = x
        if t != 1:
            expand = f"block{i}_expand"
            filters = resolved[expand] if expand in given else t * channels
            x = conv(x, filters, 1, name=expand)
            x = bn_relu(x, f"{expand}_bn", f"{expand}_relu", max_value=6.0)
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                   depthwise_initializer="he_normal", name=f"block{i}_depthwise")(x)
        x = bn_relu(x, f"block{i}_depthwise_bn", f"block{i}_depthwise_relu", max_value=6.0)
        channels = resolved[f"block{i}_project"]
        # Linear bottleneck: no activation after the projection.
        x = conv(x, channels, 1, name=f"block{i}_project")
        x = bn_relu(x, f"block{i}_project_bn")
        if has_add:
            x = layers.Add(name=f"block{i}_add")([block_input, x])
    x = conv(x, resolved["conv_last"], 1, name="conv_last")
    x = bn_relu(x, "conv_last_bn", "conv_last_relu", max_value=6.0)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, classifier(x, num_classes), name=name or "mobilenetv2")

