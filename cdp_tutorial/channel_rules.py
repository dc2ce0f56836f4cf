"""What one operation does to channels: the rules :func:`cdp_tutorial.graph.analyse` applies.

Every operation of a model (a layer, or a raw op such as ``keras.ops.relu(x)`` or ``x * (1/6)``)
gets a *role*:

producer
    Convolutions (1-D, 2-D, 3-D, transposed, separable) and ``Dense``: choose their own output
    width (``filters``/``units``). A ``Dense`` on a flat vector (a classifier head) is never pruned;
    a ``Dense`` applied at every position of a feature map is a 1×1 conv and may be.
depthwise
    ``DepthwiseConv1D/2D``: output channels = input channels × ``depth_multiplier``. A
    ``Conv2D(groups=g)`` with one input channel per group (``g`` = input channels, ConvMixer's
    and ResNeXt's depthwise conv) is the same thing: its channels follow its input, and pruning
    sets both ``groups`` and ``filters``.
grouped
    ``Conv1D/2D/3D(groups=g)`` with ``a > 1`` input channels per group: conv group ``i`` reads
    input block ``i`` and writes its own block of ``filters/g`` outputs. Its channels follow its
    input *in whole conv groups*: the layer before it loses whole blocks of ``a`` channels
    (the planner prunes that group in multiples of ``a``), and ``groups`` shrinks with it.
    Reading a concatenation, it freezes what it reads (the blocks would straddle the parts).
channelwise
    Channel ``c`` out depends on channel ``c`` in only: normalisation over the channel axis,
    activations (layers or raw element-wise ops with scalar constants), dropout, pooling,
    padding, resizing. Layers that need the channel count intact (``GroupNormalization``,
    a ``Rescaling`` with one scale per channel) pass channels through but freeze them. A
    ``Reshape`` that keeps the last axis (squeeze-excite's ``Reshape((1, 1, C))``, MobileViT's
    unfolding into patches) and raw ``expand_dims``/``squeeze``/``reshape`` ops that do are
    channel-wise too: in channels-last memory, element ``p*C + c`` keeps its channel ``c``
    whatever the positions become. Pruning edits the channel entry of the target shape.
merge
    ``Add``, ``Multiply`` … (layers or raw ops on two tensors): inputs whose channel axis equals
    the output's are tied to one width; an input with one channel that broadcasts is not.
    An ``Add``-like merge is a *residual* tie (``coupled="skip"`` leaves it whole, as the paper
    leaves residual connections); a ``Multiply`` (a squeeze-excite or attention gate) ties
    the convs it multiplies into one unit that always shrinks as a whole.
concat / flatten
    channels are stacked / repeated once per spatial position (channels-last: ``p*C + c``).
attention
    ``MultiHeadAttention``: its heads and key sizes are not pruned, so what it reads is frozen
    and its output starts a new, frozen group; its MACs are counted exactly (see
    :mod:`cdp_tutorial.layer_costs`).
unknown
    anything else: its inputs are frozen (we cannot tell how it maps channels) and its outputs
    start new, frozen groups. Counting and pruning stay correct, only less is pruned.

``channels_first`` layers are refused with an error: every rule here assumes channels last.
"""

from __future__ import annotations

import numbers

import keras
import numpy as np

L = keras.layers

CONVS = (L.Conv1D, L.Conv2D, L.Conv3D)
TRANSPOSED_CONVS = (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)
SEPARABLE_CONVS = (L.SeparableConv1D, L.SeparableConv2D)
DEPTHWISE = (L.DepthwiseConv1D, L.DepthwiseConv2D)
PRODUCERS = CONVS + TRANSPOSED_CONVS + SEPARABLE_CONVS + (L.Dense,)
MERGES = (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum)
CHANNELWISE = (
    L.BatchNormalization, L.LayerNormalization, L.Normalization, L.PReLU,
    L.Activation, L.ReLU, L.LeakyReLU, L.ELU, L.Softmax,
    L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D, L.GaussianNoise,
    L.GaussianDropout, L.AlphaDropout, L.ActivityRegularization, L.Identity, L.Rescaling,
    L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D, L.AveragePooling1D, L.AveragePooling2D,
    L.AveragePooling3D, L.GlobalAveragePooling1D, L.GlobalAveragePooling2D,
    L.GlobalAveragePooling3D, L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalMaxPooling3D,
    L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D, L.Cropping1D, L.Cropping2D, L.Cropping3D,
    L.UpSampling1D, L.UpSampling2D, L.UpSampling3D, L.Resizing,
    L.RandomFlip, L.RandomCrop, L.RandomTranslation, L.RandomRotation, L.RandomZoom,
    L.RandomContrast, L.RandomBrightness,
)
#: Layers that map channel c to channel c but need all channels (their weights or groups would break).
FREEZING_PASSTHROUGH = (L.GroupNormalization, L.UnitNormalization)
#: Merges that gate rather than add: they tie channels but are no residual connection.
GATES = (L.Multiply,)
ATTENTION = (L.MultiHeadAttention,)
#: Raw ``keras.ops`` that only rearrange axes (lower-case class names).
RESHAPE_OPS = frozenset({"reshape", "expanddims", "squeeze"})

