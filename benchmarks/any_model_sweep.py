"""Any Keras model: profile, plan and rebuild a held-out set of example models a new user might bring.

Fourteen models in the style of published Keras examples (keras.io), none written for this
package, each rebuilt here from its description (small inputs so the sweep runs in minutes):

* an Xception-like classifier (SeparableConv2D, projected residual ``Add``), with and without an
  augmentation ``Sequential`` nested at its input ("image classification from scratch");
* a U-Net-like segmenter with ``Conv2DTranspose`` ("image segmentation with a U-Net-like net");
* ConvMixer (``Conv2D(groups=filters)`` as its depthwise conv); a small MobileViT (MV2 blocks,
  ``Reshape`` into patches, ``MultiHeadAttention``);
* a 3-D CNN (CT volumes), a 1-D residual audio net (speaker recognition), a convolutional
  denoising autoencoder;
* a super-resolution net ending in a custom ``DepthToSpace`` layer (ESPCN);
* an image-enhancement net built on ``(None, None, 3)`` (Zero-DCE's DCE-net), profiled and planned
  with ``input_shape=(64, 64, 3)``;
* DeepLabV3+ on a ResNet50 backbone and an EfficientNetB0 transfer model, with and without an
  augmentation ``Sequential`` (``weights=None``: nothing is downloaded);
* the MNIST convnet.

For each model, four cases:

``profile``
    ``profile(model).totals.params == model.count_params()``, and its MACs equal an independent
    recount: TensorFlow's profiler on the traced graph (convolution and matrix-multiply ops, two
    float operations per MAC, inside the XLA functions Keras runs grouped convs in too) plus the
    ``Einsum`` ops attention uses, which the profiler does not count (counted here from the traced
    op's own equation and shapes). A dilated conv is counted at its real output positions (the
    profiler counts the padded space-to-batch copy TensorFlow convolves). Transposed convs are left
    out on both sides (TensorFlow estimates them differently; see tests/test_flops_crosscheck.py).
``PA`` / ``FA`` / ``MA``
    ``plan_pruning(model, mode, target=0.5, seed=0)`` (default ``coupled='skip'``) meets its
    target, and ``apply_plan`` builds a model that runs, gives outputs of the original's shape,
    and whose profile and ``count_params()`` are the plan's final totals.

A case that fails prints its error; where the error advises ``coupled='tie'``, the sweep also
says whether following that advice holds (the case still counts as failed). Usage (a few minutes on a laptop CPU)::

    python benchmarks/any_model_sweep.py            # all models
    python benchmarks/any_model_sweep.py convmixer  # some of them
"""

from __future__ import annotations

import os
import re
import sys
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers, ops  # noqa: E402

import cdp_tutorial as cdp  # noqa: E402

KERNEL_OPS = {"Conv2D", "DepthwiseConv2dNative", "MatMul", "BatchMatMulV2", "BatchMatMulV3", "Conv3D"}
TRANSPOSED = (layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose)
FIXED_SHAPE = {"image_enhancement": (64, 64, 3)}  # models built on (None, None, C): the size we count at


# ----------------------------------------------------------------------------------------------
# The models
# ----------------------------------------------------------------------------------------------
def augmentation():
    return keras.Sequential([layers.RandomFlip("horizontal"), layers.RandomRotation(0.1)],
                            name="data_augmentation")


