r"""The baselines complexity-driven pruning is compared with: which filters of a trained model go.

Criteria-based pruning (the paper's Fig. 2a) *scores* every filter of a trained model
(:mod:`cdp_tutorial.importance`) and removes the lowest-scoring ones; this module turns scores into a
plan, and :mod:`cdp_tutorial.prune_finetune` runs the whole train -> prune -> fine-tune pipeline.

Two ways to turn scores into a plan (:func:`plan_by_ranking`):

``scope="global"``
    remove the lowest-scoring filters of the whole network, as PLS does (Jordao et al. 2020);
    every layer keeps at least one filter (never a whole layer). Needs scores that are comparable
    across layers (VIP scores are; raw L1 norms are not).
``scope="per_layer"``
    remove the same fraction of every layer's lowest-scoring filters, as Li et al. (2016) do with L1
    (they choose each layer's fraction by a sensitivity analysis; here it is one fraction for all).
    Each layer loses ``floor(fraction x width)`` filters, so in a pipeline of several pruning steps
    the floors compound and narrow layers keep a little more than wide ones.

Either removes a given ``fraction`` of the prunable filters, or as many as it takes to bring the
mode's complexity (params, MACs or memory) down to ``target`` of the model's: the *matched budget*
that lets a ranked model be compared with a complexity-driven one.

**Quick profile, honestly.** The quick profile trains models at x0.25 width
(:mod:`cdp_tutorial.profiles`). Complexity-driven runs plan on the full-size model and train the
planned widths x0.25. A ranking method prunes a *trained* model, so at quick scale it trains the
x0.25 baseline, ranks and prunes *that* model to the same kept fraction of the mode's complexity,
and fine-tunes it; every record says "trained at x0.25 width", and its complexities are those of the
trained models (``trained_*``), with no full-size ``planned_*`` figures, since none was planned.
"""

from __future__ import annotations

import numpy as np

from cdp_tutorial.checks import check_choice, check_fraction, check_model
from cdp_tutorial.plans import HISTORY_COLUMNS, PruningPlan
from cdp_tutorial.pruning import PruningProblem
from cdp_tutorial.sampling import normalize_mode

SCOPES = ("global", "per_layer")

#: The criterion each ranking method of a sweep uses, and how it turns scores into a plan.
METHODS = {"l1": ("l1", "per_layer"), "random": ("random", "per_layer"), "pls": ("pls", "global")}


