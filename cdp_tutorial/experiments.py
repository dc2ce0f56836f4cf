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
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from cdp_tutorial.results import (BASELINE, RESULTS_FILE, ResultsStore, paper_table, pls_table,  # noqa: F401
                                  side_by_side, summarize)
from cdp_tutorial.runs import (METHODS, PAPER_STEP, RUNS_DIR, RunSpec, baseline_of, build_run_model,  # noqa: F401
                               load_trained_model, make_specs, protocol_label, run_one)

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
    if len(todo) < len(specs):  # always said: a reused result is not a fresh one
        print(reuse_note(specs, store))
    if backend == "ray":
        _run_with_ray(todo, out_dir, store, gpus_per_trial, cpus_per_trial, progress)
    else:
        _run_serially(todo, out_dir, store, progress, verbose)
    frame = store.frame()
    return frame[frame.key.isin({s.key for s in specs})].reset_index(drop=True) if len(frame) else frame


def reuse_note(specs, store) -> str:
    """One line for a sweep that reuses finished runs: how many, from where, and by which code."""
    from cdp_tutorial.training.result import code_fingerprint

    keys = {s.key for s in specs}
    reused = [r for r in store.records() if r.get("key") in keys]
    other = sorted({str(r.get("code_fingerprint")) for r in reused} - {code_fingerprint()})
    note = (f"{len(reused)} of {len(specs)} runs already finished in {store.path}: reused, not trained again")
    if other:
        count = sum(str(r.get("code_fingerprint")) in other for r in reused)
        note += (f"; {count} of them were trained by other code (code fingerprint {', '.join(other)}; this "
                 f"code is {code_fingerprint()}): delete {store.path.parent} to train everything again")
    return note


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
