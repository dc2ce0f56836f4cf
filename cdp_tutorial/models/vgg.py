"""The CIFAR VGG-16 with BatchNorm of the filter-pruning literature (13 conv + 3 fully connected)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from cdp_tutorial.models.common import bn_relu, classifier, conv, depth_order, resolve_drops, resolve_widths, start

__all__ = ["VGG16_CFG", "VGG16_DEPTH_ORDER", "vgg16"]

# VGG-16 with BN as in the CIFAR pruning literature; "M" is a 2x2 max-pool.
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def _stages() -> list[list[str]]:
    """Conv layer names per stage (the convs between two pools)."""
    stages, current, index = [], [], 0
    for item in VGG16_CFG:
        if item == "M":
            stages.append(current)
            current = []
        else:
            index += 1
            current.append(f"conv{index}")
    return stages


# Every conv but the first of its stage keeps its input's shape (3x3, same padding, no stride) once
# its successor adapts its input channels, so it can be dropped; the first carries the stage's width.
VGG16_DEPTH_ORDER = depth_order([stage[1:] for stage in _stages()], [1] * len(_stages()))


def vgg16(num_classes=10, input_shape=(32, 32, 3), widths=None, width_multiplier=1.0, name=None,
          drop_blocks=None):
    """Build the CIFAR VGG-16 with BatchNorm of the filter-pruning literature.

    13 conv layers (3x3, ``conv1`` ... ``conv13``, each followed by ``bn{i}`` and ``relu{i}``) with
    widths 64, 64, 128, 128, 256, 256, 256, 512 x 6, a 2x2 max-pool (``pool1`` ... ``pool5``) after
    conv 2, 4, 7, 10 and 13 (32x32 -> 1x1x512), ``flatten``, and 3 fully connected layers:
    ``fc1`` (512) ``fc1_bn`` ``fc1_relu``, ``fc2`` (512) ``fc2_bn`` ``fc2_relu``, ``predictions``.
    This is the "13 conv + 3 fully connected" network of the paper; the conv part matches
    ``Eric-mingjie/rethinking-network-pruning`` (cifar/l1-norm-pruning/models/vgg.py), which ends
    in a 2x2 average pool instead of ``pool5`` and has only two FC layers (512 -> 512 -> classes).

    With 10 classes: 15,261,898 parameters from ``count_params()`` (this includes the BatchNorm
    moving statistics; 15,251,402 trainable) and 313,725,952 MACs per 32x32x3 image
    (313,196,544 in the 13 convs). The pair the literature quotes, "14.98 M params, 313.73 M FLOPs",
    does not fit one network as counted here: 14.98 M matches the two-FC-layer variant with conv
    biases (14,982,474), whose MACs are 313,463,808, while 313.73 M matches this model's MACs
    (313,725,952). We infer the two were counted on different variants (notebook 01, section 4;
    the sources do not say how they counted). Our extra 512 x 512 FC layer adds 0.26 M parameters
    and MACs.

    Parameters
    ----------
    num_classes : int, default 10
        Number of output classes.
    input_shape : tuple of int, default (32, 32, 3)
        Image shape ``(height, width, channels)``: the *resolution* dimension of compound shrinking.
        The pools use ``same`` padding, so any size works (24x24 ends in 1x1x512 like 32x32).
    widths : mapping or sequence of int, optional
        ``{"conv3": 90, ...}`` overrides the filters of the named conv layers; a sequence of 13 ints
        gives every conv width in order. Overrides are not scaled by ``width_multiplier``.
    width_multiplier : float, default 1.0
        Scales every conv width, and the hidden dense layers' 512 units, to
        ``max(1, round(w * width_multiplier))``; must be > 0.
    name : str, optional
        Model name (default ``"vgg16"``).
    drop_blocks : collection of str, optional
        Conv layers to leave out (the *depth* dimension), any but the first of each stage:
        ``conv2, conv4, conv6, conv7, conv9, conv10, conv12, conv13``. The remaining layers keep
        their names, and their widths are set by name as usual. :data:`VGG16_DEPTH_ORDER` is the
        order in which depth shrinking drops them.

    Returns
    -------
    keras.Model
        An uncompiled functional model with a softmax output of ``num_classes``.

    Examples
    --------
    >>> model = vgg16(widths={"conv1": 32})
    >>> model.get_layer("conv1").filters, int(model.get_layer("conv2").kernel.shape[2])
    (32, 32)
    >>> vgg16(width_multiplier=0.5).get_layer("conv13").filters
    256
    >>> shallow = vgg16(drop_blocks=["conv13"], input_shape=(24, 24, 3))
    >>> [layer.name for layer in shallow.layers if layer.name.startswith("conv")][-2:]
    ['conv11', 'conv12']
    """
    drops = resolve_drops("vgg16", drop_blocks, sorted(VGG16_DEPTH_ORDER, key=lambda n: int(n[4:])))
    conv_widths = [w for w in VGG16_CFG if w != "M"]
    defaults = {f"conv{i}": w for i, w in enumerate(conv_widths, start=1) if f"conv{i}" not in drops}
    if isinstance(widths, Sequence) and not isinstance(widths, str):
        if len(widths) != len(defaults):
            raise ValueError(f"vgg16: a widths sequence needs one width per conv layer "
                             f"({len(defaults)}), got {len(widths)}")
        widths = dict(zip(defaults, widths))
    resolved = resolve_widths("vgg16", defaults, widths, width_multiplier)

    inputs = start(num_classes, input_shape)
    x, index, pool = inputs, 0, 0
    for item in VGG16_CFG:
        if item == "M":
            pool += 1
            # "same" equals "valid" on even sizes (so 32x32 counts are unchanged) and lets odd
            # sizes such as 24 -> 12 -> 6 -> 3 -> 2 -> 1 reach the classifier.
            x = layers.MaxPooling2D(2, padding="same", name=f"pool{pool}")(x)
            continue
        index += 1
        if f"conv{index}" in drops:
            continue
        x = conv(x, resolved[f"conv{index}"], 3, name=f"conv{index}")
        x = bn_relu(x, f"bn{index}", f"relu{index}")
    x = layers.Flatten(name="flatten")(x)
    for i in (1, 2):  # the hidden dense layers narrow with the convs, keeping their share of the model
        x = layers.Dense(max(1, round(512 * width_multiplier)), name=f"fc{i}")(x)
        x = bn_relu(x, f"fc{i}_bn", f"fc{i}_relu")
    return keras.Model(inputs, classifier(x, num_classes), name=name or "vgg16")