def plan_by_ranking(model, scores, *, scope: str = "global", fraction=None, mode="flops",
                    target=None, coupled: str = "skip", method: str = "ranking") -> PruningPlan:
    """Plan which filters of a trained model go: the lowest-scoring ones, globally or per layer.

    Parameters
    ----------
    model : keras.Model
        The (trained) model the scores belong to.
    scores : mapping
        ``{conv layer name: one score per filter}`` from :func:`cdp_tutorial.importance.filter_scores`,
        with an entry for the first conv of every prunable group; higher means keep.
    scope : {"global", "per_layer"}, default "global"
        Rank all filters together (PLS) or each layer on its own (L1).
    fraction : float, optional
        Remove this fraction of the prunable filters (global) or of each layer's filters (per layer).
    mode : {"params", "flops", "memory"} or "PA"/"FA"/"MA", default "flops"
        The complexity ``target`` is about.
    target : float, optional
        Instead of ``fraction``: remove the fewest filters that bring the mode's complexity down
        to at most ``target`` (in (0, 1)) of the model's.
    coupled : {"skip", "tie"}, default "skip"
        Whether channels tied by an ``Add`` may shrink (as one unit), as in :func:`cdp_tutorial.plan_pruning`.
    method : str, default "ranking"
        Stored in the plan (e.g. ``"pls"``), for the record.

    Returns
    -------
    PruningPlan
        Widths only; pass it with the same scores to ``apply_plan(model, plan, keep_weights=True,
        importance=scores)`` to keep exactly the highest-scoring filters.

    Raises
    ------
    ValueError
        Unknown scope; neither or both of ``fraction`` and ``target``; a fraction outside (0, 1);
        scores missing for a prunable group or of the wrong length; a target below what keeping
        one filter per layer reaches; a model with no prunable conv.

    Examples
    --------
    >>> import cdp_tutorial as cdp
    >>> from cdp_tutorial.importance import filter_scores
    >>> model = cdp.models.vgg16(width_multiplier=0.125)
    >>> scores = filter_scores(model, "l1")
    >>> plan = plan_by_ranking(model, scores, scope="per_layer", mode="FA", target=0.5)
    >>> plan.final.macs <= 0.5 * plan.baseline.macs
    True
    """
    check_model(model)
    check_choice(scope, "scope", SCOPES)
    mode = normalize_mode(mode)
    if (fraction is None) == (target is None):
        raise ValueError("give exactly one of fraction (filters removed) or target (complexity kept)")
    problem = PruningProblem(model, coupled=coupled)
    unit_scores = _unit_scores(problem, scores)
    cols, base = problem.unit_columns, problem.baseline_widths[problem.unit_columns]
    floors = problem.min_widths

    def widths_at(amount):  # amount in [0, 1]: the fraction of filters removed
        w = problem.baseline_widths.copy()
        w[cols] = _kept_counts(unit_scores, base, floors, scope, amount)
        return w

    if fraction is not None:
        amount = check_fraction(fraction, "fraction")
    else:
        kept = check_fraction(target, "target")
        budget = kept * problem.total(problem.baseline_widths, mode)
        if problem.total(widths_at(1.0), mode) > budget:
            raise ValueError(f"target {kept:g} of the {mode} is out of reach: keeping one filter per "
                             f"prunable layer still leaves {problem.total(widths_at(1.0), mode):,.0f}")
        low, high = 0.0, 1.0  # the least removal that meets the budget
        for _ in range(40):
            mid = (low + high) / 2
            low, high = (low, mid) if problem.total(widths_at(mid), mode) <= budget else (mid, high)
        amount = high
    widths = widths_at(amount)
    baseline, final = problem.totals(problem.baseline_widths), problem.totals(widths)
    return PruningPlan(
        model_name=model.name, mode=mode, target=None if target is None else float(target),
        budget=float(final.mode_total(mode) if target is None else kept * baseline.mode_total(mode)),
        step=None, removed_fraction=float(amount), seed=None, coupled=coupled, round_to=1,
        bytes_per_element=problem.costs.bytes_per_element,
        widths=problem.widths_by_layer(widths), baseline_widths=problem.widths_by_layer(problem.baseline_widths),
        baseline=baseline, final=final, history=_empty_history(), method=method,
        tied=[layers for layers in problem.unit_layers if len(layers) > 1])


def _empty_history():
    import pandas as pd

    return pd.DataFrame(columns=HISTORY_COLUMNS)


def _unit_scores(problem, scores) -> list:
    """The scores of every prunable unit, looked up under any of its convs, checked."""
    scores = dict(scores)
    out = []
    for name, layers, col in zip(problem.unit_names, problem.unit_layers, problem.unit_columns):
        given = [np.asarray(scores[n], dtype=float) for n in layers if n in scores]
        width = int(problem.baseline_widths[col])
        if not given:
            raise ValueError(f"no scores for prunable conv {name!r}: score the model with "
                             "cdp_tutorial.importance.filter_scores (same coupled setting)")
        total = np.sum(given, axis=0)
        if total.shape != (width,) or not np.all(np.isfinite(total)):
            raise ValueError(f"scores of {name!r} must be {width} finite numbers, one per filter; "
                             f"got shape {total.shape}")
        out.append(total)
    return out


def _kept_counts(unit_scores, base, floors, scope, amount) -> np.ndarray:
    """Filters each unit keeps after removing ``amount`` of them, lowest scores first."""
    if scope == "per_layer":
        return np.maximum(floors, base - np.floor(amount * base + 1e-9)).astype(int)
    removable = np.concatenate([np.sort(s)[: int(b - f)] for s, b, f in zip(unit_scores, base, floors)])
    owner = np.concatenate([np.full(int(b - f), u) for u, (b, f) in enumerate(zip(base, floors))])
    n_remove = int(np.floor(amount * base.sum() + 1e-9))
    order = np.argsort(removable, kind="stable")[:n_remove]
    return (base - np.bincount(owner[order], minlength=len(base))).astype(int)
