"""The channel graph: which filters may shrink on their own, and which must shrink together.

Pruning a conv layer's filters changes the width of its output tensor, and every layer that reads
that tensor must follow: batch norm, activations and pooling pass the channels through, the next
conv loses input channels, a ``Flatten`` + ``Dense`` loses whole columns. Some widths are *coupled*:
the inputs of an ``Add`` must have one width, so the convs that feed it (a ResNet's last bottleneck
conv and its shortcut, every block of a stage) can only shrink together.

:func:`analyse` walks a Keras model once and answers, with no rebuilding:

* which **channel group** each tensor's channels belong to (a union-find over producers, merged at
  ``Add``-like layers; Torch-Pruning's dependency graph is the same idea);
* how each layer's input and output channels are laid out in terms of those groups
  (:class:`Layout`: a group, a concatenation, a flatten, a depthwise multiplier), which is all the
  complexity counter and the weight slicer need;
* which groups must never be pruned, and why (the model's input and output, dense layers, layers
  we cannot see inside).

Layers are classified by what they do to channels:

producer
    ``Conv2D``, ``SeparableConv2D``, ``Dense``: choose their own output width (``filters``/``units``).
depthwise
    ``DepthwiseConv2D``: output channels = input channels × ``depth_multiplier``.
channel-wise
    ``BatchNormalization``, ``LayerNormalization`` (last axis), activations, dropout, pooling,
    padding, cropping, up-sampling, global pooling: channels pass through unchanged.
merge
    ``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Maximum``, ``Minimum``: all inputs share one width.
concatenate / flatten
    channels are stacked / repeated once per spatial position (NHWC: index ``p*C + c``).
unknown
    anything else: its inputs are frozen (we cannot tell how it maps channels) and its output
    starts a new, frozen group.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np

L = keras.layers

PRODUCERS = (L.Conv2D, L.SeparableConv2D, L.Dense)
DEPTHWISE = (L.DepthwiseConv2D,)
MERGES = (L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum)
CHANNELWISE = (
    L.BatchNormalization,
    L.Activation, L.ReLU, L.LeakyReLU, L.ELU, L.Softmax,
    L.Dropout, L.SpatialDropout2D, L.GaussianNoise, L.GaussianDropout, L.AlphaDropout,
    L.MaxPooling2D, L.AveragePooling2D, L.GlobalAveragePooling2D, L.GlobalMaxPooling2D,
    L.ZeroPadding2D, L.Cropping2D, L.UpSampling2D, L.Identity, L.Rescaling,
    L.ActivityRegularization, L.Resizing, L.RandomFlip, L.RandomCrop, L.RandomTranslation,
    L.RandomRotation, L.RandomZoom, L.RandomContrast,
)


# --------------------------------------------------------------------------------------------
# Layouts: how a tensor's channels are made of group channels
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """The channels of one tensor, expressed in channel groups.

    ``kind`` is one of

    ``"group"``   the channels of group ``group``, in order;
    ``"concat"``  the channels of ``parts``, one after another (``Concatenate``);
    ``"repeat"``  ``factor`` copies of ``parts[0]``, position-major (``Flatten`` of NHWC: ``p*C + c``);
    ``"expand"``  each channel of ``parts[0]`` repeated ``factor`` times in place
                  (``DepthwiseConv2D`` with ``depth_multiplier``: channel ``c*m + j``).
    """

    kind: str
    group: int | None = None
    parts: tuple["Layout", ...] = ()
    factor: int = 1

    def coefficients(self, find) -> dict[int, int]:
        """Width as a linear combination of group widths: ``{root group: multiplier}``."""
        if self.kind == "group":
            return {find(self.group): 1}
        total: dict[int, int] = {}
        for part in self.parts:
            for g, c in part.coefficients(find).items():
                total[g] = total.get(g, 0) + c * (self.factor if self.kind != "concat" else 1)
        return total

    def indices(self, kept: dict[int, np.ndarray], widths: dict[int, int], find) -> np.ndarray:
        """Indices (into the original tensor) of the channels that survive pruning.

        ``kept[g]`` holds the surviving channel indices of root group ``g``; ``widths[g]`` its
        original width.
        """
        if self.kind == "group":
            return kept[find(self.group)]
        if self.kind == "concat":
            out, offset = [], 0
            for part in self.parts:
                out.append(part.indices(kept, widths, find) + offset)
                offset += part.width(widths, find)
            return np.concatenate(out)
        inner = self.parts[0].indices(kept, widths, find)
        if self.kind == "repeat":
            c = self.parts[0].width(widths, find)
            return (np.arange(self.factor)[:, None] * c + inner[None, :]).ravel()
        # "expand": depthwise channel c*m + j for each surviving input channel c
        return (inner[:, None] * self.factor + np.arange(self.factor)[None, :]).ravel()

    def width(self, widths: dict[int, int], find) -> int:
        return int(sum(c * widths[g] for g, c in self.coefficients(find).items()))


# --------------------------------------------------------------------------------------------
# The graph
# --------------------------------------------------------------------------------------------
@dataclass
class LayerInfo:
    """One layer of the model, as the channel graph sees it."""

    name: str
    layer: object
    role: str  # "input", "producer", "depthwise", "channelwise", "merge", "concat", "flatten", "unknown"
    parents: list[str]
    in_layout: Layout | None
    out_layout: Layout
    in_positions: int  # spatial positions per input channel (H*W; 1 after flattening)
    out_positions: int
    out_shape: tuple


@dataclass
class Group:
    """A set of channels that must keep one width: the output of one producer, or of several tied by merges."""

    id: int
    width: int
    producers: list[str] = field(default_factory=list)
    merged_by: list[str] = field(default_factory=list)
    frozen_by: list[str] = field(default_factory=list)

    @property
    def coupled(self) -> bool:
        """True if the group was formed by a merge (``Add`` …), i.e. residual channels."""
        return bool(self.merged_by)

    @property
    def name(self) -> str:
        """The first producer's name, plus how many are tied to it."""
        if not self.producers:
            return f"group{self.id}"
        more = len(self.producers) - 1
        return self.producers[0] + (f" (+{more} tied)" if more else "")


