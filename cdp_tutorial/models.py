"""CIFAR-sized CNNs with per-layer widths: the four networks the paper prunes.

``keras.applications`` cannot take per-layer widths and uses ImageNet stems that shrink a 32x32 image
to 1x1, so the tutorial builds its own CIFAR variants. Every builder takes the same arguments:

- ``widths``: ``{conv layer name: filters}``; a pruning plan's ``.widths`` is exactly such a mapping,
  so ``builder(widths=plan.widths)`` builds the pruned network too (``cdp_tutorial.apply_plan`` does
  the same for any model, by cloning it).
- ``width_multiplier``: scales every conv width to ``max(1, round(w * m))``, the *uniform width
  scaling* baseline that complexity-driven pruning is compared against.

Layer names are a stable public contract: the planner, the notebooks and saved plans refer to them.

==============  =========  ===================  ================  ==========================
builder         conv       params               MACs              follows
==============  =========  ===================  ================  ==========================
``vgg16``       13         15,261,898           313,725,952       Li et al. / rethinking
``alexnet``     5          7,709,898            225,650,688       ours (5 conv + 3 FC)
``resnet50``    53         23,573,962           1,297,829,888     kuangliu/pytorch-cifar
``mobilenetv2`` 35 (+17)   2,270,794            87,976,448        kuangliu + keras.applications
==============  =========  ===================  ================  ==========================

Figures are for ``num_classes=10`` and one 32x32x3 image. *params* is ``model.count_params()``, which
includes the BatchNorm moving mean and variance (not trainable). *MACs* are multiply-accumulates of
the Conv2D (Hout·Wout·K²·Cin·Cout), DepthwiseConv2D (Hout·Wout·K²·C) and Dense (in·out) layers;
FLOPs as other tools count them are 2 x MACs. MobileNetV2 has 35 Conv2D plus 17 DepthwiseConv2D.

All convolutions use ``padding="same"`` and no bias (a BatchNorm follows each one), BatchNorm uses
PyTorch's momentum and epsilon (the reference implementations are PyTorch), and every network ends
in a Dense layer named ``predictions`` with a softmax.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import keras
from keras import layers

__all__ = ["MODELS", "alexnet", "build_model", "mobilenetv2", "resnet50", "vgg16"]

# VGG-16 with BN as in the CIFAR pruning literature; "M" is a 2x2 max-pool.
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
# ResNet-50: (stage, blocks, bottleneck width, stride of the stage's first block).
RESNET50_STAGES = ((2, 3, 64, 1), (3, 4, 128, 2), (4, 6, 256, 2), (5, 3, 512, 2))
RESNET_EXPANSION = 4
# MobileNetV2 (expansion t, output channels c, repeats n, first stride s). The CIFAR variant keeps
# stride 1 in the stem and in the 24-channel stage, so the last feature map is 4x4, not 1x1.
MOBILENETV2_CFG = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2),
                   (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

# PyTorch's BatchNorm defaults (its momentum 0.1 is Keras' 0.9). Keras' default 0.99 lets the moving
# statistics lag far behind during the short trainings of the quick profile.
_BN = {"momentum": 0.9, "epsilon": 1e-5}


# --------------------------------------------------------------------------- argument checks


def _check_count(value, what: str) -> int:
    """Return ``value`` as an int if it is a positive integer, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return int(value)


def _check_multiplier(value) -> float:
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or value <= 0):
        raise ValueError(f"width_multiplier must be a finite number > 0 (e.g. 0.5), got {value!r}")
    return float(value)


def _resolve_widths(model: str, defaults: Mapping[str, int], widths, width_multiplier) -> dict[str, int]:
    """Scale ``defaults`` by ``width_multiplier``, then apply the user's ``widths`` overrides.

    ``defaults`` maps every conv layer whose width may be set, in build order, to its unpruned width.
    """
    multiplier = _check_multiplier(width_multiplier)
    resolved = {name: max(1, round(w * multiplier)) for name, w in defaults.items()}
    if widths is None:
        return resolved
    if not isinstance(widths, Mapping):
        raise ValueError(f"{model}: widths must be a mapping {{conv layer name: filters}}, "
                         f"got {type(widths).__name__}")
    unknown = [name for name in widths if name not in defaults]
    if unknown:
        raise ValueError(f"{model}: unknown conv layer name(s) in widths: {unknown}. "
                         f"Allowed names: {', '.join(defaults)}")
    for name, filters in widths.items():
        resolved[name] = _check_count(filters, f"{model}: widths[{name!r}]")
    return resolved


