"""One run of the paper's grid: what defines it (:class:`RunSpec`), building its model, training it, its record.

A *run* = build a CIFAR model, derive a pruned architecture (or not, for the baseline), train it
once from scratch, record what came out; for a ranking method (``l1``, ``random``, ``pls``), prune the
seed's trained baseline and fine-tune it instead (:mod:`cdp_tutorial.prune_finetune`). Every record
carries its profile, a ``label`` that says honestly whether it followed the paper's protocol, and
what produced it (library versions and a fingerprint of the package's code). Sweeps of many runs
are :mod:`cdp_tutorial.experiments`.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from cdp_tutorial.checks import check_choice, check_fraction, check_int, check_number, check_seed
from cdp_tutorial.profiles import Profile, get_profile
from cdp_tutorial.results import BASELINE, ResultsStore, collapsed, complexity_fields
from cdp_tutorial.sampling import ABBREVIATIONS, normalize_mode

RUNS_DIR = "runs"
#: ``cdp``: Algorithm 1, trained once from scratch; ``uniform``: every layer scaled alike, same
#: budget, from scratch; ``l1``, ``random``, ``pls``: train the baseline, then prune and fine-tune
#: it (:mod:`cdp_tutorial.prune_finetune`).
METHODS = ("cdp", "uniform", "l1", "random", "pls")

PAPER_STEP = 0.1  # p in Algorithm 1; the paper's value is lost in our copy, 10 % is our choice


# --------------------------------------------------------------------------------------------
# What one run is
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSpec:
    """Everything that defines one training run (and nothing that merely describes it)."""

    model: str
    dataset: str
    mode: str  # "baseline", "PA", "FA" or "MA"
    target: float | None  # fraction of the baseline's complexity kept; None for the baseline
    seed: int
    profile: str
    epochs: int
    recipe: str
    batch_size: int
    train_size: int | None = None
    test_size: int | None = None
    method: str = "cdp"  # one of METHODS
    step: float = PAPER_STEP
    width_multiplier: float = 1.0  # the trained model's widths, as a fraction of the planned ones
    iterations: int = 1  # K pruning iterations of a ranking method (l1, random, pls)
    finetune_epochs: int | None = None  # epochs of each fine-tune; None: ``epochs`` (equal per stage)
    finetune: str = "rounds"  # "rounds": K x (prune, fine-tune); "once": K prunings, then one fine-tune
    finetune_lr_scale: float = 0.1  # a fine-tune's learning rate, as a fraction of training's

    @property
    def key(self) -> str:
        """A unique name: readable, then a hash of every field and the package version.

        The readable part says what the run is; the hash makes any other field (the step of
        Algorithm 1, a target's last digit, a fine-tune setting) or another package version a
        different run, so a sweep never serves a stale result for a changed spec.
        """
        ranking = "" if self.method in ("cdp", "uniform") else f"-k{self.iterations}-{self.finetune}"
        what = BASELINE if self.mode == BASELINE else (
            f"{self.mode}{'' if self.method == 'cdp' else '-' + self.method}-t{self.target:g}{ranking}")
        sizes = "" if self.train_size is None and self.test_size is None else \
            f"-n{self.train_size or 'all'}x{self.test_size or 'all'}"
        narrow = "" if self.width_multiplier == 1 else f"-w{self.width_multiplier:g}"
        return (f"{self.model}-{self.dataset}-{what}-s{self.seed}-{self.profile}-e{self.epochs}"
                f"{sizes}{narrow}-{self.fingerprint}")

    @property
    def fingerprint(self) -> str:
        """8 hex digits of SHA-256 over every field (exact values) and the package version."""
        from cdp_tutorial import __version__

        text = json.dumps({**asdict(self), "package_version": __version__}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]


def protocol_label(spec: RunSpec) -> str:
    """How a result is labelled wherever it is shown: the paper's protocol, or what it is instead."""
    paper = get_profile("paper")
    is_paper = (spec.dataset in ("cifar10", "cifar100") and spec.epochs == paper.epochs
                and spec.recipe == paper.recipe and spec.batch_size == paper.batch_size
                and spec.train_size is None and spec.test_size is None and spec.width_multiplier == 1)
    data = spec.dataset + (f" subset {spec.train_size or 'all'}/{spec.test_size or 'all'}"
                           if spec.train_size or spec.test_size else "")
    narrow = "" if spec.width_multiplier == 1 else f", trained at x{spec.width_multiplier:g} width"
    epochs = f"{spec.epochs} epoch" + ("" if spec.epochs == 1 else "s")
    what = f"{data}{narrow}, {epochs}, {spec.recipe} recipe, batch {spec.batch_size}"
    if is_paper:
        return f"paper protocol ({what})"
    return f"{spec.profile} profile ({what}) - not the paper's protocol"


def make_specs(models, modes=("PA", "FA", "MA"), targets=(0.5,), seeds=None, *, profile=None,
               dataset=None, epochs=None, recipe=None, batch_size=None, train_size=None,
               test_size=None, baseline=True, uniform=False, step=PAPER_STEP,
               width_multiplier=None, methods=None, iterations=1, finetune_epochs=None,
               finetune="rounds", finetune_lr_scale=0.1) -> list[RunSpec]:
    """The runs of a sweep: a baseline per model and seed, then every mode × target × method.

    ``methods`` (default ``["cdp"]``, plus ``"uniform"`` if ``uniform``) are any of :data:`METHODS`;
    the ranking ones (``l1``, ``random``, ``pls``) prune the trained baseline in ``iterations``
    steps and fine-tune for ``finetune_epochs`` epochs (default: ``epochs``, equal epochs per stage)
    at ``finetune_lr_scale`` times the training learning rate, after every step
    (``finetune="rounds"``) or once after the last (``"once"``, the paper's §4.4.1); see
    :func:`cdp_tutorial.baselines.train_prune_finetune`.

    Profile values fill in whatever is not given (``width_multiplier``: the trained models' widths
    as a fraction of the planned ones; the quick profile trains at x0.25, see
    :mod:`cdp_tutorial.profiles`). Raises ``ValueError`` for an unknown model, mode, profile or
    fine-tune schedule, a target outside (0, 1), a width multiplier outside (0, 1], epochs, batch
    size or sizes below 1, or an empty grid (and ``TypeError`` for a non-integer count).
    """
    from cdp_tutorial.prune_finetune import FINETUNE_SCHEDULES
    from cdp_tutorial.models import MODELS

    prof: Profile = profile if isinstance(profile, Profile) else get_profile(profile)
    models = [models] if isinstance(models, str) else list(models)
    for name in models:
        if str(name).lower() not in MODELS:
            raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    modes = [ABBREVIATIONS[normalize_mode(m)] for m in modes]
    targets = [check_fraction(t, "each target") for t in targets]
    seeds = [check_seed(seed, "each seed") for seed in (prof.seeds if seeds is None else seeds)]
    width_multiplier = check_number(prof.width_multiplier if width_multiplier is None else width_multiplier,
                                    "width_multiplier", minimum=0, include_minimum=False, maximum=1)
    methods = list(methods) if methods is not None else ["cdp"] + (["uniform"] if uniform else [])
    methods = [check_choice(str(m).lower(), "each method", METHODS) for m in methods]
    iterations = check_int(iterations, "iterations", minimum=1)
    finetune_epochs = check_int(finetune_epochs, "finetune_epochs", minimum=1, allow_none=True)
    finetune = check_choice(finetune, "finetune", tuple(FINETUNE_SCHEDULES))
    finetune_lr_scale = check_number(finetune_lr_scale, "finetune_lr_scale", minimum=0,
                                     include_minimum=False, maximum=1)
    if not models or not seeds or not (baseline or (modes and targets and methods)):
        raise ValueError("the sweep is empty: give at least one model, one seed and a mode/target or the baseline")
    # An explicit 0 is an error, never "use the default": hence `is None`, not `or`.
    common = dict(dataset=dataset or prof.dataset, profile=prof.name,
                  epochs=check_int(prof.epochs if epochs is None else epochs, "epochs", minimum=1),
                  recipe=recipe or prof.recipe,
                  batch_size=check_int(prof.batch_size if batch_size is None else batch_size,
                                       "batch_size", minimum=1),
                  train_size=check_int(prof.train_size if train_size is None else train_size,
                                       "train_size", minimum=1, allow_none=True),
                  test_size=check_int(prof.test_size if test_size is None else test_size,
                                      "test_size", minimum=1, allow_none=True),
                  step=check_fraction(step, "step"), width_multiplier=width_multiplier)
    specs = []
    for name in models:
        for seed in seeds:
            if baseline:
                specs.append(RunSpec(name.lower(), mode=BASELINE, target=None, seed=int(seed), **common))
            for mode in modes:
                for t in targets:
                    for method in methods:
                        ranking = {} if method in ("cdp", "uniform") else dict(
                            iterations=iterations, finetune_epochs=finetune_epochs, finetune=finetune,
                            finetune_lr_scale=finetune_lr_scale)
                        specs.append(RunSpec(name.lower(), mode=mode, target=float(t), seed=int(seed),
                                             method=method, **ranking, **common))
    return specs


# --------------------------------------------------------------------------------------------
# Running one
# --------------------------------------------------------------------------------------------
def baseline_of(spec: RunSpec) -> RunSpec:
    """The sweep's baseline run that ``spec`` is compared with (and, for a ranking method, prunes).

    A ranking method (``l1``, ``random``, ``pls``) starts from the trained baseline, so a sweep trains
    that baseline once, in this run's folder, and every ranking method of the same seed prunes it.
    """
    defaults = RunSpec("", "", BASELINE, None, 0, "", 1, "", 1)
    return replace(spec, mode=BASELINE, target=None, method="cdp", iterations=defaults.iterations,
                   finetune_epochs=defaults.finetune_epochs, finetune=defaults.finetune,
                   finetune_lr_scale=defaults.finetune_lr_scale)


def build_run_model(spec: RunSpec, num_classes: int):
    """The model a run trains: the CIFAR model, pruned by the run's plan, freshly initialised.

    The plan is always made on the full-size model, so its pruning ratios are the paper's. With
    ``spec.width_multiplier < 1`` (the quick profile) the model that is *trained* has every planned
    width scaled by that factor: same architecture and per-layer proportions, fewer filters.

    Returns ``(model, baseline_totals, plan_or_None)``; ``baseline_totals`` and the plan refer to the
    full-size model. Seeded: the same spec gives the same architecture and the same initial weights.
    """
    import keras

    import cdp_tutorial as cdp

    keras.utils.set_random_seed(spec.seed)
    full = cdp.models.build_model(spec.model, num_classes=num_classes)
    baseline = cdp.profile(full).totals
    plan = None
    if spec.mode != BASELINE:
        if spec.method == "uniform":
            plan = cdp.plan_uniform(full, spec.mode, target=spec.target)
        else:
            plan = cdp.plan_pruning(full, spec.mode, target=spec.target, step=spec.step, seed=spec.seed)
    keras.utils.set_random_seed(spec.seed)  # the trained model's initial weights
    if spec.width_multiplier == 1:
        return (cdp.apply_plan(full, plan) if plan else full), baseline, plan
    m = spec.width_multiplier
    narrow = {name: max(1, round(w * m)) for name, w in (plan.widths if plan else {}).items()}
    model = cdp.models.build_model(spec.model, num_classes=num_classes, widths=narrow, width_multiplier=m)
    return model, baseline, plan


def run_one(spec: RunSpec, out_dir, *, data=None, verbose=0) -> dict:
    """Train one run (resuming it if interrupted) and return its record for the results store."""
    import cdp_tutorial as cdp
    from cdp_tutorial.data import load_dataset
    from cdp_tutorial.training import train

    if data is None:
        data = load_dataset(spec.dataset, train_size=spec.train_size, test_size=spec.test_size)
    if spec.method not in ("cdp", "uniform") and spec.mode != BASELINE:
        runs = Path(out_dir) / RUNS_DIR
        return ranking_run_record(spec, runs / spec.key, data, protocol_label(spec),
                                  baseline_dir=runs / baseline_of(spec).key, verbose=verbose)
    model, baseline, plan = build_run_model(spec, data.num_classes)
    trained = cdp.profile(model).totals
    trained_baseline = trained if plan is None else (
        baseline if spec.width_multiplier == 1 else cdp.profile(cdp.models.build_model(
            spec.model, num_classes=data.num_classes, width_multiplier=spec.width_multiplier)).totals)
    result = train(model, data, spec.recipe, epochs=spec.epochs, batch_size=spec.batch_size,
                   seed=spec.seed, run_dir=Path(out_dir) / RUNS_DIR / spec.key, verbose=verbose)
    return {**run_identity(spec, protocol_label(spec), data),
            **complexity_fields(plan.final if plan else baseline, trained, baseline, trained_baseline),
            "planned_widths": plan.widths if plan else None, "trained_widths": layer_widths(model),
            "test_accuracy": result.test_accuracy, "test_loss": result.test_loss,
            "collapsed": collapsed(result.test_accuracy, data.num_classes),
            "epochs_trained": result.epochs, "wall_time_s": result.wall_time_s,
            "time_per_epoch_s": result.wall_time_s / max(result.epochs, 1),
            "images_per_second": result.images_per_second,
            "resumed_from_epoch": result.resumed_from_epoch}


def run_identity(spec: RunSpec, label: str, data) -> dict:
    """The fields every run record starts with: the key, the spec, and what produced the result."""
    from cdp_tutorial.training.result import code_fingerprint, library_versions

    return {"key": spec.key, **asdict(spec), "label": label, "dataset_description": data.description,
            "versions": library_versions(), "code_fingerprint": code_fingerprint(),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}


def layer_widths(model) -> dict:
    """``{layer name: filters}`` of every conv layer of a built model (what was trained)."""
    return {layer.name: int(layer.filters) for layer in model.layers if hasattr(layer, "filters")}


def load_trained_model(spec: RunSpec, out_dir):
    """The model a finished complexity-driven or uniform run trained, read back from its last checkpoint.

    Later notebooks reuse what a sweep already trained (same spec, same ``out_dir``) instead of
    training it again. Raises ``ValueError`` if ``out_dir``'s store has not recorded the run.
    """
    import keras

    if spec.key not in ResultsStore(out_dir).finished():
        raise ValueError(f"run {spec.key!r} has not finished in {out_dir}: run_sweep([spec], out_dir) first")
    run = Path(out_dir) / RUNS_DIR / spec.key
    state = json.loads((run / "state.json").read_text(encoding="utf-8"))
    return keras.models.load_model(run / state["checkpoint"], compile=False)


def ranking_run_record(spec, run_dir, data, label: str, baseline_dir=None, verbose=0) -> dict:
    """Run a sweep's ranking method (``spec.method``: ``l1``, ``random``, ``pls``) and return its record.

    The baseline is built exactly as the sweep's baseline run builds it (same seed, same initial
    weights; at ``spec.width_multiplier`` < 1 the narrow model), then
    :func:`cdp_tutorial.prune_finetune.train_prune_finetune` prunes it to ``spec.target`` of the mode's
    complexity in ``spec.iterations`` steps and fine-tunes it (``spec.finetune``). The pipeline's
    folder is ``run_dir``; the baseline is trained in (or read back from) ``baseline_dir``, the sweep's
    baseline run. The record has the same fields as a complexity-driven one, plus ``stages``,
    ``criterion``, ``scope`` and ``collapsed_stages``. A ranking method prunes the model it trained,
    so there is no full-size plan when that model is narrow: the ``planned_*`` columns are then None.
    """
    import keras

    from cdp_tutorial.baselines import METHODS as RANKINGS
    from cdp_tutorial.complexity import profile
    from cdp_tutorial.models import build_model
    from cdp_tutorial.prune_finetune import train_prune_finetune

    criterion, scope = RANKINGS[spec.method]
    keras.utils.set_random_seed(spec.seed)  # the same initial weights as the baseline run
    model = build_model(spec.model, num_classes=data.num_classes, width_multiplier=spec.width_multiplier)
    trained_baseline = profile(model).totals
    result = train_prune_finetune(
        model, data, criterion=criterion, scope=scope, mode=spec.mode, target=spec.target,
        iterations=spec.iterations, epochs=spec.epochs, finetune_epochs=spec.finetune_epochs,
        schedule=spec.finetune, finetune_lr_scale=spec.finetune_lr_scale,
        recipe=spec.recipe, batch_size=spec.batch_size, seed=spec.seed,
        run_dir=run_dir, baseline_dir=baseline_dir, verbose=verbose)
    final = profile(result.model).totals
    full_size = spec.width_multiplier == 1
    epochs = sum(s["epochs"] for s in result.stages)
    return {**run_identity(spec, label, data), "criterion": criterion, "scope": scope,
            **complexity_fields(final if full_size else None, final, trained_baseline, trained_baseline),
            "planned_widths": None, "trained_widths": layer_widths(result.model),
            "test_accuracy": result.test_accuracy, "test_loss": result.stages[-1]["test_loss"],
            "collapsed": bool(result.collapsed_stages), "collapsed_stages": result.collapsed_stages,
            "epochs_trained": epochs, "wall_time_s": result.wall_time_s,
            "time_per_epoch_s": result.wall_time_s / max(epochs, 1), "stages": result.stages}
