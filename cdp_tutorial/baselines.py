r"""The baselines complexity-driven pruning is compared with: rank the filters of a trained model, prune, fine-tune.

The paper's Fig. 2 sets two pipelines side by side:

* **(b) complexity-driven** (this package): plan the architecture before any training, train it
  once from scratch (:func:`cdp_tutorial.plan_pruning` -> :func:`cdp_tutorial.apply_plan` -> train);
* **(a) criteria-based** (PLS, L1, ...): train the full baseline, then :math:`K` times
  *score* every filter (:mod:`cdp_tutorial.importance`), *prune* the lowest-scoring ones (keeping
  the trained weights of the rest), *fine-tune*. :func:`train_prune_finetune` runs it.

Two ways to turn scores into a plan (:func:`plan_by_ranking`):

``scope="global"``
    remove the lowest-scoring filters of the whole network, as PLS does (Jordao et al. 2020);
    every layer keeps at least one filter (never a whole layer). Needs scores that are comparable
    across layers (VIP scores are; raw L1 norms are not).
``scope="per_layer"``
    remove the same fraction of every layer's lowest-scoring filters, as Li et al. (2016) do with L1.

Either removes a given ``fraction`` of the prunable filters, or as many as it takes to bring the
mode's complexity (params, MACs or memory) down to ``target`` of the model's: the *matched budget*
that lets a ranked model be compared with a complexity-driven one.

**Quick profile, honestly.** The quick profile trains models at x0.25 width
(:mod:`cdp_tutorial.profiles`). Complexity-driven runs plan on the full-size model and train the
planned widths x0.25. A ranking method prunes a *trained* model, so at quick scale it trains the
x0.25 baseline, ranks and prunes *that* model to the same kept fraction of the mode's complexity,
and fine-tunes it; every record says "trained at x0.25 width" and the reported full-size
complexities are those of the CDP plan at the same target, not of a pruned full-size model.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cdp_tutorial.checks import check_choice, check_fraction, check_int, check_model, check_seed
from cdp_tutorial.files import write_json_atomically
from cdp_tutorial.plans import HISTORY_COLUMNS, PruningPlan
from cdp_tutorial.pruning import PruningProblem
from cdp_tutorial.results import complexity_fields
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
        step=float(amount), seed=None, coupled=coupled, round_to=1,
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


# --------------------------------------------------------------------------------------------
# The three-stage pipeline (Fig. 2a)
# --------------------------------------------------------------------------------------------
@dataclass
class PipelineResult:
    """What :func:`train_prune_finetune` produced: the pruned, fine-tuned model and every stage's cost.

    ``stages`` holds one dict per stage (``stage``, ``kind`` = "train" or "prune+fine-tune",
    ``score_time_s``, ``prune_time_s``, ``train_time_s``, ``wall_time_s``, ``epochs``,
    ``test_accuracy``, ``params``, ``macs``, ``memory_bytes`` of the model after the stage).
    """

    model: object = field(repr=False)
    stages: list
    criterion: str
    scope: str
    iterations: int
    test_accuracy: float
    wall_time_s: float

    def to_dict(self) -> dict:
        return {"stages": self.stages, "criterion": self.criterion, "scope": self.scope,
                "iterations": self.iterations, "test_accuracy": self.test_accuracy,
                "wall_time_s": self.wall_time_s}


def train_prune_finetune(model, data, *, criterion: str = "pls", scope: str = "global", mode="flops",
                         target: float = 0.5, iterations: int = 1, epochs: int = 1,
                         finetune_epochs: int | None = None, recipe="paper", batch_size=None,
                         seed: int = 0, run_dir=None, baseline_dir=None, samples: int = 500,
                         verbose=0) -> PipelineResult:
    r"""Train the baseline, then ``iterations`` times score, prune and fine-tune it (Fig. 2a).

    After iteration :math:`i` of :math:`K` the model keeps :math:`t^{i/K}` of the baseline's
    complexity in ``mode`` (each iteration removes the same share, :math:`1 - t^{1/K}` of what is
    left), so the last one meets ``target`` :math:`t`. Every stage trains with
    :func:`cdp_tutorial.training.train` in its own folder under ``run_dir`` and writes its record
    (``stage{i}.json``, with the plan and scores it used) atomically when it ends; run again with
    the same arguments, finished stages are read back instead of repeated and an interrupted one
    resumes from its last epoch.

    Parameters
    ----------
    model : keras.Model
        The baseline, freshly initialised (``keras.utils.set_random_seed`` before building it).
    data : cdp_tutorial.data.Dataset
        Training and test data.
    criterion : str, default "pls"
        One of :data:`cdp_tutorial.importance.CRITERIA`.
    scope : {"global", "per_layer"}
        See :func:`plan_by_ranking`.
    mode, target : str, float
        The budget: keep at most ``target`` of the baseline's params, MACs or memory.
    iterations : int, default 1
        :math:`K`, the prune + fine-tune rounds.
    epochs : int, default 1
        Epochs of the baseline training.
    finetune_epochs : int, optional
        Epochs of each fine-tune (default: ``epochs``, the paper's "equal epochs per stage").
    recipe, batch_size, seed, verbose
        As in :func:`cdp_tutorial.training.train`; ``seed`` also seeds the ``"random"`` criterion.
    run_dir : str or pathlib.Path, optional
        Folder of the whole pipeline (needed to resume).
    baseline_dir : str or pathlib.Path, optional
        Folder of the baseline's training (default: ``run_dir/stage0-train``). A sweep passes its
        baseline run's folder, so the baseline is trained once and every method of that seed prunes
        it; its recorded training time still counts in this pipeline's wall time.
    samples : int, default 500
        Training images for PLS.

    Returns
    -------
    PipelineResult

    Raises
    ------
    ValueError
        Unknown criterion or scope, a target outside (0, 1), iterations < 1, ``"pls"`` without
        enough samples: all before any training.
    """
    from cdp_tutorial.complexity import profile
    from cdp_tutorial.importance import CRITERIA, filter_scores
    from cdp_tutorial.rebuild import apply_plan
    from cdp_tutorial.training import train

    check_model(model)
    check_choice(criterion, "criterion", CRITERIA)
    check_choice(scope, "scope", SCOPES)
    mode = normalize_mode(mode)
    target = check_fraction(target, "target")
    iterations = check_int(iterations, "iterations", minimum=1)
    finetune_epochs = check_int(epochs if finetune_epochs is None else finetune_epochs,
                                "finetune_epochs", minimum=1)
    seed = check_seed(seed, "seed")
    if criterion == "pls" and min(samples, len(data.y_train)) < max(data.num_classes + 1, 3):
        raise ValueError(f"PLS needs more samples than classes: {samples} samples requested, "
                         f"{len(data.y_train)} training images, {data.num_classes} classes")
    PruningProblem(model)  # a model with nothing to prune fails here, before any training
    run_dir = Path(run_dir) if run_dir is not None else None
    stage_dir = (lambda i, what: run_dir / f"stage{i}-{what}") if run_dir is not None else (lambda i, what: None)
    common = dict(recipe=recipe, batch_size=batch_size, seed=seed, verbose=verbose)

    stages = []
    base = train(model, data, epochs=epochs, run_dir=baseline_dir or stage_dir(0, "train"), **common)
    baseline = profile(model).totals
    stages.append(_stage_record(0, "train", 0.0, 0.0, base, baseline))
    for i in range(1, iterations + 1):
        record_path = run_dir / f"stage{i}.json" if run_dir is not None else None
        saved = json.loads(record_path.read_text()) if record_path is not None and record_path.exists() else None
        start = time.perf_counter()
        if saved is None:
            scores = filter_scores(model, criterion, data=data, samples=samples, seed=seed + i)
        else:
            scores = {k: np.asarray(v) for k, v in saved["scores"].items()}
        score_time = time.perf_counter() - start
        current = profile(model).totals
        kept = target ** (i / iterations) * baseline.mode_total(mode) / current.mode_total(mode)
        start = time.perf_counter()
        plan = (PruningPlan.from_dict(saved["plan"]) if saved is not None else
                plan_by_ranking(model, scores, scope=scope, mode=mode, target=min(kept, 1 - 1e-9),
                                method=criterion))
        model = apply_plan(model, plan, keep_weights=True, importance=scores)
        prune_time = time.perf_counter() - start
        result = train(model, data, epochs=finetune_epochs, run_dir=stage_dir(i, "finetune"), **common)
        if saved is not None:
            stages.append(saved["stage"])
            continue
        stage = _stage_record(i, "prune+fine-tune", score_time, prune_time, result, profile(model).totals)
        stages.append(stage)
        if record_path is not None:
            write_json_atomically(record_path, {"stage": stage, "plan": plan.to_dict(),
                                                "scores": {k: v.tolist() for k, v in scores.items()}},
                                  overwrite=False)
    return PipelineResult(model=model, stages=stages, criterion=criterion, scope=scope,
                          iterations=iterations, test_accuracy=stages[-1]["test_accuracy"],
                          wall_time_s=float(sum(s["wall_time_s"] for s in stages)))


def _stage_record(i, kind, score_time, prune_time, result, totals) -> dict:
    return {"stage": i, "kind": kind, "score_time_s": score_time, "prune_time_s": prune_time,
            "train_time_s": result.wall_time_s, "epochs": result.epochs,
            "wall_time_s": score_time + prune_time + result.wall_time_s,
            "test_accuracy": result.test_accuracy, "test_loss": result.test_loss, "params": totals.params, "macs": totals.macs,
            "memory_bytes": totals.memory_bytes}


# --------------------------------------------------------------------------------------------
# One run of a sweep (cdp_tutorial.experiments)
# --------------------------------------------------------------------------------------------
def ranking_run_record(spec, run_dir, data, label: str, baseline_dir=None, verbose=0) -> dict:
    """Run a sweep's ranking method (``spec.method`` in :data:`METHODS`) and return its store record.

    The baseline is built exactly as the sweep's baseline run builds it (same seed, same initial
    weights; at ``spec.width_multiplier`` < 1 the narrow model), then :func:`train_prune_finetune`
    prunes it to ``spec.target`` of the mode's complexity in ``spec.iterations`` rounds. The
    pipeline's folder is ``run_dir``; the baseline is trained in (or read back from)
    ``baseline_dir``, the sweep's baseline run. The record has the same fields as a complexity-driven one, plus ``stages``, ``criterion``,
    ``scope`` and ``complexity_of``: with a width multiplier < 1, ``params``/``macs``/
    ``memory_bytes`` and the ``baseline_*`` figures are those of the *trained narrow* models (a
    ranking method prunes the model it trained), so ``reduction_pct`` compares like with like.
    """
    import keras

    from cdp_tutorial.complexity import profile
    from cdp_tutorial.models import build_model
    from cdp_tutorial.training.result import library_versions

    criterion, scope = METHODS[spec.method]
    keras.utils.set_random_seed(spec.seed)  # the same initial weights as the baseline run
    model = build_model(spec.model, num_classes=data.num_classes, width_multiplier=spec.width_multiplier)
    trained_baseline = profile(model).totals
    result = train_prune_finetune(
        model, data, criterion=criterion, scope=scope, mode=spec.mode, target=spec.target,
        iterations=spec.iterations, epochs=spec.epochs, finetune_epochs=spec.finetune_epochs,
        recipe=spec.recipe, batch_size=spec.batch_size, seed=spec.seed,
        run_dir=run_dir, baseline_dir=baseline_dir, verbose=verbose)
    final = profile(result.model).totals
    narrow = spec.width_multiplier != 1
    epochs = sum(s["epochs"] for s in result.stages)
    return {"key": spec.key, **asdict(spec), "label": label, "dataset_description": data.description,
            "criterion": criterion, "scope": scope,
            "complexity_of": (f"the trained models (x{spec.width_multiplier:g} width)" if narrow
                              else "the full-size models"),
            **complexity_fields(final, final, trained_baseline),
            "widths": {layer.name: int(layer.filters) for layer in result.model.layers
                       if hasattr(layer, "filters")},
            "test_accuracy": result.test_accuracy, "test_loss": result.stages[-1]["test_loss"],
            "epochs_trained": epochs, "wall_time_s": result.wall_time_s,
            "time_per_epoch_s": result.wall_time_s / max(epochs, 1), "stages": result.stages,
            "versions": library_versions(), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
