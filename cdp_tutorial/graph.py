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
  (:class:`Layout`: a group, a concatenation, a flatten, a depthwise multiplier, conv groups),
  which is all the complexity counter and the weight slicer need;
* which groups must never be pruned, and why (the model's input and output, classifier heads,
  attention layers, operations we cannot see inside). ``print(analyse(model))`` shows it all.

What each structure becomes:

* a residual ``Add`` ties its inputs' convs into one group that ``coupled="skip"`` leaves whole;
* a squeeze-excite or attention gate (``Multiply``) ties the convs it multiplies into one group
  that shrinks as a unit (it is no residual connection); its ``Reshape((1, 1, C))``, a
  ``Flatten`` of a 1×1 map and ``expand_dims``/``squeeze`` pass channels through;
* a depthwise conv, and a ``Conv2D(groups=C)`` with one input channel per group, follow their input;
  a general grouped conv follows it in whole conv groups (the group before it shrinks in blocks);
* ``MultiHeadAttention`` freezes what it reads and starts a frozen group (its MACs are counted).

The per-operation rules are in :mod:`cdp_tutorial.channel_rules`, the walk in
:mod:`cdp_tutorial.channel_walk`, and the private Keras API it needs in
:mod:`cdp_tutorial.keras_internals`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cdp_tutorial import channel_rules as rules
from cdp_tutorial.channel_walk import FREEZE_KINDS, GraphBuilder, LayerInfo  # noqa: F401
from cdp_tutorial.checks import check_input_shape, check_model
from cdp_tutorial.layouts import Layout  # noqa: F401  (importable from here, as before)


@dataclass
class Group:
    """A set of channels that must keep one width: the output of one producer, or of several tied."""

    id: int
    width: int
    producers: list[str] = field(default_factory=list)
    merged_by: list[str] = field(default_factory=list)
    frozen_by: list[str] = field(default_factory=list)
    gated_by: list[str] = field(default_factory=list)
    frozen_kinds: list[str] = field(default_factory=list)  # one of FREEZE_KINDS per frozen_by reason
    block: int = 1  # it shrinks in multiples of this (a grouped conv reads whole blocks)

    @property
    def coupled(self) -> bool:
        """True if a residual merge (``Add`` …) tied it: what ``coupled="skip"`` leaves whole."""
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
        if self.gated_by:
            lines.append("  gated by " + ", ".join(self.gated_by) + " (shrinks as one unit)")
        if self.block > 1 and not self.frozen_by:
            lines.append(f"  shrinks in blocks of {self.block} channels (whole groups of a grouped conv)")
        lines.append("  FROZEN: " + "; ".join(self.frozen_by) if self.frozen_by
                     else "  prunable" + (" (coupled: needs coupled='tie')" if self.coupled else ""))
        return "\n".join(lines)


class ChannelGraph:
    """The result of :func:`analyse`: operations in topological order, their layouts, and the groups."""

    def __init__(self, model, layers, groups, parent, unknown, input_shape=None):
        self.model = model
        self.layers: dict[str, LayerInfo] = layers
        self._parent = parent
        self.groups: dict[int, Group] = groups  # root id -> group
        self.unknown: list[str] = unknown
        self.input_shape: tuple = tuple(input_shape or model.inputs[0].shape)  # batch axis first

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

        ``coupled="skip"`` leaves groups tied by a residual merge at full width (the paper does not
        prune residual connections); ``coupled="tie"`` lets such a group shrink as one unit. Groups
        tied by a gate (a squeeze-excite ``Multiply``) always shrink as one unit.
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

    def unknown_sizes(self) -> list[str]:
        """Operations whose output has an unknown spatial size (a model built on ``(None, None, C)``)."""
        return [name for name, info in self.layers.items() if info.out_positions is None]

    def require_sizes(self) -> None:
        """Raise a ``ValueError`` that says what to do if a spatial size is unknown (MACs need them)."""
        shape = self.input_shape
        if any(d is None for d in shape[1:]):
            example = tuple(224 if d is None else int(d) for d in shape[1:])
            raise ValueError(
                f"model {self.model.name!r} reads inputs of shape {tuple(shape[1:])}, whose sizes "
                "are unknown, and MACs and memory depend on them: pass input_shape= with the size "
                f"you will run it at, e.g. profile(model, input_shape={example}) or "
                f"plan_pruning(model, 'FA', target=0.5, input_shape={example})"
            )
        unknown = self.unknown_sizes()
        if unknown:
            info = self.layers[unknown[0]]
            raise ValueError(
                f"the output of {info.name!r} ({type(info.layer).__name__}) has an unknown size "
                f"{info.out_shape} even at input shape {shape}; its MACs cannot be counted"
            )

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


