"""The walk behind :func:`cdp_tutorial.graph.analyse`: every call of a model, once, inputs first.

:class:`GraphBuilder` visits the calls a model's outputs depend on (inside nested models too),
asks :mod:`cdp_tutorial.channel_rules` what each one does to channels, and keeps a union-find over
channel groups: which producers' widths are tied, which groups are frozen and why, and in what
block size a group may shrink (a grouped conv reads whole blocks). It also carries every tensor's
shape, so a model built on ``(None, None, 3)`` can be walked at a chosen input size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import keras

from cdp_tutorial import channel_rules as rules
from cdp_tutorial import keras_internals as internals
from cdp_tutorial.layouts import Layout

L = keras.layers

#: Why a group may be frozen: the kinds :class:`GraphBuilder` records (the unreachable-target
#: message groups its advice by them).
FREEZE_KINDS = ("input", "output", "dense head", "attention", "grouped conv", "needs all channels",
                "mixed merge", "unknown op")


@dataclass
class LayerInfo:
    """One operation of the model (a layer or a raw op), as the channel graph sees it."""

    name: str
    layer: object  # the keras.Operation (a Layer, or a raw op with no weights)
    role: str  # "producer", "depthwise", "grouped", "channelwise", "merge", "concat", "flatten",
    #            "attention", "unknown"
    parents: list[str]
    in_layout: Layout | None
    out_layout: Layout
    in_positions: int | None  # spatial positions per input channel (H*W; 1 after flattening)
    out_positions: int | None  # (None: unknown, for a model built on (None, None, C))
    out_shape: tuple
    in_shape: tuple = ()
    scope: str = ""  # the nested model it sits in ("" for the top level)
    call_shapes: dict = field(default_factory=dict)  # attention: the query, key and value shapes


class GraphBuilder:
    """Union-find over channel groups, filled in by walking the graph's nodes in order."""

    def __init__(self):
        self.parent: list[int] = []
        self.raw_width: list[int] = []
        self.producers: dict[int, list[str]] = {}
        self.merged_by: dict[int, list[str]] = {}
        self.gated_by: dict[int, list[str]] = {}
        self.frozen_by: dict[int, list[tuple[str, str]]] = {}  # (kind, reason)
        self.block: dict[int, int] = {}  # root -> channels per block the group must shrink by
        self.layers: dict[str, LayerInfo] = {}
        self.unknown: list[str] = []

    # -- union-find ---------------------------------------------------------------------------
    def new_group(self, width: int, producer: str | None = None, frozen: str | None = None,
                  kind: str = "unknown op") -> Layout:
        gid = len(self.parent)
        self.parent.append(gid)
        self.raw_width.append(width)
        self.producers[gid] = [producer] if producer else []
        self.merged_by[gid], self.gated_by[gid] = [], []
        self.frozen_by[gid] = [(kind, frozen)] if frozen else []
        self.block[gid] = 1
        return Layout("group", group=gid)

    def find(self, g: int) -> int:
        parent = self.parent
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    def union(self, a: int, b: int) -> bool:
        """Tie groups ``a`` and ``b``; ``True`` if they were two groups before."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self.parent[rb] = ra
        self.block[ra] = math.lcm(self.block[ra], self.block[rb])
        return True

    def freeze(self, layout: Layout, reason: str, kind: str) -> None:
        for g in layout.coefficients(self.find):
            self.frozen_by[g].append((kind, reason))

    # -- the walk -----------------------------------------------------------------------------
    def walk(self, outputs, layouts: dict, shapes: dict, scope: str) -> None:
        """Visit every call that ``outputs`` depend on, inputs first.

        ``layouts`` and ``shapes`` map ``id(tensor)`` to its :class:`Layout` and its shape (the
        symbolic one, or the one at the chosen input size); both are filled in as we go.
        """
        for operation, node in nodes_in_order(outputs, layouts):
            in_tensors = internals.node_input_tensors(node)
            out_tensors = internals.node_output_tensors(node)
            if any(id(t) not in layouts for t in in_tensors):
                raise ValueError(f"{operation.name!r} reads a tensor that is not computed from the "
                                 "model's single input; only single-input models are supported")
            in_layouts = [layouts[id(t)] for t in in_tensors]
            in_shapes = [shapes[id(t)] for t in in_tensors]
            if is_nested_model(operation):
                self._enter(operation, in_tensors, out_tensors, layouts, shapes, scope)
                continue
            rules.check_channels_last(operation)
            name = operation.name
            if name in self.layers:
                raise ValueError(
                    f"layer {name!r} is used at two places of the model (a shared layer, or two "
                    "layers with one name in nested models); shared layers cannot be pruned: give "
                    "each use its own layer"
                )
            out_shapes = _output_shapes(operation, node, in_tensors, in_shapes, out_tensors)
            for tensor, shape in zip(out_tensors, out_shapes):
                shapes[id(tensor)] = shape
            in_shape = in_shapes[0] if in_shapes else ()
            args, kwargs = internals.node_arguments(node)
            constants = [a for a in list(args) + list(kwargs.values())
                         if not isinstance(a, keras.KerasTensor)]
            role, out_layout = self._classify(operation, in_layouts, in_shapes, out_shapes[0],
                                              constants)
            out_layouts = [out_layout] + [
                self.new_group(_width(s, name), None, f"extra output of {name!r}")
                for s in out_shapes[1:]]
            if role == "unknown":
                self.unknown.append(name)
            for tensor, lay in zip(out_tensors, out_layouts):
                layouts[id(tensor)] = lay
            self.layers[name] = LayerInfo(
                name, operation, role, [internals.producer_of(t)[0].name for t in in_tensors],
                in_layouts[0] if in_layouts else None, out_layout,
                rules.positions(in_shape) if in_shape else 1, rules.positions(out_shapes[0]),
                out_shapes[0], in_shape, scope,
                _attention_shapes(node, shapes) if role == "attention" else {})

    def _enter(self, model, in_tensors, out_tensors, layouts, shapes, scope) -> None:
        """Walk a model used as a layer: its inputs are the outer call's inputs."""
        inner_in, inner_out = list(model.inputs), list(model.outputs)
        if len(inner_in) != len(in_tensors) or len(inner_out) != len(out_tensors):
            raise ValueError(f"nested model {model.name!r} is called with a different number of "
                             "inputs or outputs than it declares; it cannot be walked")
        for inner, outer in zip(inner_in, in_tensors):
            layouts[id(inner)], shapes[id(inner)] = layouts[id(outer)], shapes[id(outer)]
        self.walk(inner_out, layouts, shapes, f"{scope}{model.name}/")
        for inner, outer in zip(inner_out, out_tensors):
            layouts[id(outer)], shapes[id(outer)] = layouts[id(inner)], shapes[id(inner)]

    def _classify(self, op, in_layouts, in_shapes, out_shape, constants):
        """Role of ``op`` and the layout of its (first) output (see :mod:`channel_rules`)."""
        name, kind = op.name, type(op).__name__
        in_layout = in_layouts[0] if in_layouts else None
        in_shape = in_shapes[0] if in_shapes else ()
        out_channels = _width(out_shape, name)
        if isinstance(op, rules.ATTENTION):
            for lay in in_layouts:
                self.freeze(lay, f"read by attention layer {name!r} (its heads are not pruned)",
                            "attention")
            return "attention", self.new_group(out_channels, None, f"output of attention layer "
                                                                   f"{name!r}", "attention")
        if isinstance(op, rules.PRODUCERS):
            if getattr(op, "groups", 1) != 1:
                return self._grouped(op, in_layout, in_shape, out_channels)
            if isinstance(op, L.Dense) and len(in_shape) <= 2:
                return "producer", self.new_group(
                    out_channels, name, f"dense layer {name!r} (only conv filters are pruned)",
                    "dense head")
            return "producer", self.new_group(out_channels, name)
        if isinstance(op, rules.DEPTHWISE):
            m = int(op.depth_multiplier)
            return "depthwise", in_layout if m == 1 else Layout("expand", parts=(in_layout,), factor=m)
        if isinstance(op, rules.CHANNELWISE + rules.FREEZING_PASSTHROUGH) and len(in_layouts) == 1:
            reason = rules.passthrough_freeze_reason(op, in_shape, out_shape)
            if reason is None:
                return "channelwise", in_layout
            if rules.channels(in_shape) == out_channels:
                self.freeze(in_layout, reason, "needs all channels")
                return "channelwise", in_layout
        elif rules.reshape_keeps_channels(op, in_shape, out_shape) and len(in_layouts) == 1:
            return "channelwise", in_layout
        elif rules.is_elementwise_op(op, len(in_layouts), constants) and \
                tuple(in_shape) == tuple(out_shape):
            return "channelwise", in_layout
        elif isinstance(op, rules.MERGES) or rules.is_merge_op(op, len(in_layouts)):
            return "merge", self._merge(op, in_layouts, in_shapes, out_channels)
        elif isinstance(op, L.Concatenate) and op.axis % len(in_shape) == len(in_shape) - 1:
            return "concat", Layout("concat", parts=tuple(in_layouts))
        elif isinstance(op, L.Flatten) and rules.positions(in_shape) is not None:
            pos = rules.positions(in_shape)
            return "flatten", in_layout if pos == 1 else Layout("repeat", parts=(in_layout,), factor=pos)
        for lay in in_layouts:
            self.freeze(lay, f"read by {name!r} ({kind}), whose channel mapping is unknown",
                        "unknown op")
        return "unknown", self.new_group(out_channels, None, f"output of {name!r} ({kind})")

    def _grouped(self, op, in_layout, in_shape, out_channels):
        """A grouped conv: follows its input (in whole conv groups), or is frozen if it cannot."""
        per_group_in, per_group_out = rules.conv_group_sizes(op, rules.channels(in_shape))
        if per_group_in == 1:  # one input channel per group: a depthwise conv
            return "depthwise", (in_layout if per_group_out == 1 else
                                 Layout("expand", parts=(in_layout,), factor=per_group_out))
        if in_layout.kind == "group":
            root = self.find(in_layout.group)
            self.block[root] = math.lcm(self.block[root], per_group_in)
            return "grouped", Layout("expand", parts=(in_layout,), factor=per_group_out,
                                     block=per_group_in)
        reason = (f"grouped conv {op.name!r} reads channels of several groups (a concatenation "
                  "…), so its conv groups cannot shrink whole")
        self.freeze(in_layout, reason, "grouped conv")
        return "producer", self.new_group(out_channels, op.name, reason, "grouped conv")

    def _merge(self, op, in_layouts, in_shapes, out_channels) -> Layout:
        """Tie the inputs whose channel axis equals the output's; a 1-channel broadcast stays apart."""
        tied = [lay for lay, shape in zip(in_layouts, in_shapes)
                if rules.channels(shape) == out_channels]
        if all(lay.kind == "group" for lay in tied):
            merged = [self.union(tied[0].group, lay.group) for lay in tied[1:]]
            if any(merged):  # a merge of a group with itself (around a depthwise conv) ties nothing
                (self.gated_by if rules.is_gate(op) else self.merged_by)[tied[0].group].append(op.name)
            return tied[0]
        for lay in tied:  # merging concatenations etc.: we cannot tie those, so freeze them
            self.freeze(lay, f"merge of mixed channels at {op.name!r}", "mixed merge")
        return tied[0]


