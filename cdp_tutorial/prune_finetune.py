r"""Criteria-based pruning as its authors run it: train, then score, prune and fine-tune (Fig. 2a).

The paper's Fig. 2 sets two pipelines side by side: **(b)** complexity-driven pruning plans the
architecture first and trains it once from scratch; **(a)** criteria-based pruning (PLS, L1, ...)
trains the full baseline, then :math:`K` times *scores* every filter
(:mod:`cdp_tutorial.importance`), *prunes* the lowest-scoring ones (keeping the trained weights of
the rest; :func:`cdp_tutorial.baselines.plan_by_ranking`) and *fine-tunes*.
:func:`train_prune_finetune` runs (a), in one of two schedules (:data:`FINETUNE_SCHEDULES`):

``"rounds"``
    :math:`K` x (score, prune, fine-tune): how Jordao et al.'s PLS code proceeds
    (``arturjordao/PruningNeuralNetworks``, ``main.py``), and Li et al.'s L1 pruning with
    :math:`K = 1`.
``"once"``
    :math:`K` x (score, prune), then one fine-tune: the paper's own account of its PLS baseline
    (§4.4.1: "fine-tuning the pruned model after 10 iterations … The models are trained for 150
    epochs before and after pruning").

How the fine-tune is done: at a lower learning rate than the initial training, as the references
do (Li et al.: a hundredth; Jordao et al.'s code: RMSprop at 1e-4, a tenth of the CDP paper's rate);
here a tenth of the recipe's by default (:meth:`cdp_tutorial.training.Recipe.for_finetuning` cites
both and says where this package departs from them), with a fresh optimizer (its moments belonged to
removed filters) and batch-norm statistics re-estimated after each pruning
(:func:`cdp_tutorial.training.batchnorm.recalibrate_batch_norm`, this package's addition). PLS is fitted
on ``samples`` training images (500 by default; Jordao et al.'s code uses the whole training set).
Every stage records its test accuracy and whether it **collapsed** (at most twice chance): a collapsed
baseline is a bug to fix, not a result to compare with.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cdp_tutorial.baselines import SCOPES, plan_by_ranking
from cdp_tutorial.checks import check_choice, check_fraction, check_int, check_model, check_number, check_seed
from cdp_tutorial.files import write_json_atomically
from cdp_tutorial.plans import PruningPlan
from cdp_tutorial.pruning import PruningProblem
from cdp_tutorial.results import collapsed
from cdp_tutorial.sampling import normalize_mode
from cdp_tutorial.training.rundir import weights_fingerprint

#: How a ranking method alternates pruning and fine-tuning (see the module docstring).
FINETUNE_SCHEDULES = {
    "rounds": "K x (score, prune, fine-tune), as Jordao et al.'s PLS code does",
    "once": "K x (score, prune), then one fine-tune: the paper's §4.4.1",
}
#: A fine-tune's learning rate as a fraction of the initial training's (Li et al. 2017; Jordao et al.'s code).
FINETUNE_LR_SCALE = 0.1
#: Training batches the batch-norm statistics are re-estimated from after each pruning.
RECALIBRATION_BATCHES = 20


@dataclass
class PipelineResult:
    """What :func:`train_prune_finetune` produced: the pruned, fine-tuned model and every stage's cost.

    ``stages`` holds one dict per stage: ``stage``, ``kind`` ("train", "prune", "prune+fine-tune"
    or "fine-tune"), ``score_time_s``, ``prune_time_s``, ``train_time_s``, ``wall_time_s``,
    ``epochs``, ``pruned_accuracy`` (after pruning and batch-norm re-estimation, just before a
    fine-tune; None for the baseline and for a pruning step the ``"once"`` schedule does not fine-tune), ``test_accuracy`` (None for a pruning step the ``"once"``
    schedule does not fine-tune), ``collapsed``, and ``params``, ``macs``, ``memory_bytes`` of the
    model after the stage.
    """

    model: object = field(repr=False)
    stages: list
    criterion: str
    scope: str
    iterations: int
    schedule: str
    test_accuracy: float
    wall_time_s: float

    @property
    def collapsed_stages(self) -> list[int]:
        """The stages whose test accuracy is at most twice chance."""
        return [s["stage"] for s in self.stages if s["collapsed"]]

    def to_dict(self) -> dict:
        return {"stages": self.stages, "criterion": self.criterion, "scope": self.scope,
                "iterations": self.iterations, "schedule": self.schedule,
                "test_accuracy": self.test_accuracy, "wall_time_s": self.wall_time_s}


def train_prune_finetune(model, data, *, criterion: str = "pls", scope: str = "global", mode="flops",
                         target: float = 0.5, iterations: int = 1, epochs: int = 1,
                         finetune_epochs: int | None = None, schedule: str = "rounds",
                         finetune_lr_scale: float = FINETUNE_LR_SCALE, recipe="paper", batch_size=None,
                         seed: int = 0, run_dir=None, baseline_dir=None, samples: int = 500,
                         verbose=0) -> PipelineResult:
    r"""Train the baseline, then prune it in ``iterations`` steps and fine-tune it (Fig. 2a).

    After pruning step :math:`i` of :math:`K` the model keeps :math:`t^{i/K}` of the baseline's
    complexity in ``mode`` (each step removes the same share, :math:`1 - t^{1/K}` of what is left),
    so the last one meets ``target`` :math:`t`. Each step scores the current model, prunes it and
    re-estimates its batch-norm statistics; ``schedule="rounds"`` fine-tunes after every step,
    ``"once"`` after the last only. Every training (baseline, fine-tunes) uses
    :func:`cdp_tutorial.training.train` in its own folder under ``run_dir``; every pruning step writes
    its record (``stage{i}.json``: the plan and scores it used, and the arguments that define it)
    atomically. Run again with the same arguments, finished stages are read back and an interrupted
    one resumes; with other arguments in the same ``run_dir`` it refuses, naming what differs.

    Parameters
    ----------
    model : keras.Model
        The baseline, freshly initialised (``keras.utils.set_random_seed`` before building it).
    data : cdp_tutorial.data.Dataset
        Training and test data.
    criterion : str, default "pls"
        One of :data:`cdp_tutorial.importance.CRITERIA`.
    scope : {"global", "per_layer"}
        See :func:`cdp_tutorial.baselines.plan_by_ranking`.
    mode, target : str, float
        The budget: keep at most ``target`` of the baseline's params, MACs or memory.
    iterations : int, default 1
        :math:`K`, the pruning steps.
    epochs : int, default 1
        Epochs of the baseline training.
    finetune_epochs : int, optional
        Epochs of each fine-tune (default: ``epochs``, the paper's "trained for 150 epochs before
        and after pruning").
    schedule : {"rounds", "once"}, default "rounds"
        See :data:`FINETUNE_SCHEDULES`.
    finetune_lr_scale : float, default 0.1
        The fine-tune's learning rate as a fraction of ``recipe``'s.
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
        Unknown criterion, scope or schedule, a target outside (0, 1), iterations < 1, ``"pls"``
        without enough samples: all before any training. A ``run_dir`` holding another pipeline.
    """
    from cdp_tutorial.complexity import profile
    from cdp_tutorial.importance import CRITERIA, filter_scores
    from cdp_tutorial.training import get_recipe, train

    check_model(model)
    check_choice(criterion, "criterion", CRITERIA)
    check_choice(scope, "scope", SCOPES)
    check_choice(schedule, "schedule", tuple(FINETUNE_SCHEDULES))
    mode = normalize_mode(mode)
    target = check_fraction(target, "target")
    iterations = check_int(iterations, "iterations", minimum=1)
    epochs = check_int(epochs, "epochs", minimum=1)
    finetune_epochs = check_int(epochs if finetune_epochs is None else finetune_epochs,
                                "finetune_epochs", minimum=1)
    finetune_lr_scale = check_number(finetune_lr_scale, "finetune_lr_scale", minimum=0,
                                     include_minimum=False, maximum=1)
    seed = check_seed(seed, "seed")
    recipe = get_recipe(recipe)
    if criterion == "pls" and min(samples, len(data.y_train)) < max(data.num_classes + 1, 3):
        raise ValueError(f"PLS needs more samples than classes: {samples} samples requested, "
                         f"{len(data.y_train)} training images, {data.num_classes} classes")
    PruningProblem(model)  # a model with nothing to prune fails here, before any training
    run_dir = Path(run_dir) if run_dir is not None else None
    stage_dir = (lambda i, what: run_dir / f"stage{i}-{what}") if run_dir is not None else (lambda i, what: None)
    common = dict(batch_size=batch_size, seed=seed, verbose=verbose)
    tuning = recipe.for_finetuning(finetune_lr_scale)

    stages = []
    base = train(model, data, recipe, epochs=epochs, run_dir=baseline_dir or stage_dir(0, "train"), **common)
    baseline = profile(model).totals
    stages.append(_stage_record(0, "train", data, result=base, totals=baseline))
    identity = {"criterion": criterion, "scope": scope, "mode": mode, "target": target,
                "iterations": iterations, "schedule": schedule, "finetune_epochs": finetune_epochs,
                "finetune_recipe": tuning.to_dict(), "batch_size": batch_size, "seed": seed,
                "samples": samples, "baseline_weights": weights_fingerprint(model)}
    for i in range(1, iterations + 1):
        record_path = run_dir / f"stage{i}.json" if run_dir is not None else None
        saved = _read_stage(record_path, identity)
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
        model = _prune(model, plan, scores, data, batch_size or recipe.batch_size)
        prune_time = time.perf_counter() - start
        tune = schedule == "rounds" or i == iterations
        if saved is None:  # accuracy before fine-tuning: what the fine-tune starts from
            saved = {"identity": identity, "plan": plan.to_dict(), "score_time_s": score_time,
                     "prune_time_s": prune_time,
                     "pruned_accuracy": _accuracy(model, data, batch_size or recipe.batch_size) if tune else None,
                     "scores": {k: v.tolist() for k, v in scores.items()}}
            if record_path is not None:
                write_json_atomically(record_path, saved, overwrite=False)
        result = (train(model, data, tuning, epochs=finetune_epochs, run_dir=stage_dir(i, "finetune"), **common)
                  if tune else None)
        kind = ("prune+fine-tune" if schedule == "rounds" else "prune, then fine-tune") if tune else "prune"
        # a stage read back keeps the times it took when it ran
        stages.append(_stage_record(i, kind, data, result=result, totals=profile(model).totals,
                                    score_time=saved["score_time_s"], prune_time=saved["prune_time_s"],
                                    pruned_accuracy=saved["pruned_accuracy"]))
    return PipelineResult(model=model, stages=stages, criterion=criterion, scope=scope,
                          iterations=iterations, schedule=schedule, test_accuracy=stages[-1]["test_accuracy"],
                          wall_time_s=float(sum(s["wall_time_s"] for s in stages)))


def _read_stage(path, identity) -> dict | None:
    """A finished pruning step's record, if it exists and was made with the same arguments."""
    if path is None or not path.exists():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not a stage record ({error.msg}); delete it to redo that stage") from None
    stored = saved.get("identity", {})
    differences = [f"{k}: {json.dumps(stored.get(k))[:80]} (stored) vs {json.dumps(v)[:80]} (now)"
                   for k, v in identity.items() if stored.get(k) != v]
    if differences:
        raise ValueError(f"{path} was made by another pipeline, so it cannot be reused:\n  "
                         + "\n  ".join(differences) + f"\nUse another run_dir, or delete {path.parent} to start over.")
    return saved


def _prune(model, plan, scores, data, batch_size):
    """Keep the highest-scoring filters with their trained weights, then re-estimate batch-norm statistics."""
    from cdp_tutorial.data import make_pipeline
    from cdp_tutorial.rebuild import apply_plan
    from cdp_tutorial.training.batchnorm import recalibrate_batch_norm

    pruned = apply_plan(model, plan, keep_weights=True, importance=scores)
    recalibrate_batch_norm(pruned, make_pipeline(data, "train", batch_size=batch_size, cache=False),
                           steps=RECALIBRATION_BATCHES)
    return pruned


def _accuracy(model, data, batch_size) -> float:
    """Test accuracy of a model as it is (no training), from its class scores."""
    from cdp_tutorial.data import make_pipeline

    images = make_pipeline(data, "test", batch_size=batch_size, cache=False).map(lambda x, y: x)
    predicted = np.argmax(model.predict(images, verbose=0), axis=-1)
    return float(np.mean(predicted == data.y_test))


def _stage_record(i, kind, data, *, result, totals, score_time=0.0, prune_time=0.0,
                  pruned_accuracy=None) -> dict:
    accuracy = None if result is None else result.test_accuracy
    train_time = 0.0 if result is None else result.wall_time_s
    return {"stage": i, "kind": kind, "score_time_s": score_time, "prune_time_s": prune_time,
            "train_time_s": train_time, "epochs": 0 if result is None else result.epochs,
            "wall_time_s": score_time + prune_time + train_time,
            "pruned_accuracy": pruned_accuracy, "test_accuracy": accuracy,
            "test_loss": None if result is None else result.test_loss,
            "collapsed": accuracy is not None and collapsed(accuracy, data.num_classes),
            "params": totals.params, "macs": totals.macs, "memory_bytes": totals.memory_bytes}
