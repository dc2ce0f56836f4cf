"""This tutorial's CIFAR AlexNet: 5 conv layers and 3 fully connected layers."""

from __future__ import annotations

import keras
from keras import layers

from cdp_tutorial.models.common import bn_relu, classifier, conv, resolve_drops, resolve_widths, start

__all__ = ["ALEXNET_DEPTH_ORDER", "alexnet"]

# conv3 and conv4 sit between pools at one resolution, so either can go; conv4 first (the later one).
ALEXNET_DEPTH_ORDER = ("conv4", "conv3")


def alexnet(num_classes=10, input_shape=(32, 32, 3), widths=None, width_multiplier=1.0, name=None,
            drop_blocks=None):
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
        Scales every conv width, and the hidden dense layers' 1024 units, to
        ``max(1, round(w * width_multiplier))``; must be > 0.
    name : str, optional
        Model name (default ``"alexnet"``).
    drop_blocks : collection of str, optional
        ``conv3`` and/or ``conv4`` to leave out (the *depth* dimension); the others keep their names.

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
    drops = resolve_drops("alexnet", drop_blocks, ("conv3", "conv4"))
    specs = {name: spec for name, spec in specs.items() if name not in drops}
    resolved = resolve_widths("alexnet", {n: w for n, (w, _) in specs.items()}, widths, width_multiplier)

    inputs = start(num_classes, input_shape)
    x = inputs
    for conv_name, (_, kernel_size) in specs.items():
        i = int(conv_name[4:])  # names stay those of the full network when a block is dropped
        x = conv(x, resolved[conv_name], kernel_size, name=conv_name)
        x = bn_relu(x, f"bn{i}", f"relu{i}")
        if i in (1, 2, 5):
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    for i in (1, 2):
        # the hidden dense layers narrow with the convs, keeping their share of the model
        x = layers.Dense(max(1, round(1024 * width_multiplier)), activation=None, name=f"fc{i}")(x)
        x = layers.ReLU(name=f"fc{i}_relu")(x)
        x = layers.Dropout(0.5, name=f"fc{i}_dropout")(x)
    return keras.Model(inputs, classifier(x, num_classes), name=name or "alexnet")