def _check_ties(model: str, resolved: Mapping[str, int], ties: Sequence[Sequence[str]]) -> None:
    """Raise ValueError if conv layers joined by an ``Add`` were given different widths.

    Checked before building so the reader gets the layer names, not Keras' shape-mismatch error.
    """
    for group in ties:
        got = {name: resolved[name] for name in group}
        if len(set(got.values())) > 1:
            raise ValueError(
                f"{model}: widths break a residual tie. The layers {', '.join(group)} feed the same "
                f"Add layers and must have the same number of filters, got {got}. "
                "Give all of them one value (residual channels are not pruned).")


# --------------------------------------------------------------------------- shared layers


def _conv(x, filters: int, kernel_size: int, name: str, strides: int = 1):
    # He-normal suits ReLU networks trained from scratch (Keras' default Glorot assumes linear units);
    # the rethinking-network-pruning VGG initialises its convs the same way.
    return layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False,
                         kernel_initializer="he_normal", name=name)(x)


def _bn_relu(x, bn_name: str, relu_name: str | None = None, max_value: float | None = None):
    """BatchNorm, then a ReLU (ReLU6 with ``max_value=6``) unless ``relu_name`` is None."""
    x = layers.BatchNormalization(name=bn_name, **_BN)(x)
    if relu_name is not None:
        x = layers.ReLU(max_value=max_value, name=relu_name)(x)
    return x


def _classifier(x, num_classes: int):
    return layers.Dense(num_classes, activation="softmax", name="predictions")(x)


def _start(num_classes: int, input_shape) -> keras.KerasTensor:
    _check_count(num_classes, "num_classes")
    return keras.Input(shape=tuple(input_shape), name="input")


# --------------------------------------------------------------------------- VGG-16


