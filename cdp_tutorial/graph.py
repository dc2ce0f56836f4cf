"""The channel graph: which filters may shrink on their own, and which must shrink together.

Pruning a conv layer's filters changes the width of its output tensor, and every operation that
reads that tensor must follow: batch norm, activations and pooling pass the channels through, the
next conv loses input channels, a ``Flatten`` + ``Dense`` loses whole columns. Some widths are
*coupled*: the inputs of an ``Add`` must have one width, so the convs that feed it (a ResNet's last
bottleneck conv and its shortcut, every block of a stage) can only shrink together.

:func:`analyse` walks a Keras model once, from its outputs back to its input through the calls the
model really uses (so a ``Sequential`` built with ``.add()``, raw ``keras.ops`` between layers and
models nested as layers are all seen), and answers, with no rebuilding:

* which **channel group** each tensor's channels belong to (a union-find over producers, merged at
  ``Add``-like operations; Torch-Pruning's dependency graph is the same idea);
* how each operation's input and output channels are laid out in terms of those groups
  (:class:`Layout`: a group, a concatenation, a flatten, a depthwise multiplier), which is all the
  complexity counter and the weight slicer need;
* which groups must never be pruned, and why (the model's input and output, classifier heads,
  operations we cannot see inside). ``print(analyse(model))`` shows it all.

The per-operation rules are in :mod:`cdp_tutorial.channel_rules`; the private Keras API used to
walk the graph is in :mod:`cdp_tutorial.keras_internals`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras

from cdp_tutorial import channel_rules as rules
from cdp_tutorial import keras_internals as internals
from cdp_tutorial.checks import check_model  # noqa: F401  (its home was here; still importable)
from cdp_tutorial.layouts import Layout

L = keras.layers


# --------------------------------------------------------------------------------------------
# The graph
# --------------------------------------------------------------------------------------------
@dataclass
class LayerInfo:
    """One operation of the model (a layer or a raw op), as the channel graph sees it."""

    name: str
    layer: object  # the keras.Operation (a Layer, or a raw op with no weights)
    role: str  # "input", "producer", "depthwise", "channelwise", "merge", "concat", "flatten", "unknown"
    parents: list[str]
    in_layout: Layout | None
    out_layout: Layout
    in_positions: int  # spatial positions per input channel (H*W; 1 after flattening)
    out_positions: int
    out_shape: tuple
    in_shape: tuple = ()
    scope: str = ""  # the nested model it sits in ("" for the top level)


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

    def describe(self) -> str:
        """One paragraph: width, producers, what ties them and why the group is frozen."""
        made = ", ".join(self.producers) if self.producers else "no conv (made by an input or op)"
        lines = [f"{self.name}: {self.width} channels from {made}"]
        if self.merged_by:
            lines.append("  tied by " + ", ".join(self.merged_by))
        lines.append("  FROZEN: " + "; ".join(self.frozen_by) if self.frozen_by
                     else "  prunable" + (" (coupled: needs coupled='tie')" if self.coupled else ""))
        return "\n".join(lines)


class ChannelGraph:
    """The result of :func:`analyse`: operations in topological order, their layouts, and the groups."""

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
        if layer_name not in self.layers:
            raise ValueError(f"the model has no layer named {layer_name!r}")
        info = self.layers[layer_name]
        if info.out_layout.kind != "group":
            raise ValueError(f"layer {layer_name!r} does not produce a single channel group")
        return self.groups[self.find(info.out_layout.group)]

    def layer(self, name: str):
        """The layer called ``name``, looked up inside nested models too (``model.get_layer`` is not)."""
        if name not in self.layers:
            raise ValueError(f"the model has no layer named {name!r}")
        return self.layers[name].layer

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

    def summary(self) -> str:
        """Every channel group with a producer: what is coupled to what, and why a group is frozen."""
        groups = [g for g in self.groups.values() if g.producers]
        free = sum(1 for g in groups if not g.frozen_by and not g.coupled)
        tied = sum(1 for g in groups if not g.frozen_by and g.coupled)
        head = (f"ChannelGraph of {self.model.name!r}: {len(self.layers)} operations, "
                f"{len(groups)} channel groups ({free} prunable, {tied} prunable only with "
                f"coupled='tie', {len(groups) - free - tied} frozen)")
        return "\n".join([head] + [g.describe() for g in groups])

    __str__ = summary

    def __repr__(self) -> str:
        return self.summary().splitlines()[0]


def analyse(model) -> ChannelGraph:
    """Walk ``model`` once and build its :class:`ChannelGraph`.

    Parameters
    ----------
    model : keras.Model
        A built Sequential or functional model with one input. Models nested as layers are
        walked inside; raw ``keras.ops`` between layers are classified too.

    Returns
    -------
    ChannelGraph

    Raises
    ------
    TypeError
        If ``model`` is not a Keras model.
    ValueError
        If it has no input shape, several inputs, a ``channels_first`` layer, or a layer called
        at two places of the graph (shared layers; the message names it).

    Examples
    --------
    >>> from cdp_tutorial.models import resnet50
    >>> g = analyse(resnet50())
    >>> g.group_of("conv2_block1_3_conv").producers[:2]
    ['conv2_block1_0_conv', 'conv2_block1_3_conv']
    """
    check_model(model)
    builder = _Builder()
    layouts = {id(model.inputs[0]): builder.new_group(rules.channels(model.inputs[0].shape),
                                                      frozen="model input")}
    builder.walk(model.outputs, layouts, scope="", top=model)
    for out in model.outputs:
        builder.freeze(layouts[id(out)], "model output")
    return builder.graph(model)


class _Builder:
    """Union-find over channel groups, filled in by walking the graph's nodes in order."""

    def __init__(self):
        self.parent: list[int] = []
        self.raw_width: list[int] = []
        self.producers: dict[int, list[str]] = {}
        self.merged_by: dict[int, list[str]] = {}
        self.frozen_by: dict[int, list[str]] = {}
        self.layers: dict[str, LayerInfo] = {}
        self.unknown: list[str] = []

    # -- union-find ---------------------------------------------------------------------------
    def new_group(self, width: int, producer: str | None = None, frozen: str | None = None) -> Layout:
        gid = len(self.parent)
        self.parent.append(gid)
        self.raw_width.append(width)
        self.producers[gid] = [producer] if producer else []
        self.merged_by[gid], self.frozen_by[gid] = [], [frozen] if frozen else []
        return Layout("group", group=gid)

    def find(self, g: int) -> int:
        parent = self.parent
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra

    def freeze(self, layout: Layout, reason: str) -> None:
        for g in layout.coefficients(self.find):
            self.frozen_by[g].append(reason)

    # -- the walk -----------------------------------------------------------------------------
    def walk(self, outputs, layouts: dict, scope: str, top) -> None:
        """Visit every call that ``outputs`` depend on, inputs first; ``layouts`` maps tensors."""
        for operation, node in _nodes_in_order(outputs, layouts):
            in_tensors = internals.node_input_tensors(node)
            out_tensors = internals.node_output_tensors(node)
            missing = [t for t in in_tensors if id(t) not in layouts]
            if missing:
                raise ValueError(f"{operation.name!r} reads a tensor that is not computed from the "
                                 "model's single input; only single-input models are supported")
            in_layouts = [layouts[id(t)] for t in in_tensors]
            if _is_nested_model(operation):
                self._enter(operation, in_tensors, out_tensors, layouts, scope)
                continue
            rules.check_channels_last(operation)
            name = operation.name
            if name in self.layers:
                raise ValueError(
                    f"layer {name!r} is used at two places of the model (a shared layer, or two "
                    "layers with one name in nested models); shared layers cannot be pruned: give "
                    "each use its own layer"
                )
            in_shape = tuple(in_tensors[0].shape) if in_tensors else ()
            out_shape = tuple(out_tensors[0].shape)
            args, kwargs = internals.node_arguments(node)
            constants = [a for a in list(args) + list(kwargs.values())
                         if not isinstance(a, keras.KerasTensor)]
            role, out_layout = self._classify(operation, in_layouts, in_shape, out_shape,
                                              in_tensors, constants)
            out_layouts = [out_layout] + [
                self.new_group(rules.channels(t.shape), None, f"extra output of {name!r}")
                for t in out_tensors[1:]]
            if role == "unknown":
                self.unknown.append(name)
            for tensor, lay in zip(out_tensors, out_layouts):
                layouts[id(tensor)] = lay
            parents = [internals.producer_of(t)[0].name for t in in_tensors]
            self.layers[name] = LayerInfo(
                name, operation, role, parents, in_layouts[0] if in_layouts else None,
                out_layout, rules.positions(in_shape) if in_shape else 1,
                rules.positions(out_shape), out_shape, in_shape, scope)

    def _enter(self, model, in_tensors, out_tensors, layouts, scope) -> None:
        """Walk a model used as a layer: its inputs are the outer call's inputs."""
        inner_in, inner_out = list(model.inputs), list(model.outputs)
        if len(inner_in) != len(in_tensors) or len(inner_out) != len(out_tensors):
            raise ValueError(f"nested model {model.name!r} is called with a different number of "
                             "inputs or outputs than it declares; it cannot be walked")
        for inner, outer in zip(inner_in, in_tensors):
            layouts[id(inner)] = layouts[id(outer)]
        self.walk(inner_out, layouts, f"{scope}{model.name}/", top=model)
        for inner, outer in zip(inner_out, out_tensors):
            layouts[id(outer)] = layouts[id(inner)]

    def _classify(self, op, in_layouts, in_shape, out_shape, in_tensors, constants):
        """Role of ``op`` and the layout of its (first) output (see :mod:`channel_rules`)."""
        name, kind = op.name, type(op).__name__
        in_layout = in_layouts[0] if in_layouts else None
        out_channels = rules.channels(out_shape)
        if isinstance(op, rules.PRODUCERS):
            if getattr(op, "groups", 1) != 1:
                self.freeze(in_layout, f"grouped conv {name!r}")
                return "producer", self.new_group(out_channels, name, f"grouped conv {name!r}")
            if isinstance(op, L.Dense) and len(in_shape) <= 2:
                return "producer", self.new_group(
                    out_channels, name, f"dense layer {name!r} (only conv filters are pruned)")
            return "producer", self.new_group(out_channels, name)
        if isinstance(op, rules.DEPTHWISE):
            m = int(op.depth_multiplier)
            return "depthwise", in_layout if m == 1 else Layout("expand", parts=(in_layout,), factor=m)
        if isinstance(op, rules.CHANNELWISE + rules.FREEZING_PASSTHROUGH) and len(in_layouts) == 1:
            reason = rules.passthrough_freeze_reason(op, in_shape, out_shape)
            if reason is None:
                return "channelwise", in_layout
            if rules.channels(in_shape) == out_channels:
                self.freeze(in_layout, reason)
                return "channelwise", in_layout
        elif rules.is_elementwise_op(op, len(in_tensors), constants) and \
                tuple(in_shape) == tuple(out_shape):
            return "channelwise", in_layout
        elif isinstance(op, rules.MERGES) or rules.is_merge_op(op, len(in_tensors)):
            return "merge", self._merge(name, in_layouts, in_tensors, out_channels)
        elif isinstance(op, L.Concatenate) and op.axis % len(in_shape) == len(in_shape) - 1:
            return "concat", Layout("concat", parts=tuple(in_layouts))
        elif isinstance(op, L.Flatten):
            pos = rules.positions(in_shape)
            return "flatten", in_layout if pos == 1 else Layout("repeat", parts=(in_layout,), factor=pos)
        for lay in in_layouts:
            self.freeze(lay, f"read by {name!r} ({kind}), whose channel mapping is unknown")
        return "unknown", self.new_group(out_channels, None, f"output of {name!r} ({kind})")

    def _merge(self, name, in_layouts, in_tensors, out_channels) -> Layout:
        """Tie the inputs whose channel axis equals the output's; a 1-channel broadcast stays apart."""
        tied = [lay for lay, t in zip(in_layouts, in_tensors)
                if rules.channels(t.shape) == out_channels]
        if all(lay.kind == "group" for lay in tied):
            for lay in tied[1:]:
                self.union(tied[0].group, lay.group)
            if len(tied) > 1:
                self.merged_by[tied[0].group].append(name)
            return tied[0]
        for lay in tied:  # merging concatenations etc.: we cannot tie those, so freeze them
            self.freeze(lay, f"merge of mixed channels at {name!r}")
        return tied[0]

    def graph(self, model) -> ChannelGraph:
        groups: dict[int, Group] = {}
        for gid in range(len(self.parent)):
            root = self.find(gid)
            grp = groups.setdefault(root, Group(root, self.raw_width[root]))
            grp.producers += self.producers[gid]
            grp.merged_by += self.merged_by[gid]
            grp.frozen_by += self.frozen_by[gid]
        order = {name: i for i, name in enumerate(self.layers)}  # keep model order
        for grp in groups.values():
            grp.producers.sort(key=order.__getitem__)
            grp.merged_by = sorted(set(grp.merged_by), key=order.__getitem__)
            grp.frozen_by = list(dict.fromkeys(grp.frozen_by))
        groups = dict(sorted(groups.items(), key=lambda kv: min(
            (order[p] for p in kv[1].producers), default=-1)))
        return ChannelGraph(model, self.layers, groups, self.parent, self.unknown)