#: Raw ``keras.ops`` element-wise operations (class names, lower case): one output channel per input
#: channel when every other argument is a scalar.
ELEMENTWISE_OPS = frozenset("""
    relu relu6 sigmoid hardsigmoid hardsilu hardswish silu swish gelu tanh softplus softsign elu
    selu leakyrelu celu mish logsigmoid hardtanh sparseplus squareplus tanhshrink softshrink
    hardshrink exp expm1 log log1p sqrt rsqrt square abs absolute negative reciprocal sign clip
    cast sin cos floor ceil round erf add subtract multiply divide truedivide maximum minimum power
""".split())
BINARY_OPS = frozenset("add subtract multiply divide truedivide maximum minimum power".split())


def channels(shape) -> int | None:
    """Channel count of a channels-last shape (1 for a scalar per example; ``None`` if unknown)."""
    if len(shape) <= 1:
        return 1
    return None if shape[-1] is None else int(shape[-1])


def positions(shape) -> int | None:
    """Spatial positions per channel of a channels-last shape (``H*W``; 1 for a flat vector).

    ``None`` when a spatial size is unknown (a model built on ``(None, None, 3)``).
    """
    if len(shape) <= 2:
        return 1
    if any(d is None for d in shape[1:-1]):
        return None
    return int(np.prod([int(d) for d in shape[1:-1]]))


def conv_group_sizes(op, in_channels: int) -> tuple[int, int]:
    """``(input channels, filters)`` per conv group of a grouped conv (``(C_in, filters)`` if not)."""
    groups = int(getattr(op, "groups", 1) or 1)
    return in_channels // groups, int(op.filters) // groups


def is_gate(op) -> bool:
    """A merge that multiplies (a squeeze-excite or attention gate) rather than adds."""
    if isinstance(op, keras.layers.Layer):
        return isinstance(op, GATES)
    return type(op).__name__.lower() == "multiply"


def is_reshape(op) -> bool:
    """A ``Reshape`` layer or a raw ``reshape``/``expand_dims``/``squeeze`` op."""
    if isinstance(op, keras.layers.Layer):
        return isinstance(op, L.Reshape)
    return type(op).__name__.lower() in RESHAPE_OPS


def reshape_keeps_channels(op, in_shape, out_shape) -> bool:
    """A reshape whose last axis is the input's channel axis, whole: channel ``c`` stays ``c``.

    In channels-last memory element ``(p, c)`` sits at ``p*C + c``; a reshape to ``(..., C)``
    regroups the positions ``p`` only (adding or removing unit axes is the common case).
    """
    return (is_reshape(op) and len(in_shape) > 1 and len(out_shape) > 1
            and in_shape[-1] is not None and in_shape[-1] == out_shape[-1])


def check_channels_last(operation) -> None:
    """Refuse ``data_format="channels_first"``: every count here assumes channels last."""
    if getattr(operation, "data_format", None) == "channels_first":
        raise ValueError(
            f"layer {operation.name!r} ({type(operation).__name__}) uses data_format="
            "'channels_first'; cdp_tutorial counts and prunes channels-last models only. Rebuild "
            "the model with data_format='channels_last' (Keras' default) to profile or prune it"
        )


def is_scalar_constant(value) -> bool:
    """True for Python/numpy numbers and 0-d arrays: constants that treat every channel alike."""
    if isinstance(value, (numbers.Number, np.number, bool, str)) or value is None:
        return True
    return isinstance(value, np.ndarray) and value.ndim == 0


def is_elementwise_op(operation, n_tensors: int, constants) -> bool:
    """A raw op that maps each channel on its own: element-wise with scalar constants only."""
    if isinstance(operation, keras.layers.Layer):
        return False
    name = type(operation).__name__.lower()
    return (name in ELEMENTWISE_OPS and n_tensors == 1
            and all(is_scalar_constant(c) for c in constants))


def is_merge_op(operation, n_tensors: int) -> bool:
    """A raw element-wise op on two or more tensors (``a * b``, ``keras.ops.add(a, b)``)."""
    return (not isinstance(operation, keras.layers.Layer) and n_tensors >= 2
            and type(operation).__name__.lower() in BINARY_OPS)


def channel_axis_is_last(layer, rank: int) -> bool:
    """For a normalisation layer: does it normalise over the last axis only?"""
    axis = getattr(layer, "axis", -1)
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    return [a % rank for a in axes] == [rank - 1]


def passthrough_freeze_reason(layer, in_shape, out_shape) -> str | None:
    """Why a channel-wise layer must keep its channels (``None`` if it may follow pruning)."""
    name = f"{layer.name!r} ({type(layer).__name__})"
    if isinstance(layer, FREEZING_PASSTHROUGH):
        return f"{name} needs every channel (groups or a norm across channels)"
    if isinstance(layer, L.Rescaling):
        if not (is_scalar_constant(layer.scale) or np.ndim(layer.scale) == 0) or \
                not (is_scalar_constant(layer.offset) or np.ndim(layer.offset) == 0):
            return f"{name} has one scale or offset per channel"
    if isinstance(layer, L.PReLU):
        shared = layer.shared_axes or []
        if len(in_shape) - 1 in [a % len(in_shape) for a in shared]:
            return f"{name} shares its slope across channels"
    if isinstance(layer, (L.BatchNormalization, L.LayerNormalization, L.Normalization)):
        if not channel_axis_is_last(layer, len(in_shape)):
            return f"{name} normalises over an axis other than the channel axis"
    if channels(out_shape) != channels(in_shape):
        return f"{name} changes the channel count"
    return None
