"""Experiments: the paper's grid of runs — models × modes × budgets × seeds — and its tables.

One *run* = build a CIFAR model, derive a pruned architecture (or not, for the baseline), train it
once from scratch, record what came out. A *sweep* is a list of runs; every finished run is added
to a results store (``results.jsonl`` in the output folder, one JSON record per line) the moment it
finishes, and running the sweep again skips what is already there — so a sweep can be stopped and
restarted at will, and an interrupted run resumes from its last epoch (:func:`cdp_tutorial.training.train`).

Backends: ``"serial"`` (default, needs nothing) runs one run after another; ``"ray"`` hands each run
to Ray Tune as one trial with its share of a GPU (``pip install "cdp-tutorial[ray]"``), for many
GPUs or machines. Either way, only this process writes the store.

Every record carries its profile and a ``label`` that says honestly whether it followed the
paper's protocol; :func:`summarize` gives mean ± std over seeds in the shape of the paper's tables.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd

from cdp_tutorial.checks import check_choice, check_fraction, check_int, check_number, check_seed
from cdp_tutorial.profiles import Profile, get_profile
from cdp_tutorial.results import (BASELINE, RESULTS_FILE, ResultsStore, complexity_fields,  # noqa: F401
                                  paper_table, pls_table, side_by_side, summarize)
from cdp_tutorial.sampling import ABBREVIATIONS, normalize_mode

RUNS_DIR = "runs"
#: ``cdp``: Algorithm 1, trained once from scratch; ``uniform``: every layer scaled alike, same
#: budget, from scratch; ``l1``, ``random``, ``pls``: train the baseline, then K x (rank, prune,
#: fine-tune) (:mod:`cdp_tutorial.baselines`).
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
    iterations: int = 1  # K prune + fine-tune rounds of a ranking method (l1, random, pls)
    finetune_epochs: int | None = None  # epochs of each fine-tune; None: ``epochs`` (equal per stage)

    @property
    def key(self) -> str:
        """A unique, readable name, used for the run folder and to skip finished runs."""
        ranking = "" if self.method in ("cdp", "uniform") else (
            f"-k{self.iterations}" + (f"f{self.finetune_epochs}" if self.finetune_epochs else ""))
        what = BASELINE if self.mode == BASELINE else (
            f"{self.mode}{'' if self.method == 'cdp' else '-' + self.method}-t{self.target:g}{ranking}")
        sizes = "" if self.train_size is None and self.test_size is None else \
            f"-n{self.train_size or 'all'}x{self.test_size or 'all'}"
        narrow = "" if self.width_multiplier == 1 else f"-w{self.width_multiplier:g}"
        return (f"{self.model}-{self.dataset}-{what}-s{self.seed}-{self.profile}-e{self.epochs}"
                f"-{self.recipe}-b{self.batch_size}{sizes}{narrow}")


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
               width_multiplier=None, methods=None, iterations=1, finetune_epochs=None) -> list[RunSpec]:
    """The runs of a sweep: a baseline per model and seed, then every mode × target × method.

    ``methods`` (default ``["cdp"]``, plus ``"uniform"`` if ``uniform``) are any of :data:`METHODS`;
    the ranking ones (``l1``, ``random``, ``pls``) prune the trained baseline in ``iterations``
    rounds of ``finetune_epochs`` epochs each (default: ``epochs``, equal epochs per stage).

    Profile values fill in whatever is not given (``width_multiplier``: the trained models' widths
    as a fraction of the planned ones; the quick profile trains at x0.25, see
    :mod:`cdp_tutorial.profiles`). Raises ``ValueError`` for an unknown model, mode or profile, a
    target outside (0, 1), a width multiplier outside (0, 1], or an empty grid.
    """
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
    if finetune_epochs is not None:
        finetune_epochs = check_int(finetune_epochs, "finetune_epochs", minimum=1)
    if not models or not seeds or not (baseline or (modes and targets and methods)):
        raise ValueError("the sweep is empty: give at least one model, one seed and a mode/target or the baseline")
    common = dict(dataset=dataset or prof.dataset, profile=prof.name,
                  epochs=int(epochs or prof.epochs), recipe=recipe or prof.recipe,
                  batch_size=int(batch_size or prof.batch_size),
                  train_size=train_size if train_size is not None else prof.train_size,
                  test_size=test_size if test_size is not None else prof.test_size, step=step,
                  width_multiplier=width_multiplier)
    specs = []
    for name in models:
        for seed in seeds:
            if baseline:
                specs.append(RunSpec(name.lower(), mode=BASELINE, target=None, seed=int(seed), **common))
            for mode in modes:
                for t in targets:
                    for method in methods:
                        ranking = {} if method in ("cdp", "uniform") else dict(
                            iterations=iterations, finetune_epochs=finetune_epochs)
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
    return replace(spec, mode=BASELINE, target=None, method="cdp", iterations=1, finetune_epochs=None)


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
        from cdp_tutorial.baselines import ranking_run_record

        runs = Path(out_dir) / RUNS_DIR
        return ranking_run_record(spec, runs / spec.key, data, protocol_label(spec),
                                  baseline_dir=runs / baseline_of(spec).key, verbose=verbose)
    model, baseline, plan = build_run_model(spec, data.num_classes)
    trained = cdp.profile(model).totals
    totals = plan.final if plan else baseline  # the full-size architecture the lesson is about
    result = train(model, data, spec.recipe, epochs=spec.epochs, batch_size=spec.batch_size,
                   seed=spec.seed, run_dir=Path(out_dir) / RUNS_DIR / spec.key, verbose=verbose)
    record = {"key": spec.key, **asdict(spec),
              "label": protocol_label(spec), "dataset_description": data.description,
              **complexity_fields(totals, trained, baseline),
              "widths": plan.widths if plan else None,
              "test_accuracy": result.test_accuracy, "test_loss": result.test_loss,
              "epochs_trained": result.epochs, "wall_time_s": result.wall_time_s,
              "time_per_epoch_s": result.wall_time_s / max(result.epochs, 1),
              "images_per_second": result.images_per_second,
              "resumed_from_epoch": result.resumed_from_epoch,
              "versions": result.versions, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return record


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


# --------------------------------------------------------------------------------------------
# Sweeps
# --------------------------------------------------------------------------------------------
def run_sweep(specs, out_dir, *, backend: str = "serial", gpus_per_trial: float = 0.0,
              cpus_per_trial: int = 1, progress: bool = True, verbose=0) -> pd.DataFrame:
    """Run every spec not yet in ``out_dir``'s results store; return all records as a DataFrame.

    Parameters
    ----------
    specs : list of RunSpec
        From :func:`make_specs`.
    out_dir : str or pathlib.Path
        Holds ``results.jsonl`` and one folder per run under ``runs/`` (checkpoints).
    backend : {"serial", "ray"}
        ``"ray"`` runs each spec as a Ray Tune trial (``pip install "cdp-tutorial[ray]"``).
    gpus_per_trial, cpus_per_trial : float, int
        Resources of each Ray trial (0.25 GPU packs four trials per GPU).
    progress : bool
        A progress bar over the sweep.

    Raises
    ------
    TrialsFailed
        With ``backend="ray"``, once every trial has ended, if any failed: it names each failed
        run and its error (the serial backend stops at the first error instead).
    """
    if backend not in ("serial", "ray"):
        raise ValueError(f"backend must be 'serial' or 'ray', got {backend!r}")
    store = ResultsStore(out_dir)
    done = store.finished()
    todo = [s for s in specs if s.key not in done]
    if len({s.key for s in specs}) != len(specs):
        raise ValueError("the sweep lists the same run twice")
    skipped = len(specs) - len(todo)
    if progress and skipped:
        print(f"{skipped} of {len(specs)} runs already finished in {store.path}: skipped")
    if backend == "ray":
        _run_with_ray(todo, out_dir, store, gpus_per_trial, cpus_per_trial, progress)
    else:
        _run_serially(todo, out_dir, store, progress, verbose)
    frame = store.frame()
    return frame[frame.key.isin({s.key for s in specs})].reset_index(drop=True) if len(frame) else frame


def _run_serially(todo, out_dir, store, progress, verbose):
    from tqdm.auto import tqdm

    from cdp_tutorial.data import load_dataset

    cache: dict = {}
    bar = tqdm(todo, desc="sweep", unit="run", disable=not progress or not todo)
    for spec in bar:
        bar.set_postfix_str(spec.key[:60])
        data_key = (spec.dataset, spec.train_size, spec.test_size)
        if data_key not in cache:
            cache.clear()  # keep one dataset in memory at a time
            cache[data_key] = load_dataset(spec.dataset, train_size=spec.train_size,
                                           test_size=spec.test_size)
        record = run_one(spec, out_dir, data=cache[data_key], verbose=verbose)
        store.append(record)
        if progress:
            bar.write(f"{spec.key}: test accuracy {100 * record['test_accuracy']:.2f} %, "
                      f"{record['wall_time_s']:.0f} s")


class TrialsFailed(RuntimeError):
    """Some Ray trials of a sweep failed: ``failures`` maps each one's run key to its error."""

    def __init__(self, failures: dict, total: int):
        self.failures = failures
        details = "".join(f"\n  {key}: {error}" for key, error in failures.items())
        super().__init__(f"{len(failures)} of {total} Ray trials failed; the others are recorded and "
                         f"running the sweep again retries only these:{details}")