def xception_like(augment=False, size=64, classes=2):
    inputs = keras.Input((size, size, 3))
    x = augmentation()(inputs) if augment else inputs
    x = layers.Rescaling(1.0 / 255)(x)
    x = layers.Conv2D(128, 3, strides=2, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    previous = x
    for width in (256, 512, 728):
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(width, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(width, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        shortcut = layers.Conv2D(width, 1, strides=2, padding="same")(previous)
        x = layers.add([x, shortcut])
        previous = x
    x = layers.SeparableConv2D(1024, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.25)(x)
    return keras.Model(inputs, layers.Dense(1 if classes == 2 else classes)(x), name="xception_like")


def unet(size=64, classes=3):
    inputs = keras.Input((size, size, 3))
    x = layers.Conv2D(32, 3, strides=2, padding="same")(inputs)
    x = layers.Activation("relu")(layers.BatchNormalization()(x))
    previous = x
    for width in (64, 128, 256):
        for _ in range(2):
            x = layers.Activation("relu")(x)
            x = layers.BatchNormalization()(layers.SeparableConv2D(width, 3, padding="same")(x))
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        x = layers.add([x, layers.Conv2D(width, 1, strides=2, padding="same")(previous)])
        previous = x
    for width in (256, 128, 64, 32):
        for _ in range(2):
            x = layers.Activation("relu")(x)
            x = layers.BatchNormalization()(layers.Conv2DTranspose(width, 3, padding="same")(x))
        x = layers.UpSampling2D(2)(x)
        shortcut = layers.Conv2D(width, 1, padding="same")(layers.UpSampling2D(2)(previous))
        x = layers.add([x, shortcut])
        previous = x
    outputs = layers.Conv2D(classes, 3, activation="softmax", padding="same")(x)
    return keras.Model(inputs, outputs, name="unet")


def convmixer(size=32, filters=256, depth=8, kernel=5, patch=2, classes=10):
    def activation_block(x):
        return layers.BatchNormalization()(layers.Activation("gelu")(x))

    inputs = keras.Input((size, size, 3))
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = activation_block(layers.Conv2D(filters, patch, strides=patch)(x))
    for _ in range(depth):
        mixed = layers.Conv2D(filters, kernel, groups=filters, padding="same")(x)
        x = layers.Add()([activation_block(mixed), x])
        x = activation_block(layers.Conv2D(filters, 1)(x))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(classes, activation="softmax")(x), name="convmixer")


def mobilevit(size=64, patch=4, expansion=2, classes=5):
    def conv_block(x, filters=16, kernel=3, strides=2):
        return layers.Conv2D(filters, kernel, strides=strides, activation="swish", padding="same")(x)

    def inverted_residual(x, expanded, out, strides=1):
        m = layers.BatchNormalization()(layers.Conv2D(expanded, 1, padding="same", use_bias=False)(x))
        m = keras.activations.swish(m)
        if strides == 2:
            m = layers.ZeroPadding2D(((0, 1), (0, 1)))(m)
        m = layers.DepthwiseConv2D(3, strides=strides, padding="same" if strides == 1 else "valid",
                                   use_bias=False)(m)
        m = keras.activations.swish(layers.BatchNormalization()(m))
        m = layers.BatchNormalization()(layers.Conv2D(out, 1, padding="same", use_bias=False)(m))
        return layers.Add()([m, x]) if x.shape[-1] == out and strides == 1 else m

    def transformer(x, blocks, dim, heads=2):
        for _ in range(blocks):
            x1 = layers.LayerNormalization(epsilon=1e-6)(x)
            attended = layers.MultiHeadAttention(num_heads=heads, key_dim=dim, dropout=0.1)(x1, x1)
            x2 = layers.Add()([attended, x])
            x3 = layers.LayerNormalization(epsilon=1e-6)(x2)
            for units in (x.shape[-1] * 2, x.shape[-1]):
                x3 = layers.Dropout(0.1)(layers.Dense(units, activation="swish")(x3))
            x = layers.Add()([x3, x2])
        return x

    def mobilevit_block(x, blocks, dim):
        local = conv_block(x, filters=dim, strides=1)
        local = conv_block(local, filters=dim, kernel=1, strides=1)
        patches = int(local.shape[1] * local.shape[2] / patch)
        globl = transformer(layers.Reshape((patch, patches, dim))(local), blocks, dim)
        folded = layers.Reshape((*local.shape[1:-1], dim))(globl)
        folded = conv_block(folded, filters=x.shape[-1], kernel=1, strides=1)
        return conv_block(layers.Concatenate(axis=-1)([x, folded]), filters=dim, strides=1)

    inputs = keras.Input((size, size, 3))
    x = conv_block(layers.Rescaling(1.0 / 255)(inputs), filters=16)
    x = inverted_residual(x, 16 * expansion, 16)
    x = inverted_residual(x, 16 * expansion, 24, strides=2)
    x = inverted_residual(x, 24 * expansion, 24)
    x = inverted_residual(x, 24 * expansion, 24)
    x = inverted_residual(x, 24 * expansion, 48, strides=2)
    x = mobilevit_block(x, 2, 64)
    x = inverted_residual(x, 64 * expansion, 64, strides=2)
    x = mobilevit_block(x, 4, 80)
    x = inverted_residual(x, 80 * expansion, 80, strides=2)
    x = mobilevit_block(x, 3, 96)
    x = conv_block(x, filters=320, kernel=1, strides=1)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(classes, activation="softmax")(x), name="mobilevit")


def cnn3d(shape=(48, 48, 48, 1)):
    inputs = keras.Input(shape)
    x = inputs
    for width in (64, 64, 128, 256):
        x = layers.Conv3D(width, 3, activation="relu")(x)
        x = layers.BatchNormalization()(layers.MaxPool3D(2)(x))
    x = layers.GlobalAveragePooling3D()(x)
    x = layers.Dropout(0.3)(layers.Dense(512, activation="relu")(x))
    return keras.Model(inputs, layers.Dense(1, activation="sigmoid")(x), name="cnn3d")


def audio1d(length=2000, classes=5):
    def residual_block(x, filters, convs):
        shortcut = layers.Conv1D(filters, 1, padding="same")(x)
        for _ in range(convs - 1):
            x = layers.Activation("relu")(layers.Conv1D(filters, 3, padding="same")(x))
        x = layers.Add()([layers.Conv1D(filters, 3, padding="same")(x), shortcut])
        return layers.MaxPool1D(2, strides=2)(layers.Activation("relu")(x))

    inputs = keras.Input((length, 1))
    x = residual_block(inputs, 16, 2)
    x = residual_block(x, 32, 2)
    x = residual_block(x, 64, 3)
    x = residual_block(x, 128, 3)
    x = residual_block(x, 128, 3)
    x = layers.Flatten()(layers.AveragePooling1D(3, strides=3)(x))
    x = layers.Dense(128, activation="relu")(layers.Dense(256, activation="relu")(x))
    return keras.Model(inputs, layers.Dense(classes, activation="softmax")(x), name="audio1d")


def autoencoder():
    inputs = keras.Input((28, 28, 1))
    x = layers.MaxPooling2D(2, padding="same")(layers.Conv2D(32, 3, activation="relu", padding="same")(inputs))
    x = layers.MaxPooling2D(2, padding="same")(layers.Conv2D(32, 3, activation="relu", padding="same")(x))
    x = layers.Conv2DTranspose(32, 3, strides=2, activation="relu", padding="same")(x)
    x = layers.Conv2DTranspose(32, 3, strides=2, activation="relu", padding="same")(x)
    return keras.Model(inputs, layers.Conv2D(1, 3, activation="sigmoid", padding="same")(x),
                       name="autoencoder")


class DepthToSpace(layers.Layer):
    """Sub-pixel shuffle, as users write it: ``__init__`` takes only the block size."""

    def __init__(self, block_size):
        super().__init__()
        self.block_size = block_size

    def call(self, inputs):
        return tf.nn.depth_to_space(inputs, self.block_size)


def super_resolution(size=32, upscale=3, channels=1):
    inputs = keras.Input((size, size, channels))
    x = layers.Conv2D(64, 5, activation="relu", padding="same")(inputs)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
    x = layers.Conv2D(32, 3, activation="relu", padding="same")(x)
    x = layers.Conv2D(channels * upscale**2, 3, padding="same")(x)
    return keras.Model(inputs, DepthToSpace(upscale)(x), name="super_resolution")


def image_enhancement():
    """Zero-DCE's DCE-net: seven convs with skip concatenations, on images of any size."""
    inputs = keras.Input((None, None, 3))
    c1 = layers.Conv2D(32, 3, activation="relu", padding="same")(inputs)
    c2 = layers.Conv2D(32, 3, activation="relu", padding="same")(c1)
    c3 = layers.Conv2D(32, 3, activation="relu", padding="same")(c2)
    c4 = layers.Conv2D(32, 3, activation="relu", padding="same")(c3)
    c5 = layers.Conv2D(32, 3, activation="relu", padding="same")(layers.Concatenate()([c4, c3]))
    c6 = layers.Conv2D(32, 3, activation="relu", padding="same")(layers.Concatenate()([c5, c2]))
    outputs = layers.Conv2D(24, 3, activation="tanh", padding="same")(layers.Concatenate()([c6, c1]))
    return keras.Model(inputs, outputs, name="image_enhancement")


def deeplab_v3_plus(size=64, classes=5):
    def conv_block(x, filters=256, kernel=3, dilation=1, use_bias=False):
        x = layers.Conv2D(filters, kernel, dilation_rate=dilation, padding="same", use_bias=use_bias)(x)
        return ops.nn.relu(layers.BatchNormalization()(x))

    def aspp(x):
        h, w = x.shape[-3], x.shape[-2]
        pooled = conv_block(layers.AveragePooling2D((h, w))(x), kernel=1, use_bias=True)
        pooled = layers.UpSampling2D((h // pooled.shape[1], w // pooled.shape[2]),
                                     interpolation="bilinear")(pooled)
        branches = [pooled, conv_block(x, kernel=1)] + [conv_block(x, dilation=d) for d in (6, 12, 18)]
        return conv_block(layers.Concatenate(axis=-1)(branches), kernel=1)

    inputs = keras.Input((size, size, 3))
    preprocessed = keras.applications.resnet50.preprocess_input(inputs)
    backbone = keras.applications.ResNet50(weights=None, include_top=False, input_tensor=preprocessed)
    x = aspp(backbone.get_layer("conv4_block6_2_relu").output)
    a = layers.UpSampling2D((size // 4 // x.shape[1], size // 4 // x.shape[2]),
                            interpolation="bilinear")(x)
    b = conv_block(backbone.get_layer("conv2_block3_2_relu").output, filters=48, kernel=1)
    x = conv_block(conv_block(layers.Concatenate(axis=-1)([a, b])))
    x = layers.UpSampling2D((size // x.shape[1], size // x.shape[2]), interpolation="bilinear")(x)
    return keras.Model(inputs, layers.Conv2D(classes, 1, padding="same")(x), name="deeplab_v3_plus")


def efficientnet_transfer(augment=False, size=128, classes=10):
    inputs = keras.Input((size, size, 3))
    x = augmentation()(inputs) if augment else inputs
    backbone = keras.applications.EfficientNetB0(include_top=False, input_tensor=x, weights=None)
    backbone.trainable = False
    x = layers.GlobalAveragePooling2D(name="avg_pool")(backbone.output)
    x = layers.Dropout(0.2)(layers.BatchNormalization()(x))
    outputs = layers.Dense(classes, activation="softmax", name="pred")(x)
    return keras.Model(inputs, outputs, name="efficientnet_transfer")


def mnist_convnet():
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Flatten(), layers.Dropout(0.5), layers.Dense(10, activation="softmax"),
    ], name="mnist_convnet")


MODELS = {
    "xception_like": xception_like,
    "xception_like_augmented": lambda: xception_like(augment=True),
    "unet": unet,
    "convmixer": convmixer,
    "mobilevit": mobilevit,
    "cnn3d": cnn3d,
    "audio1d": audio1d,
    "autoencoder": autoencoder,
    "super_resolution": super_resolution,
    "image_enhancement": image_enhancement,
    "deeplab_v3_plus": deeplab_v3_plus,
    "efficientnet_transfer": efficientnet_transfer,
    "efficientnet_transfer_augmented": lambda: efficientnet_transfer(augment=True),
    "mnist_convnet": mnist_convnet,
}


# ----------------------------------------------------------------------------------------------
# The independent MAC recount
# ----------------------------------------------------------------------------------------------
def einsum_macs(op) -> int:
    """MACs of one traced ``Einsum`` op: the product of the sizes of all its index letters."""
    equation = op.get_attr("equation").decode()
    inputs, _ = equation.split("->")
    sizes = {}
    for term, tensor in zip(inputs.split(","), op.inputs):
        for letter, dim in zip(term, tensor.shape):
            sizes[letter] = int(dim)
    return int(np.prod(list(sizes.values())))


def tensorflow_macs(model, shape) -> int:
    """Kernel MACs of one example, from TensorFlow's traced graph (transposed convs left out)."""
    spec = tf.TensorSpec((1, *shape), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    return graph_macs(graph)


def graph_macs(graph) -> int:
    """Kernel MACs of one traced graph and of the functions it calls.

    Keras runs a grouped convolution as an XLA-compiled function (TensorFlow's CPU kernel cannot),
    which the profiler does not enter: we profile each called function's graph too. TensorFlow
    has no public way to reach it (``Graph._get_function``); this is a benchmark, not the package.
    """
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    root = tf.compat.v1.profiler.profile(graph=graph, options=options)
    macs, stack = 0, list(root.children)
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        op = graph.get_operation_by_name(node.name)
        if op.type in KERNEL_OPS:
            macs += dilated_conv_macs(op) if is_dilated(op) else node.float_ops // 2
    einsums = sum(einsum_macs(op) for op in graph.get_operations() if op.type == "Einsum")
    called = sum(graph_macs(graph._get_function(op.get_attr("f").name).graph)
                 for op in graph.get_operations() if op.type in ("PartitionedCall", "StatefulPartitionedCall"))
    return macs + einsums + called


def is_dilated(op) -> bool:
    """TensorFlow runs a dilated conv on a space-to-batch copy of its input, padded to whole blocks."""
    return op.type == "Conv2D" and op.inputs[0].op.type == "SpaceToBatchND"


def dilated_conv_macs(op) -> int:
    """K² C_in per output element of the real (batch-to-space) output, not of the padded copy the
    profiler sees (which counts the padding's positions too)."""
    (restore,) = op.outputs[0].consumers()
    taps = int(np.prod(op.inputs[1].shape[:3]))
    return taps * int(np.prod(restore.outputs[0].shape))


def all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from all_layers(layer)


# ----------------------------------------------------------------------------------------------
# The cases
# ----------------------------------------------------------------------------------------------
def shape_kwargs(name):
    return {"input_shape": FIXED_SHAPE[name]} if name in FIXED_SHAPE else {}


def check_profile(name, model):
    report = cdp.profile(model, **shape_kwargs(name))
    assert report.totals.params == model.count_params(), \
        f"params {report.totals.params:,} != count_params() {model.count_params():,}"
    shape = FIXED_SHAPE.get(name, tuple(model.inputs[0].shape[1:]))
    transposed = report.layers[report.layers.type.isin([t.__name__ for t in TRANSPOSED])].macs.sum()
    theirs = tensorflow_macs(model, shape)  # its kernel ops leave transposed convs out
    assert report.totals.macs - transposed == theirs, \
        f"MACs {report.totals.macs - transposed:,} != TensorFlow's recount {theirs:,}"
    return f"{report.totals.params:,} params, {report.totals.macs:,} MACs"


def check_mode(name, model, mode, coupled="skip"):
    plan = cdp.plan_pruning(model, mode, target=0.5, seed=0, coupled=coupled, **shape_kwargs(name))
    assert plan.final.mode_total(plan.mode) <= 0.5 * plan.baseline.mode_total(plan.mode)
    small = cdp.apply_plan(model, plan)
    shape = FIXED_SHAPE.get(name, tuple(model.inputs[0].shape[1:]))
    x = np.random.default_rng(0).random((2, *shape), dtype="float32")
    expected = model(x, training=False).shape
    got = small(x, training=False).shape
    assert tuple(got) == tuple(expected), f"pruned output shape {tuple(got)} != {tuple(expected)}"
    assert cdp.profile(small, **shape_kwargs(name)).totals == plan.final, "profile(pruned) != plan.final"
    assert small.count_params() == plan.final.params, "count_params() != plan.final.params"
    return f"{plan.final.mode_total(plan.mode) / plan.baseline.mode_total(plan.mode):.3f} of baseline"


def follow_advice(name, model, mode) -> str:
    """The same case with ``coupled='tie'``, as the unreachable-target message advises."""
    try:
        return "holds, " + check_mode(name, model, mode, coupled="tie")
    except Exception as error:  # noqa: BLE001
        return "fails too: " + first_line(error)


def first_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return re.sub(r"\s+", " ", text)[:700]


def main(names):
    held, failures, started = 0, [], time.perf_counter()
    cases = 0
    for name in names:
        keras.utils.clear_session()
        model = MODELS[name]()
        checks = [("profile", lambda: check_profile(name, model))] + [
            (mode, lambda mode=mode: check_mode(name, model, mode)) for mode in ("PA", "FA", "MA")]
        for case, check in checks:
            cases += 1
            try:
                detail = check()
            except Exception as error:  # noqa: BLE001 -- every failure is reported, none stops the sweep
                message = first_line(error)
                if "Try coupled='tie'" in message:  # what a user does next: follow the advice
                    message += f" [with coupled='tie', as advised: {follow_advice(name, model, case)}]"
                failures.append((name, case, message))
                print(f"FAIL {name:32s} {case:7s} {message}", flush=True)
                if os.environ.get("SWEEP_TRACEBACK"):
                    traceback.print_exc()
            else:
                held += 1
                print(f"ok   {name:32s} {case:7s} {detail}", flush=True)
    print(f"\n{held} of {cases} cases hold ({time.perf_counter() - started:.0f} s)")
    for name, case, message in failures:
        print(f"  {name} / {case}: {message}")
    return held, cases


if __name__ == "__main__":
    main(sys.argv[1:] or list(MODELS))