def _is_nested_model(operation) -> bool:
    """A functional or Sequential model used as a layer (a subclassed one is opaque: unknown)."""
    if not isinstance(operation, keras.Model):
        return False
    try:
        return bool(operation.inputs) and bool(operation.outputs)
    except (AttributeError, ValueError):
        return False


def _nodes_in_order(outputs, layouts: dict) -> list:
    """``(operation, node)`` of every call the ``outputs`` depend on, each after its inputs.

    Tensors already in ``layouts`` (the graph's inputs) stop the walk. Iterative, for deep models.
    """
    order, done, stack = [], set(), []
    for tensor in reversed(list(outputs)):
        if id(tensor) not in layouts:
            stack.append((internals.producer_of(tensor), False))
    while stack:
        (operation, node), expanded = stack.pop()
        if id(node) in done:
            continue
        if expanded:
            done.add(id(node))
            order.append((operation, node))
            continue
        if internals.is_input_node(node):
            raise ValueError(f"the model reads input {operation.name!r}, which is not its single "
                             "input; only single-input models are supported")
        stack.append(((operation, node), True))
        for tensor in reversed(internals.node_input_tensors(node)):
            if id(tensor) not in layouts:
                parent = internals.producer_of(tensor)
                if id(parent[1]) not in done:
                    stack.append((parent, False))
    return order