def _run_with_ray(todo, out_dir, store, gpus_per_trial, cpus_per_trial, progress):
    try:
        from ray import tune
    except ImportError:
        raise ImportError('the ray backend needs Ray Tune: pip install "cdp-tutorial[ray]"') from None
    if not todo:
        return
    out_dir = str(Path(out_dir).resolve())

    def trainable(config):
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):  # share the GPU with other trials
            tf.config.experimental.set_memory_growth(gpu, True)
        record = run_one(RunSpec(**config["spec"]), out_dir)
        tune.report({"record": json.dumps(record), "test_accuracy": record["test_accuracy"]})

    # Ranking methods prune their seed's trained baseline: a first pass trains the baselines they
    # need, so two trials never train the same baseline folder at once.
    ranking = [s for s in todo if s.method not in ("cdp", "uniform")]
    known = store.finished() | {s.key for s in todo}
    implied = {b.key: b for b in map(baseline_of, ranking) if b.key not in known}
    baselines = [s for s in todo if s.mode == BASELINE] + list(implied.values())
    passes = ([("baselines", baselines), ("sweep", [s for s in todo if s.mode != BASELINE])] if ranking
              else [("sweep", todo)])
    failures, total = {}, 0
    for name, trials in passes:
        for spec in trials:  # a ranking run whose baseline failed is not started
            if spec.mode != BASELINE and baseline_of(spec).key in failures:
                failures[spec.key] = f"its baseline {baseline_of(spec).key} failed"
        total += len(trials)
        trials = [s for s in trials if s.key not in failures]
        if not trials:
            continue
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial}),
            param_space={"spec": tune.grid_search([asdict(s) for s in trials])},
            run_config=tune.RunConfig(storage_path=str(Path(out_dir) / "ray"), name=name,
                                      verbose=1 if progress else 0),
        )
        for result in tuner.fit():
            if result.error is None and "record" in result.metrics:
                store.append(json.loads(result.metrics["record"]))  # only the driver writes the store
            else:  # Ray wraps the trial's own exception (RayTaskError.cause): report that one
                cause = getattr(result.error, "cause", None) or result.error
                key = RunSpec(**result.config["spec"]).key
                failures[key] = f"{type(cause).__name__}: {cause} (log: {result.path})"
    if failures:
        raise TrialsFailed(failures, total=total)