def _width(shape, name: str) -> int:
    width = rules.channels(shape)
    if width is None:
        raise ValueError(f"the output of {name!r} has an unknown channel count (shape {shape}); "
                         "channels-last models with a known channel axis only")
    return width


def _output_shapes(operation, node, in_tensors, in_shapes, out_tensors) -> list[tuple]:
    """The call's output shapes: its own, or replayed when the inputs' shapes were changed."""
    if all(tuple(t.shape) == tuple(s) for t, s in zip(in_tensors, in_shapes)):
        return [tuple(t.shape) for t in out_tensors]
    try:
        return internals.node_output_shapes(node, {id(t): s for t, s in zip(in_tensors, in_shapes)})
    except Exception as error:  # noqa: BLE001 -- any Keras shape error, named for the user
        raise ValueError(
            f"cannot infer the output shape of {operation.name!r} ({type(operation).__name__}) at "
            f"input shape {in_shapes[0] if in_shapes else ()}: {error}"
        ) from error


def _attention_shapes(node, shapes: dict) -> dict:
    """``{"query", "key", "value"}`` shapes of one attention call (``key`` defaults to ``value``)."""
    args, kwargs = internals.node_arguments(node)
    names = ("query", "value", "key")
    given = {n: kwargs[n] for n in names if kwargs.get(n) is not None}
    given.update({n: a for n, a in zip(names, args) if n not in given and a is not None})
    given.setdefault("key", given["value"])
    return {n: tuple(shapes[id(t)]) for n, t in given.items()}


def is_nested_model(operation) -> bool:
    """A functional or Sequential model used as a layer (a subclassed one is opaque: unknown)."""
    if not isinstance(operation, keras.Model):
        return False
    try:
        return bool(operation.inputs) and bool(operation.outputs)
    except (AttributeError, ValueError):
        return False


def nodes_in_order(outputs, layouts: dict) -> list:
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
