"""Turn a pruning plan into a real, smaller Keras model (not a mask).

:func:`apply_plan` clones the model with ``keras.models.clone_model`` (recursively, so a backbone
nested as a layer shrinks too) and a ``clone_function`` that edits each pruned layer's ``filters``
(``units`` for a dense layer applied at every position); Keras then infers every downstream shape
(batch norm, the depthwise conv, the next conv's input channels, the dense layer after ``Flatten``)
by itself.

Layers the plan does not touch and that hold no variables (activations, pooling, a user's own
``DepthToSpace`` layer) are reused as they are, so a custom layer need not survive a round trip
through its config; every layer with weights is rebuilt (the pruned model gets weights of its own),
and so is every layer whose channel count the plan changes, with its config edited where it names
the width: ``filters``/``units`` of pruned producers, ``groups`` and ``filters`` of a grouped conv
that follows its input, the channel entry of a ``Reshape``'s target shape. A layer that cannot be
rebuilt from its config raises an error that names it and says why.

By default the new model is freshly initialised: the paper trains the pruned architecture once,
from scratch. With ``keep_weights=True`` the surviving filters keep their trained weights, and
every layer that reads them is sliced to match, for fine-tuning experiments. Which filters survive
is a seeded random choice (the paper removes filters at random, not by rank), or, given
``importance={layer: scores}``, the highest-scoring ones: the hook importance criteria plug into.
"""

from __future__ import annotations

import keras
import numpy as np

from cdp_tutorial import channel_rules as rules
from cdp_tutorial.checks import check_model
from cdp_tutorial.graph import analyse

L = keras.layers


def apply_plan(model, plan, *, keep_weights: bool = False, seed=None,
               importance=None) -> keras.Model:
    """Build the smaller model that ``plan`` describes.

    Parameters
    ----------
    model : keras.Model
        The model the plan was made for (same layer names and widths).
    plan : PruningPlan
        From :func:`cdp_tutorial.plan_pruning` or :func:`cdp_tutorial.plan_uniform`.
    keep_weights : bool, default False
        ``False``: fresh initialisation (train from scratch, as the paper does).
        ``True``: copy the weights of the surviving filters and slice every layer that reads them.
    seed : int, optional
        Chooses which filters survive when ``keep_weights``; defaults to the plan's seed.
    importance : mapping, optional
        ``{conv layer name: 1-D scores, one per filter}``: with ``keep_weights=True`` the surviving
        filters of that layer's channel group are the highest-scoring ones (ties broken by the
        lower index) instead of a seeded random draw. For convs tied by an ``Add``, give the scores
        of any layer of the group; scores given for several layers of one group are summed.
        Groups without scores keep the seeded random choice.

    Returns
    -------
    keras.Model
        A new model with the same layer names and fewer filters; the original is untouched.

    Raises
    ------
    TypeError
        If ``model`` is not a Keras model.
    ValueError
        If the plan does not match the model (unknown layer, different original width, tied layers
        given different widths, a width that is not a whole number of a grouped conv's groups), or
        ``importance`` names an unknown layer, has the wrong length, holds non-finite scores, or
        is given without ``keep_weights=True``; if a layer that must be rebuilt (it has weights,
        or the plan changes its channels) cannot be rebuilt from its config (the message names it).

    Examples
    --------
    >>> import cdp_tutorial as cdp
    >>> base = cdp.models.vgg16()
    >>> small = cdp.apply_plan(base, cdp.plan_pruning(base, "PA", target=0.2, seed=0))
    >>> small.count_params() < 0.2 * base.count_params()
    True
    """
    check_model(model)
    graph = analyse(model)
    widths = _check_plan(graph, plan)
    if importance is not None and not keep_weights:
        raise ValueError(
            "importance chooses which trained filters survive, so it needs keep_weights=True; "
            "without it the pruned model is freshly initialised and scores have no effect"
        )

    new_widths = group_widths(graph, widths)

    def clone_function(layer):
        info = graph.layers.get(layer.name)
        if info is None or info.layer is not layer:
            return _rebuilt(layer, {}, "it is not part of the walked graph")
        changes = _config_changes(graph, info, widths, new_widths)
        if changes is None and not getattr(layer, "variables", None):
            return layer  # weightless and untouched: reuse it as it is
        why = (f"the plan changes its channels ({_channel_text(graph, info, new_widths)})"
               if changes is not None else "it holds variables, and the pruned model gets its own")
        return _rebuilt(layer, changes or {}, why)

    # recursive: a model nested as a layer (a backbone) is rebuilt layer by layer, so its convs shrink
    pruned = keras.models.clone_model(model, clone_function=clone_function, recursive=True)
    if keep_weights:
        _copy_surviving_weights(graph, analyse(pruned), widths,
                                plan.seed if seed is None else seed, importance)
    return pruned


def _width_key(layer) -> str:
    return "units" if isinstance(layer, L.Dense) else "filters"