class ChannelGraph:
    """The result of :func:`analyse`: layers in topological order, their layouts, and the groups."""

    def __init__(self, model, layers, groups, parent, unknown):
        self.model = model
        self.layers: dict[str, LayerInfo] = layers
        self._parent = parent
        self.groups: dict[int, Group] = groups  # root id -> group
        self.unknown: list[str] = unknown

    def find(self, g: int) -> int:
        """Root of raw group id ``g`` (union-find with path halving)."""
        parent = self._parent
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    def group_of(self, layer_name: str) -> Group:
        """The group a producer layer's output belongs to."""
        info = self.layers[layer_name]
        if info.out_layout.kind != "group":
            raise ValueError(f"layer {layer_name!r} does not produce a single channel group")
        return self.groups[self.find(info.out_layout.group)]

    def prunable_groups(self, coupled: str = "skip") -> list[Group]:
        """Groups Algorithm 1 may shrink, in model order.

        ``coupled="skip"`` leaves groups tied by a merge at full width (the paper does not prune
        residual connections); ``coupled="tie"`` lets such a group shrink as one unit.
        """
        out = []
        for g in self.groups.values():
            if g.frozen_by or not g.producers:
                continue
            if g.coupled and coupled == "skip":
                continue
            out.append(g)
        return out

    def widths(self) -> dict[int, int]:
        return {gid: g.width for gid, g in self.groups.items()}


def _channels(shape) -> int:
    return int(shape[-1]) if len(shape) > 1 else 1


def _positions(shape) -> int:
    return int(np.prod([int(d) for d in shape[1:-1]])) if len(shape) > 2 else 1