def vgg16(num_classes=10, input_shape=(32, 32, 3), widths=None, width_multiplier=1.0, name=None):
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
    (313,196,544 in the 13 convs). The literature's "14.98 M params, 313.7 M FLOPs" is the
    two-FC-layer variant, and its "FLOPs" are multiply-accumulates as counted here; our extra
    512 x 512 FC layer adds 0.26 M parameters and MACs.

    Parameters
    ----------
    num_classes : int, default 10
        Number of output classes.
    input_shape : tuple of int, default (32, 32, 3)
        Image shape; the five pools need at least 32x32.
    widths : mapping or sequence of int, optional
        ``{"conv3": 90, ...}`` overrides the filters of the named conv layers; a sequence of 13 ints
        gives every conv width in order. Overrides are not scaled by ``width_multiplier``.
    width_multiplier : float, default 1.0
        Scales every conv width to ``max(1, round(w * width_multiplier))``; must be > 0.
    name : str, optional
        Model name (default ``"vgg16"``).

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
    """
    conv_widths = [w for w in VGG16_CFG if w != "M"]
    defaults = {f"conv{i}": w for i, w in enumerate(conv_widths, start=1)}
    if isinstance(widths, Sequence) and not isinstance(widths, str):
        if len(widths) != len(defaults):
            raise ValueError(f"vgg16: a widths sequence needs one width per conv layer "
                             f"({len(defaults)}), got {len(widths)}")
        widths = dict(zip(defaults, widths))
    resolved = _resolve_widths("vgg16", defaults, widths, width_multiplier)

    inputs = _start(num_classes, input_shape)
    x, conv, pool = inputs, 0, 0
    for item in VGG16_CFG:
        if item == "M":
            pool += 1
            x = layers.MaxPooling2D(2, name=f"pool{pool}")(x)
        else:
            conv += 1
            x = _conv(x, resolved[f"conv{conv}"], 3, name=f"conv{conv}")
            x = _bn_relu(x, f"bn{conv}", f"relu{conv}")
    x = layers.Flatten(name="flatten")(x)
    for i in (1, 2):
        x = layers.Dense(512, name=f"fc{i}")(x)
        x = _bn_relu(x, f"fc{i}_bn", f"fc{i}_relu")
    return keras.Model(inputs, _classifier(x, num_classes), name=name or "vgg16")


# --------------------------------------------------------------------------- AlexNet


def alexnet(num_classes=10, input_shape=(32, 32, 3), widths=None, width_multiplier=1.0, name=None):
    """Build this tutorial's CIFAR AlexNet: 5 conv layers and 3 fully connected layers.

    ``conv1`` (5x5, 64) ``pool1``, ``conv2`` (5x5, 192) ``pool2``, ``conv3`` (3x3, 384), ``conv4``
    (3x3, 256), ``conv5`` (3x3, 256) ``pool5``; each conv is followed by ``bn{i}`` and ``relu{i}``,
    every conv has stride 1 and each pool is a 3x3 max-pool with stride 2 (32 -> 16 -> 8 -> 4).
    Then ``flatten`` (4x4x256 = 4096), ``fc1`` (1024) ``fc1_relu`` ``fc1_dropout`` (0.5), ``fc2``
    (1024) ``fc2_relu`` ``fc2_dropout`` (0.5) and ``predictions``.

    The paper describes AlexNet only as "5 conv + 3 FC". CIFAR AlexNets differ a lot between repos
    (bearpaw's has one FC layer and an 11x11 stride-4 stem; others resize images to 224x224 and keep
    4096-wide FC layers); this one keeps AlexNet's filter counts with a stem suited to 32x32 images.

    With 10 classes: 7,709,898 parameters from ``count_params()`` (this includes the BatchNorm
    moving statistics; 7,707,594 trainable) and 225,650,688 MACs per 32x32x3 image
    (220,397,568 in the 5 convs).

    Parameters
    ----------
    num_classes : int, default 10
        Number of output classes.
    input_shape : tuple of int, default (32, 32, 3)
        Image shape.
    widths : mapping, optional
        ``{"conv2": 96, ...}`` overrides the filters of the named conv layers (``conv1`` ...
        ``conv5``). Overrides are not scaled by ``width_multiplier``.
    width_multiplier : float, default 1.0
        Scales every conv width to ``max(1, round(w * width_multiplier))``; must be > 0.
    name : str, optional
        Model name (default ``"alexnet"``).

    Returns
    -------
    keras.Model
        An uncompiled functional model with a softmax output of ``num_classes``.

    Examples
    --------
    >>> model = alexnet(num_classes=100)
    >>> model.output.shape
    (None, 100)
    >>> tuple(alexnet(widths={"conv5": 128}).get_layer("fc1").kernel.shape)
    (2048, 1024)
    """
    specs = {"conv1": (64, 5), "conv2": (192, 5), "conv3": (384, 3), "conv4": (256, 3), "conv5": (256, 3)}
    resolved = _resolve_widths("alexnet", {n: w for n, (w, _) in specs.items()}, widths, width_multiplier)

    inputs = _start(num_classes, input_shape)
    x = inputs
    for i, (conv_name, (_, kernel_size)) in enumerate(specs.items(), start=1):
        x = _conv(x, resolved[conv_name], kernel_size, name=conv_name)
        x = _bn_relu(x, f"bn{i}", f"relu{i}")
        if i in (1, 2, 5):
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    for i in (1, 2):
        x = layers.Dense(1024, activation=None, name=f"fc{i}")(x)
        x = layers.ReLU(name=f"fc{i}_relu")(x)
        x = layers.Dropout(0.5, name=f"fc{i}_dropout")(x)
    return keras.Model(inputs, _classifier(x, num_classes), name=name or "alexnet")


# --------------------------------------------------------------------------- ResNet-50


def _resnet50_layout():
    """Return ``(defaults, ties)``: every conv's unpruned width and the Add-tied groups."""
    defaults = {"conv1": 64}
    ties = []
    for stage, blocks, planes, _ in RESNET50_STAGES:
        out = planes * RESNET_EXPANSION
        defaults[f"conv{stage}_block1_0_conv"] = out
        for b in range(1, blocks + 1):
            prefix = f"conv{stage}_block{b}"
            defaults.update({f"{prefix}_1_conv": planes, f"{prefix}_2_conv": planes, f"{prefix}_3_conv": out})
        # Block 1 adds its projection shortcut to its 3rd conv; every later block adds the previous
        # block's output to its own 3rd conv, so all of them carry one stage-wide channel count.
        ties.append([f"conv{stage}_block1_0_conv"]
                    + [f"conv{stage}_block{b}_3_conv" for b in range(1, blocks + 1)])
    return defaults, ties


