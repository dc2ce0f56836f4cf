"""Shared fixtures: the four CIFAR models are built once per test session (they are read-only)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402

from cdp_tutorial import models  # noqa: E402


@pytest.fixture(scope="session")
def cifar_models():
    """``{name: model}`` for the four CIFAR builders, 10 classes."""
    return {name: models.build_model(name) for name in ("vgg16", "alexnet", "resnet50", "mobilenetv2")}


@pytest.fixture(scope="session")
def user_model():
    """A functional model of the user's own: a residual add, a concatenation, separable convs."""
    L = keras.layers
    inputs = keras.Input((16, 16, 3))
    x = L.Conv2D(16, 3, padding="same", name="stem")(inputs)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    a = L.Conv2D(16, 3, padding="same", name="branch_a")(x)
    a = L.BatchNormalization(name="branch_a_bn")(a)
    x = L.Add(name="residual")([x, a])
    left = L.SeparableConv2D(12, 3, padding="same", name="sep_left")(x)
    right = L.Conv2D(8, 1, name="right")(x)
    x = L.Concatenate(name="concat")([left, right])
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.BatchNormalization(name="dw_bn")(x)
    x = L.Activation("relu", name="dw_relu")(x)
    x = L.Conv2D(24, 3, strides=2, padding="same", name="head")(x)
    x = L.MaxPooling2D(name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(32, activation="relu", name="fc")(x)
    outputs = L.Dense(5, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="user_model")