def group_widths(graph, widths) -> dict:
    """``{root group id: width}`` after pruning: the plan's width for each pruned group, else the original."""
    new = graph.widths()
    for name, width in widths.items():
        new[graph.find(graph.layers[name].out_layout.group)] = int(width)
    return new


def _config_changes(graph, info, widths, new_widths) -> dict | None:
    """Config entries to edit for the pruned model; ``{}`` if its channels change but its config
    names no width; ``None`` if the plan leaves its channels as they are."""
    original = graph.widths()
    out_old = info.out_layout.width(original, graph.find)
    out_new = info.out_layout.width(new_widths, graph.find)
    in_old = in_new = None
    if info.in_layout is not None:
        in_old = info.in_layout.width(original, graph.find)
        in_new = info.in_layout.width(new_widths, graph.find)
    if info.name in widths:
        return {_width_key(info.layer): int(widths[info.name])}
    if (in_old, out_old) == (in_new, out_new):
        return None
    layer = info.layer
    if info.role in ("depthwise", "grouped") and isinstance(layer, rules.CONVS):
        return {"groups": in_new // int(layer.kernel.shape[-2]), "filters": out_new}
    if rules.is_reshape(layer) and info.role == "channelwise":
        config = layer.get_config()
        key = "target_shape" if "target_shape" in config else "newshape"
        shape = list(config.get(key) or ())
        if shape and shape[-1] == out_old:
            return {key: tuple(shape[:-1]) + (out_new,)}
    return {}


def _channel_text(graph, info, new_widths) -> str:
    original = graph.widths()
    parts = []
    for side, layout in (("in", info.in_layout), ("out", info.out_layout)):
        if layout is not None:
            parts.append(f"{side} {layout.width(original, graph.find)} -> "
                         f"{layout.width(new_widths, graph.find)}")
    return ", ".join(parts)


def _rebuilt(layer, changes: dict, why: str):
    """``layer`` rebuilt from its config with ``changes``; a named error if it cannot be."""
    kind = type(layer).__name__
    try:
        config = layer.get_config()
        config.update(changes)
        return layer.__class__.from_config(config)
    except Exception as error:  # noqa: BLE001 -- any failure of a user's layer, named for the user
        raise ValueError(
            f"apply_plan cannot rebuild layer {layer.name!r} ({kind}) from its config "
            f"({type(error).__name__}: {' '.join(str(error).split())}); it must be rebuilt because "
            f"{why}. Give {kind} a "
            "get_config() that returns every __init__ argument, and an __init__ that accepts "
            "**kwargs and passes them to super().__init__() (Keras' serialization guide)"
        ) from error


def _check_plan(graph, plan) -> dict:
    widths = dict(plan.widths)
    absent = [name for name in plan.baseline_widths if name not in widths]
    if absent:  # a silently whole layer would make the model bigger than the plan says
        raise ValueError(f"the plan gives no width for the prunable layer(s) {', '.join(absent)}; every "
                         "prunable layer needs one (its baseline width keeps it whole)")
    for name, width in widths.items():
        if name not in graph.layers:
            raise ValueError(
                f"the plan names layer {name!r}, which this model does not have: was the plan made "
                f"for another model? (plan for {plan.model_name!r}, model {graph.model.name!r})"
            )
        layer = graph.layer(name)
        current = getattr(layer, _width_key(layer), None)
        original = plan.baseline_widths.get(name)
        if current != original:
            raise ValueError(
                f"layer {name!r} has {current} filters but the plan was made for {original}: "
                "apply a plan to the model it was planned on"
            )
        if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or not 1 <= width <= current:
            raise ValueError(f"plan width for {name!r} must be an integer in [1, {current}], got {width!r}")
        block = graph.group_of(name).block
        if width % block:
            raise ValueError(
                f"plan width for {name!r} must be a multiple of {block}: a grouped conv reads its "
                f"channels in blocks of {block} (one per conv group) and can only lose whole "
                f"groups; got {width}"
            )
    for tied in plan.tied:
        if len({widths[name] for name in tied}) != 1:
            raise ValueError(f"layers {tied} are tied by an Add and must share one width in the plan")
    return widths


def group_scores(graph, importance) -> dict:
    """``{root group id: summed scores}`` from ``{layer name: scores}``, checked against ``graph``."""
    scores: dict = {}
    for name, values in dict(importance).items():
        info = graph.layers.get(name)
        if info is None or info.role != "producer" or info.out_layout.kind != "group":
            producers = [n for n, i in graph.layers.items() if i.role == "producer"]
            raise ValueError(
                f"importance names {name!r}, which is not a conv layer of this model; scores are "
                f"given per conv layer, e.g. {producers[:3]}"
            )
        group = graph.group_of(name)
        values = np.asarray(values, dtype=float)
        if values.ndim != 1 or len(values) != group.width:
            raise ValueError(
                f"importance[{name!r}] must be a 1-D array with one score per filter "
                f"({group.width}), got shape {values.shape}"
            )
        if not np.all(np.isfinite(values)):
            raise ValueError(f"importance[{name!r}] holds NaN or infinite scores")
        scores[group.id] = scores.get(group.id, 0.0) + values
    return scores


def surviving_channels(graph, widths, seed, importance=None) -> dict:
    """``{root group id: sorted indices of the channels that survive}`` for plan ``widths``.

    A group with scores keeps its ``width`` highest-scoring channels (ties: lower index first);
    otherwise a seeded random draw, one per group in plan order, as the paper removes at random.
    """
    scores = group_scores(graph, importance) if importance is not None else {}
    rng = np.random.default_rng(seed)
    original = graph.widths()
    kept = {gid: np.arange(w) for gid, w in original.items()}
    for name, width in widths.items():
        gid = graph.find(graph.layers[name].out_layout.group)
        if len(kept[gid]) != width and len(kept[gid]) == original[gid]:
            block = graph.groups[gid].block  # a grouped conv reads whole blocks: keep whole blocks
            blocks = original[gid] // block
            if gid in scores:
                block_scores = scores[gid].reshape(blocks, block).sum(axis=1)
                chosen = np.sort(np.lexsort((np.arange(blocks), -block_scores))[:width // block])
            else:
                chosen = np.sort(rng.choice(blocks, size=width // block, replace=False))
            kept[gid] = (chosen[:, None] * block + np.arange(block)[None, :]).ravel()
    return kept


def _copy_surviving_weights(graph, pruned_graph, widths, seed, importance=None) -> None:
    """Copy each layer's weights into the pruned model, keeping only surviving channels on every axis."""
    original = graph.widths()
    kept = surviving_channels(graph, widths, seed, importance)

    for info in graph.layers.values():
        old = info.layer.get_weights() if hasattr(info.layer, "get_weights") else []
        if not old:
            continue
        new_layer = pruned_graph.layer(info.name)
        out_idx = info.out_layout.indices(kept, original, graph.find)
        in_idx = (info.in_layout.indices(kept, original, graph.find)
                  if info.in_layout is not None else None)
        sliced = _slice_weights(info, old, in_idx, out_idx)
        expected = [tuple(w.shape) for w in new_layer.get_weights()]
        if [w.shape for w in sliced] != expected:
            raise ValueError(
                f"cannot carry weights of layer {info.name!r} ({type(info.layer).__name__}): "
                f"sliced shapes {[w.shape for w in sliced]} != pruned shapes {expected}"
            )
        new_layer.set_weights(sliced)


def _slice_weights(info, weights, in_idx, out_idx) -> list:
    """Keep the surviving input and output channels of one layer's weights (channels last)."""
    layer, out_channels = info.layer, rules.channels(info.out_shape)
    if isinstance(layer, rules.SEPARABLE_CONVS):
        depthwise, pointwise, *bias = weights  # (..., C, m) and (..., C*m, out)
        m = depthwise.shape[-1]
        dw_out = (in_idx[:, None] * m + np.arange(m)[None, :]).ravel()
        return [depthwise[..., in_idx, :], pointwise[..., dw_out, :][..., out_idx],
                *[b[out_idx] for b in bias]]
    if isinstance(layer, rules.DEPTHWISE):
        kernel, *bias = weights  # kernel (..., C, m); output channel c*m + j
        return [kernel[..., in_idx, :], *[b[out_idx] for b in bias]]
    if isinstance(layer, rules.TRANSPOSED_CONVS):
        kernel, *bias = weights  # kernel (..., out, in)
        return [kernel[..., out_idx, :][..., in_idx], *[b[out_idx] for b in bias]]
    if isinstance(layer, rules.CONVS) and int(layer.groups) > 1:
        # kernel (..., in/groups, out): output channel o reads input block o // (out/groups), and
        # whole blocks survive, so only the output axis is sliced
        if info.role in ("depthwise", "grouped"):
            kernel, *bias = weights
            return [kernel[..., out_idx], *[b[out_idx] for b in bias]]
        if len(in_idx) != layer.kernel.shape[-2] * layer.groups or len(out_idx) != layer.filters:
            raise ValueError(f"grouped conv {layer.name!r} cannot lose channels (its groups would "
                             "change); it should have been frozen")
        return weights
    if isinstance(layer, rules.CONVS):
        kernel, *bias = weights  # kernel (..., in, out)
        return [kernel[..., in_idx, :][..., out_idx], *[b[out_idx] for b in bias]]
    if isinstance(layer, L.Dense):
        kernel, *bias = weights  # kernel (in, out)
        return [kernel[in_idx][:, out_idx], *[b[out_idx] for b in bias]]
    # any other layer: weights whose last axis is the channel axis (batch norm, PReLU,
    # Normalization) follow the output channels; the rest (counters, frozen layers) stay as they are
    return [w[..., out_idx] if w.ndim and w.shape[-1] == out_channels else w for w in weights]
