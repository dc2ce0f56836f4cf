"""Turn a pruning plan into a real, smaller Keras model (not a mask).

:func:`apply_plan` clones the model with ``keras.models.clone_model`` (recursively, so a backbone
nested as a layer shrinks too) and a ``clone_function`` that edits each pruned layer's ``filters``
(``units`` for a dense layer applied at every position); Keras then infers every downstream shape
(batch norm, the depthwise conv, the next conv's input channels, the dense layer after ``Flatten``)
by itself.

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
        given different widths), or ``importance`` names an unknown layer, has the wrong length,
        holds non-finite scores, or is given without ``keep_weights=True``.

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

    def clone_function(layer):
        config = layer.get_config()
        if layer.name in widths:
            config[_width_key(layer)] = widths[layer.name]
        return layer.__class__.from_config(config)

    # recursive: a model nested as a layer (a backbone) is rebuilt layer by layer, so its convs shrink
    pruned = keras.models.clone_model(model, clone_function=clone_function, recursive=True)
    if keep_weights:
        _copy_surviving_weights(graph, analyse(pruned), widths,
                                plan.seed if seed is None else seed, importance)
    return pruned


def _width_key(layer) -> str:
    return "units" if isinstance(layer, L.Dense) else "filters"


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
            if gid in scores:
                order = np.lexsort((np.arange(original[gid]), -scores[gid]))
                kept[gid] = np.sort(order[:width])
            else:
                kept[gid] = np.sort(rng.choice(original[gid], size=width, replace=False))
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
        sliced = _slice_weights(info.layer, old, in_idx, out_idx, rules.channels(info.out_shape))
        expected = [tuple(w.shape) for w in new_layer.get_weights()]
        if [w.shape for w in sliced] != expected:
            raise ValueError(
                f"cannot carry weights of layer {info.name!r} ({type(info.layer).__name__}): "
                f"sliced shapes {[w.shape for w in sliced]} != pruned shapes {expected}"
            )
        new_layer.set_weights(sliced)


def _slice_weights(layer, weights, in_idx, out_idx, out_channels) -> list:
    """Keep the surviving input and output channels of one layer's weights (channels last)."""
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
        # kernel (..., in/groups, out): the graph freezes both sides of a grouped conv
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
