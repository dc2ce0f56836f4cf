"""An independent check of the MAC counts: TensorFlow's own float-operation count of the traced graph.

``tf.compat.v1.profiler`` counts, for every convolution and matrix-multiply op of a concrete
function's graph, 2 float operations per multiply-accumulate (a multiply and an add). So for those
ops it must report exactly ``2 × profile(...).macs``, layer by layer. Conventions differ elsewhere,
on purpose: TensorFlow also counts bias adds, batch-norm arithmetic and some element-wise ops (one
op per element), which the paper's Eq. 3 (and so ``profile``) leaves out; we compare only the
kernel ops, and show the extras (a bias add is one op per output element). Transposed convs
differ in convention: we count the exact scatter (every input position times a K×K×C_out kernel,
:math:`K^2 C_{in} C_{out} H_{in} W_{in}`); TensorFlow estimates :math:`K^2/s^2` taps per output
position, :math:`K^2 C_{in} C_{out} H_{out} W_{out} / s^2`, which ignores the borders.

Two places the profiler does not reach, counted here from TensorFlow's own traced graph: Keras runs
a grouped conv inside an XLA-compiled function (we profile the function's graph too), and
attention's score and weighted-sum products are ``Einsum`` ops, which have no registered float
count (we count one MAC per combination of the equation's indices, at the traced op's shapes).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers as L

import cdp_tutorial as cdp
from test_any_model import attention_net, conv_mixer, resnext_block, se_net  # one model per structure

KERNEL_OPS = {"Conv2D", "DepthwiseConv2dNative", "MatMul", "BatchMatMulV2", "BatchMatMulV3",
              "Conv3D", "Einsum"}


def tensorflow_float_ops(model) -> dict:
    """``{op type: float operations}`` that TensorFlow's profiler counts for one image."""
    spec = tf.TensorSpec((1, *model.inputs[0].shape[1:]), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    return graph_float_ops(graph)


def graph_float_ops(graph, by_type=None) -> dict:
    by_type = {} if by_type is None else by_type
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    root = tf.compat.v1.profiler.profile(graph=graph, options=options)
    stack = list(root.children)
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        op_type = graph.get_operation_by_name(node.name).type
        by_type[op_type] = by_type.get(op_type, 0) + node.float_ops
    for op in graph.get_operations():
        if op.type == "Einsum":  # no registered count: 2 float ops per index combination
            by_type["Einsum"] = by_type.get("Einsum", 0) + 2 * einsum_macs(op)
        if op.type in ("PartitionedCall", "StatefulPartitionedCall"):
            # a called function (Keras runs grouped convs under XLA): TensorFlow has no public way
            # to reach its graph, so this test uses the private Graph._get_function
            graph_float_ops(graph._get_function(op.get_attr("f").name).graph, by_type)
    return by_type


def einsum_macs(op) -> int:
    """One multiply-accumulate per combination of an ``Einsum``'s index letters, at its traced shapes."""
    terms = op.get_attr("equation").decode().split("->")[0].split(",")
    sizes = {letter: int(dim) for term, tensor in zip(terms, op.inputs)
             for letter, dim in zip(term, tensor.shape)}
    return int(np.prod(list(sizes.values())))


def mixed_model():
    inputs = keras.Input((16, 16, 3))
    x = L.Conv2D(8, 3, name="conv")(inputs)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)
    x = L.SeparableConv2D(6, 3, name="sep")(x)
    x = L.Conv2D(4, 1, name="pointwise")(x)
    x = L.Flatten()(x)
    return keras.Model(inputs, L.Dense(3, name="fc")(x))


def grouped_model():
    inputs = keras.Input((12, 12, 8))
    x = L.Conv2D(8, 3, groups=8, padding="same", name="per_channel")(inputs)  # a depthwise conv
    x = L.Conv2D(12, 3, groups=4, name="grouped")(x)  # 4 groups of 2 channels in, 3 out
    return keras.Model(inputs, L.Conv2D(4, 1, name="pointwise")(x))


def self_attention_model():
    """MobileViT's shape: patches of a feature map attend to each other (4-D, two attention axes)."""
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, padding="same", name="local")(inputs)
    x = L.Reshape((4, 16, 8))(x)
    x = L.MultiHeadAttention(num_heads=2, key_dim=8, name="attention")(x, x)
    return keras.Model(inputs, L.Dense(5, name="mlp")(x))


def cross_attention_model():
    """Query and value of different widths, value size != key size, attention along one axis only,
    and an output width of its own."""
    inputs = keras.Input((6, 10, 4))
    query = L.Conv2D(8, 1, name="query_features")(inputs)
    value = L.Conv2D(6, 1, name="value_features")(inputs)
    x = L.MultiHeadAttention(num_heads=3, key_dim=4, value_dim=5, attention_axes=(2,),
                             output_shape=7, name="attention")(query, value)
    return keras.Model(inputs, x)


@pytest.mark.parametrize("build", [mixed_model, lambda: cdp.models.build_model("mobilenetv2"),
                                   grouped_model, self_attention_model, cross_attention_model,
                                   conv_mixer, resnext_block, se_net, attention_net],
                         ids=["mixed", "mobilenetv2", "grouped", "self-attention", "cross-attention",
                              "convmixer", "resnext", "squeeze-excite", "attention-net"])
def test_kernel_float_ops_are_twice_our_macs(build):
    model = build()
    tf_ops = tensorflow_float_ops(model)
    kernel = sum(v for k, v in tf_ops.items() if k in KERNEL_OPS)
    assert kernel == 2 * cdp.profile(model).totals.macs


def test_tensorflow_also_counts_bias_adds_one_per_output_element():
    """The convention difference, shown: TF adds one float op per output element for each bias."""
    inputs = keras.Input((16, 16, 3))
    x = L.Conv2D(8, 3, name="conv")(inputs)  # with bias: 14*14*8 adds
    model = keras.Model(inputs, x)
    tf_ops = tensorflow_float_ops(model)
    assert tf_ops.get("BiasAdd", 0) == 14 * 14 * 8
    assert tf_ops["Conv2D"] == 2 * cdp.profile(model).totals.macs


def test_transposed_conv_conventions_differ_only_at_the_borders():
    inputs = keras.Input((10, 10, 6))
    model = keras.Model(inputs, L.Conv2DTranspose(4, 3, strides=2, name="up")(inputs))  # 21x21 out
    ours = cdp.profile(model).layers.set_index("name").loc["up", "macs"]
    assert ours == 3 * 3 * 6 * 4 * 10 * 10  # K² C_in C_out H_in W_in
    theirs = tensorflow_float_ops(model)["Conv2DBackpropInput"] / 2
    assert theirs == 3 * 3 * 6 * 4 * 21 * 21 / (2 * 2)  # K² C_in C_out H_out W_out / s²