def analyse(model, input_shape=None) -> ChannelGraph:
    """Walk ``model`` once and build its :class:`ChannelGraph`.

    Parameters
    ----------
    model : keras.Model
        A built Sequential or functional model with one input. Models nested as layers are
        walked inside; raw ``keras.ops`` between layers are classified too.
    input_shape : tuple of int, optional
        The input size to walk the model at, without the batch axis, for a model built on unknown
        sizes (``keras.Input((None, None, 3))``): ``(64, 64, 3)``. It must agree with every size
        the model fixes. Without it such a model is still analysed (pruning needs no sizes), but
        :meth:`ChannelGraph.require_sizes` refuses to count it.

    Returns
    -------
    ChannelGraph

    Raises
    ------
    TypeError
        If ``model`` is not a Keras model, or ``input_shape`` not a tuple of integers.
    ValueError
        If it has no input shape, several inputs, an unknown channel count, a ``channels_first``
        layer, or a layer called at two places of the graph (shared layers; the message names
        it); or if ``input_shape`` disagrees with the model's input.

    Examples
    --------
    >>> from cdp_tutorial.models import resnet50
    >>> g = analyse(resnet50())
    >>> g.group_of("conv2_block1_3_conv").producers[:2]
    ['conv2_block1_0_conv', 'conv2_block1_3_conv']
    """
    check_model(model)
    first = model.inputs[0]
    shape = check_input_shape(input_shape, tuple(first.shape))
    if rules.channels(shape) is None:
        raise ValueError(f"model {model.name!r} reads inputs of shape {tuple(shape[1:])}, whose "
                         "channel count is unknown: build it on keras.Input((..., channels))")
    builder = GraphBuilder()
    layouts = {id(first): builder.new_group(rules.channels(shape), frozen="model input", kind="input")}
    builder.walk(model.outputs, layouts, {id(first): shape}, scope="")
    for out in model.outputs:
        builder.freeze(layouts[id(out)], "model output", "output")
    return _assemble(builder, model, shape)


def _assemble(builder: GraphBuilder, model, shape) -> ChannelGraph:
    """The builder's union-find as :class:`Group` objects, keyed by root and in model order."""
    groups: dict[int, Group] = {}
    for gid in range(len(builder.parent)):
        root = builder.find(gid)
        grp = groups.setdefault(root, Group(root, builder.raw_width[root], block=builder.block[root]))
        grp.producers += builder.producers[gid]
        grp.merged_by += builder.merged_by[gid]
        grp.gated_by += builder.gated_by[gid]
        grp.frozen_kinds += [kind for kind, _ in builder.frozen_by[gid]]
        grp.frozen_by += [reason for _, reason in builder.frozen_by[gid]]
    order = {name: i for i, name in enumerate(builder.layers)}  # keep model order
    for grp in groups.values():
        grp.producers.sort(key=order.__getitem__)
        grp.merged_by = sorted(set(grp.merged_by), key=order.__getitem__)
        grp.gated_by = sorted(set(grp.gated_by), key=order.__getitem__)
        reasons = dict(zip(grp.frozen_by, grp.frozen_kinds))  # each distinct reason once, in order
        grp.frozen_by, grp.frozen_kinds = list(reasons), list(reasons.values())
    groups = dict(sorted(groups.items(), key=lambda kv: min(
        (order[p] for p in kv[1].producers), default=-1)))
    return ChannelGraph(model, builder.layers, groups, builder.parent, builder.unknown, shape)