def resnet50(num_classes=10, input_shape=(32, 32, 3), widths=None, width_multiplier=1.0, name=None):
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

    Returns
    -------
    keras.Model
        An uncompiled functional model with a softmax output of ``num_classes``.

    Examples
    --------
    >>> model = resnet50(width_multiplier=0.5)
    >>> model.get_layer("conv5_block3_out").output.shape
    (None, 4, 4, 1024)
    """
    defaults, ties = _resnet50_layout()
    resolved = _resolve_widths("resnet50", defaults, widths, width_multiplier)
    _check_ties("resnet50", resolved, ties)

    inputs = _start(num_classes, input_shape)
    x = _conv(inputs, resolved["conv1"], 3, name="conv1")
    x = _bn_relu(x, "bn1", "relu1")
    for stage, blocks, _, stage_stride in RESNET50_STAGES:
        for b in range(1, blocks + 1):
            prefix = f"conv{stage}_block{b}"
            strides = stage_stride if b == 1 else 1
            if b == 1:
                shortcut = _conv(x, resolved[f"{prefix}_0_conv"], 1, name=f"{prefix}_0_conv", strides=strides)
                shortcut = _bn_relu(shortcut, f"{prefix}_0_bn")
            else:
                shortcut = x
            y = _conv(x, resolved[f"{prefix}_1_conv"], 1, name=f"{prefix}_1_conv")
            y = _bn_relu(y, f"{prefix}_1_bn", f"{prefix}_1_relu")
            # The stride sits on the 3x3 conv, as in kuangliu (torchvision's "ResNet v1.5").
            y = _conv(y, resolved[f"{prefix}_2_conv"], 3, name=f"{prefix}_2_conv", strides=strides)
            y = _bn_relu(y, f"{prefix}_2_bn", f"{prefix}_2_relu")
            y = _conv(y, resolved[f"{prefix}_3_conv"], 1, name=f"{prefix}_3_conv")
            y = _bn_relu(y, f"{prefix}_3_bn")
            x = layers.Add(name=f"{prefix}_add")([shortcut, y])
            x = layers.ReLU(name=f"{prefix}_out")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, _classifier(x, num_classes), name=name or "resnet50")


# --------------------------------------------------------------------------- MobileNetV2


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


def _mobilenetv2_layout():
    """Return ``(defaults, ties)``: every Conv2D's unpruned width and the Add-tied groups."""
    defaults = {"conv1": 32}
    ties = []
    previous = "conv1"
    for i, t, c, _, in_channels, has_add in _mobilenetv2_blocks():
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


def mobilenetv2(num_classes=10, input_shape=(32, 32, 3), widths=None, width_multiplier=1.0, name=None):
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

    Returns
    -------
    keras.Model
        An uncompiled functional model with a softmax output of ``num_classes``.

    Examples
    --------
    >>> model = mobilenetv2(widths={"block1_project": 8})
    >>> model.get_layer("block2_expand").filters
    48
    """
    defaults, ties = _mobilenetv2_layout()
    resolved = _resolve_widths("mobilenetv2", defaults, widths, width_multiplier)
    _check_ties("mobilenetv2", resolved, ties)
    given = set(widths or ())

    inputs = _start(num_classes, input_shape)
    x = _conv(inputs, resolved["conv1"], 3, name="conv1")
    x = _bn_relu(x, "bn1", "relu1", max_value=6.0)
    channels = resolved["conv1"]
    for i, t, _, stride, _, has_add in _mobilenetv2_blocks():
        block_input = x
        if t != 1:
            expand = f"block{i}_expand"
            filters = resolved[expand] if expand in given else t * channels
            x = _conv(x, filters, 1, name=expand)
            x = _bn_relu(x, f"{expand}_bn", f"{expand}_relu", max_value=6.0)
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                   depthwise_initializer="he_normal", name=f"block{i}_depthwise")(x)
        x = _bn_relu(x, f"block{i}_depthwise_bn", f"block{i}_depthwise_relu", max_value=6.0)
        channels = resolved[f"block{i}_project"]
        # Linear bottleneck: no activation after the projection.
        x = _conv(x, channels, 1, name=f"block{i}_project")
        x = _bn_relu(x, f"block{i}_project_bn")
        if has_add:
            x = layers.Add(name=f"block{i}_add")([block_input, x])
    x = _conv(x, resolved["conv_last"], 1, name="conv_last")
    x = _bn_relu(x, "conv_last_bn", "conv_last_relu", max_value=6.0)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, _classifier(x, num_classes), name=name or "mobilenetv2")


# --------------------------------------------------------------------------- registry

MODELS = {"vgg16": vgg16, "alexnet": alexnet, "resnet50": resnet50, "mobilenetv2": mobilenetv2}


def build_model(name, /, **kwargs):
    """Build one of the four networks by name.

    Parameters
    ----------
    name : str
        ``"vgg16"``, ``"alexnet"``, ``"resnet50"`` or ``"mobilenetv2"`` (case-insensitive), given
        positionally, so that a ``name=`` keyword can still reach the builder.
    **kwargs
        Passed to the builder: ``num_classes``, ``input_shape``, ``widths``, ``width_multiplier``,
        ``name`` (the Keras model's name).

    Returns
    -------
    keras.Model

    Examples
    --------
    >>> build_model("VGG16", num_classes=100).output.shape
    (None, 100)
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[key](**kwargs)