def _single_node(layer):
    nodes = layer._inbound_nodes
    if len(nodes) != 1:
        raise ValueError(
            f"layer {layer.name!r} is called {len(nodes)} times in the model; shared layers are not "
            "supported (give each call its own layer)"
        )
    return nodes[0]


def _tensor_shape(tensor) -> tuple:
    return tuple(tensor.shape)


def check_model(model) -> None:
    """Raise ``TypeError``/``ValueError`` early if ``model`` is not a built Keras model we can read."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"expected a keras.Model (Sequential or functional), got {type(model).__name__}"
        )
    if not model.built or not getattr(model, "inputs", None):
        raise ValueError(
            "the model has no known input shape; build it with keras.Input(...) "
            "(functional) or keras.Sequential([keras.Input(shape), ...])"
        )
    if len(model.inputs) != 1:
        raise ValueError(f"only single-input models are supported; this one has {len(model.inputs)}")


def analyse(model) -> ChannelGraph:
    """Walk ``model`` once and build its :class:`ChannelGraph`.

    Parameters
    ----------
    model : keras.Model
        A built Sequential or functional model with one input.

    Returns
    -------
    ChannelGraph

    Examples
    --------
    >>> from cdp_tutorial.models import resnet50
    >>> g = analyse(resnet50())
    >>> g.group_of("conv2_block1_3_conv").producers[:2]
    ['conv2_block1_0_conv', 'conv2_block1_3_conv']
    """
    check_model(model)
    parent: list[int] = []
    raw_width: list[int] = []
    producers: dict[int, list[str]] = {}
    merged_by: dict[int, list[str]] = {}
    frozen_by: dict[int, list[str]] = {}

    def new_group(width: int, producer: str | None = None, frozen: str | None = None) -> Layout:
        gid = len(parent)
        parent.append(gid)
        raw_width.append(width)
        producers[gid] = [producer] if producer else []
        merged_by[gid], frozen_by[gid] = [], [frozen] if frozen else []
        return Layout("group", group=gid)

    def find(g: int) -> int:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[rb] = ra

    def freeze(layout: Layout, reason: str) -> None:
        for g in layout.coefficients(find):
            frozen_by[g].append(reason)

    layers: dict[str, LayerInfo] = {}
    unknown: list[str] = []
    for layer in _topological(model):
        name = layer.name
        if isinstance(layer, keras.layers.InputLayer):
            shape = _tensor_shape(layer.output)
            layers[name] = LayerInfo(name, layer, "input", [], None,
                                     new_group(_channels(shape), frozen="model input"),
                                     _positions(shape), _positions(shape), shape)
            continue
        node = _single_node(layer)
        in_tensors = list(node.input_tensors)
        parent_names = [t._keras_history.operation.name for t in in_tensors]
        in_layouts = []
        for pname, tensor in zip(parent_names, in_tensors):
            if pname in layers:
                in_layouts.append(layers[pname].out_layout)
            else:  # a tensor from outside model.layers (a raw op, or a Sequential's input)
                shape = _tensor_shape(tensor)
                reason = "model input" if tensor is model.inputs[0] else f"produced by {pname!r}"
                in_layouts.append(new_group(_channels(shape), frozen=reason))
        out_shape = _tensor_shape(layer.output)
        in_shape = _tensor_shape(in_tensors[0])
        in_layout = in_layouts[0]
        role, out_layout = _classify(layer, in_layouts, in_shape, out_shape, new_group, union,
                                     freeze, merged_by, find)
        if role == "unknown":
            unknown.append(name)
        layers[name] = LayerInfo(name, layer, role, parent_names, in_layout, out_layout,
                                 _positions(in_shape), _positions(out_shape), out_shape)

    for out in model.outputs:
        src = out._keras_history.operation.name
        if src in layers:
            freeze(layers[src].out_layout, "model output")

    groups: dict[int, Group] = {}
    for gid in range(len(parent)):
        root = find(gid)
        grp = groups.setdefault(root, Group(root, raw_width[root]))
        grp.producers += producers[gid]
        grp.merged_by += merged_by[gid]
        grp.frozen_by += frozen_by[gid]
    # keep producer order as in the model
    order = {name: i for i, name in enumerate(layers)}
    for grp in groups.values():
        grp.producers.sort(key=order.__getitem__)
        grp.merged_by = sorted(set(grp.merged_by), key=order.__getitem__)
        grp.frozen_by = list(dict.fromkeys(grp.frozen_by))
    groups = dict(sorted(groups.items(), key=lambda kv: min(
        (order[p] for p in kv[1].producers), default=-1)))
    return ChannelGraph(model, layers, groups, parent, unknown)


def _classify(layer, in_layouts, in_shape, out_shape, new_group, union, freeze, merged_by, find):
    """Role of ``layer`` and the layout of its output (see the module docstring)."""
    name = layer.name
    in_layout = in_layouts[0]
    if isinstance(layer, PRODUCERS):
        groups = getattr(layer, "groups", 1)
        if groups != 1:
            freeze(in_layout, f"grouped conv {name!r}")
            return "producer", new_group(_channels(out_shape), name, f"grouped conv {name!r}")
        if isinstance(layer, L.Dense):
            return "producer", new_group(_channels(out_shape), name,
                                         f"dense layer {name!r} (only conv filters are pruned)")
        return "producer", new_group(_channels(out_shape), name)
    if isinstance(layer, DEPTHWISE):
        m = int(layer.depth_multiplier)
        return "depthwise", in_layout if m == 1 else Layout("expand", parts=(in_layout,), factor=m)
    if isinstance(layer, L.LayerNormalization):
        axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        if [a % len(in_shape) for a in axis] == [len(in_shape) - 1]:
            return "channelwise", in_layout
    elif isinstance(layer, L.BatchNormalization):
        if layer.axis % len(in_shape) == len(in_shape) - 1:
            return "channelwise", in_layout
    elif isinstance(layer, CHANNELWISE):
        if _channels(out_shape) == _channels(in_shape):
            return "channelwise", in_layout
    elif isinstance(layer, MERGES):
        if all(lay.kind == "group" for lay in in_layouts):
            for lay in in_layouts[1:]:
                union(in_layout.group, lay.group)
            merged_by[in_layout.group].append(name)
            return "merge", in_layout
        for lay in in_layouts:  # merging concatenations etc.: we cannot tie those, so freeze them
            freeze(lay, f"merge of mixed channels at {name!r}")
        return "merge", in_layout
    elif isinstance(layer, L.Concatenate):
        if layer.axis % len(in_shape) == len(in_shape) - 1:
            return "concat", Layout("concat", parts=tuple(in_layouts))
    elif isinstance(layer, L.Flatten):
        positions = _positions(in_shape)
        return "flatten", in_layout if positions == 1 else Layout(
            "repeat", parts=(in_layout,), factor=positions)
    for lay in in_layouts:
        freeze(lay, f"read by unsupported layer {name!r} ({type(layer).__name__})")
    return "unknown", new_group(_channels(out_shape), None,
                                f"output of unsupported layer {name!r} ({type(layer).__name__})")


def _topological(model) -> list:
    """The model's layers with every layer after the layers it reads (Sequential: in order)."""
    layers = list(model.layers)
    by_name = {layer.name: layer for layer in layers}
    if isinstance(model, keras.Sequential):
        return layers
    seen: set[str] = set()
    order: list = []

    def visit(layer):
        stack = [(layer, False)]
        while stack:
            current, done = stack.pop()
            if done:
                if current.name not in seen:
                    seen.add(current.name)
                    order.append(current)
                continue
            if current.name in seen:
                continue
            stack.append((current, True))
            if not isinstance(current, keras.layers.InputLayer):
                for t in _single_node(current).input_tensors:
                    p = by_name.get(t._keras_history.operation.name)
                    if p is not None and p.name not in seen:
                        stack.append((p, False))

    for layer in layers:
        visit(layer)
    return order
