"""Measured latency of LiteRT files: separate processes, interleaved rounds, medians.

A shared 2-core machine makes single timings unreliable in three ways, and each is met here:

* **the process.** The process that exported the model has imported TensorFlow, whose thread pools
  and memory the timed calls would share (an early test on the shared machine of ``data/latency/``, not
  recorded, saw spreads up to 2x there). Files are timed by
  ``worker.py``, a script that imports only NumPy and ``ai_edge_litert``, in a fresh process;
* **drift.** Other jobs start and stop. Every round visits every file once, in a new random order,
  so drift hits all files alike instead of the ones timed last;
* **the process's luck.** Medians of separate processes differed by up to 11 % in that early test. Each
  job runs in ``processes`` processes one after another; a file's latency is the median over every
  round of every process, and its spread (interquartile range / median) is kept beside it.

Each round loads the file afresh, makes ``warmup`` untimed calls, then ``repeats`` timed calls
(batch 1, ``threads`` interpreter threads) and keeps their median.

**Which clock.** ``clock="wall"`` (the default) times each call with the wall clock: the latency a
user sees, on a machine that does nothing else. On a machine shared with other busy processes it also
counts the time the interpreter *waited* for a core: on the machine of ``data/latency/`` (a load
average of 7-16 on 2 cores), the unpruned VGG-16 took 30-45 ms of wall time for 14-15 ms of CPU time.
``clock="thread"`` times each call with the calling thread's CPU clock instead; with one interpreter
thread (XNNPACK then computes on the calling thread) that is the time the model ran, without the
waits. It is steadier, not steady: on that machine the whole models' CPU time drifted by 14-25 %
within 45 minutes (the calibration models refitted in the benchmark's session against the table's
own; ``data/latency/README.md``), memory traffic of the other jobs and the host's clock among the
possible causes (not measured). It needs ``threads=1``: other threads' work would not be counted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cdp_tutorial.checks import check_choice, check_int, check_seed

WORKER = Path(__file__).with_name("worker.py")
#: How a call is timed: the wall clock, or the calling thread's CPU clock (see the module docstring).
CLOCKS = ("wall", "thread")


@dataclass(frozen=True)
class Timing:
    """How to time: interpreter threads, warm-up and timed calls per round, rounds, processes."""

    threads: int = 2
    warmup: int = 5
    repeats: int = 20
    rounds: int = 3
    processes: int = 3
    seed: int = 0
    clock: str = "wall"  # "wall": perf_counter; "thread": the calling thread's CPU time (threads=1 only)

    def __post_init__(self):
        for name in ("threads", "warmup", "repeats", "rounds", "processes"):
            check_int(getattr(self, name), name, minimum=1)
        check_seed(self.seed)
        check_choice(self.clock, "clock", CLOCKS)
        if self.clock == "thread" and self.threads != 1:
            raise ValueError(f"clock='thread' counts the CPU time of the calling thread only, so it needs "
                             f"threads=1 (got threads={self.threads}); use clock='wall' with several threads")

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("threads", "warmup", "repeats", "rounds", "processes", "seed",
                                              "clock")}


@dataclass(frozen=True)
class FileTimes:
    """The per-round medians of every file (ms), and what they ran under."""

    ms: dict  # path -> list of round medians (rounds x processes), by the job's clock
    litert: str
    load: list  # 1-minute load average before the job and after every round
    tensorflow_imported: bool = False  # whether any timing process had TensorFlow loaded (it should not)
    wall_ms: dict = None  # path -> round medians by the wall clock (equal to ms when clock="wall")

    def wall_median(self, path) -> float:
        return float(np.median(self.wall_ms[str(path)]))

    def median(self, path) -> float:
        return float(np.median(self.ms[str(path)]))

    def spread(self, path) -> float:
        """Interquartile range of the round medians, as a fraction of their median."""
        values = self.ms[str(path)]
        return float(np.subtract(*np.percentile(values, [75, 25])) / np.median(values))


def time_files(paths, timing: Timing = Timing()) -> FileTimes:
    """Time LiteRT files in ``timing.processes`` fresh processes that never import TensorFlow.

    Parameters
    ----------
    paths : list of str or pathlib.Path
        ``.tflite`` files with one float32 input.
    timing : Timing

    Returns
    -------
    FileTimes

    Raises
    ------
    FileNotFoundError
        A file that does not exist.
    RuntimeError
        A worker process failed (its error output is in the message).
    """
    paths = [str(p) for p in paths]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"no LiteRT file at {missing[0]}" + (f" (and {len(missing) - 1} more)"
                                                                      if len(missing) > 1 else ""))
    ms, wall = {p: [] for p in paths}, {p: [] for p in paths}
    load, litert, tensorflow = [], None, False
    with tempfile.TemporaryDirectory(prefix="cdp-latency-") as folder:
        for process in range(timing.processes):
            job = Path(folder) / f"job{process}.json"
            result = Path(folder) / f"result{process}.json"
            job.write_text(json.dumps({**timing.as_dict(), "seed": timing.seed + process, "files": paths}),
                           encoding="utf-8")
            # -I: isolated, so neither this package's folder nor PYTHON* variables reach the worker
            done = subprocess.run([sys.executable, "-I", str(WORKER), str(job), str(result)],
                                  capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
            if done.returncode != 0:
                raise RuntimeError(f"the LiteRT timing process failed (exit {done.returncode}): "
                                   f"{done.stderr.strip()[-1500:]}")
            out = json.loads(result.read_text(encoding="utf-8"))
            for p in paths:
                ms[p].extend(out["ms"][p])
                wall[p].extend(out["wall_ms"][p])
            load.extend(out["load"])
            litert = out["litert"]
            tensorflow = tensorflow or out["tensorflow_imported"]
    return FileTimes(ms=ms, litert=litert, load=load, tensorflow_imported=tensorflow, wall_ms=wall)


def export_files(models: dict, folder, *, reuse: bool = False) -> dict:
    """Export Keras models to ``folder/<name>.tflite`` (fp32) with :func:`cdp_tutorial.edge.export_litert`.

    ``models`` maps names to Keras models, or to functions that build one (so that hundreds of
    blocks are built one at a time, not all held in memory). Returns ``{name: path}``. Existing
    files are replaced (these are scratch files for timing), or with ``reuse=True`` kept as they
    are: only for names that say what a file contains.
    """
    from cdp_tutorial.edge import export_litert

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, model in models.items():
        path = folder / f"{name}.tflite"
        if not (reuse and path.is_file()):
            export_litert(model if hasattr(model, "export") else model(), path, overwrite=True)
        paths[name] = path
    return paths


def measure_models(models: dict, timing: Timing = Timing(), folder=None) -> "MeasuredModels":
    """Measured batch-1 latency of Keras models, exported to LiteRT fp32 and timed together.

    Parameters
    ----------
    models : dict
        ``{name: keras.Model}``; names become file names, so keep them to letters, digits, ``-_.``.
    timing : Timing
    folder : str or pathlib.Path, optional
        Where the ``.tflite`` files go (default: a temporary folder, removed afterwards).

    Returns
    -------
    MeasuredModels

    Examples
    --------
    >>> import cdp_tutorial as cdp
    >>> measured = measure_models({"vgg16": cdp.models.vgg16()})       # doctest: +SKIP
    >>> measured.ms["vgg16"]                                              # doctest: +SKIP
    4.31
    """
    if folder is None:
        with tempfile.TemporaryDirectory(prefix="cdp-latency-models-") as scratch:
            return measure_models(models, timing, scratch)
    files = export_files(models, folder)
    times = time_files(list(files.values()), timing)
    return MeasuredModels(ms={name: times.median(path) for name, path in files.items()},
                          spread={name: times.spread(path) for name, path in files.items()},
                          wall_ms={name: times.wall_median(path) for name, path in files.items()},
                          times=times)


@dataclass(frozen=True)
class MeasuredModels:
    """What :func:`measure_models` returns: median ms and spread per model, and the raw timings."""

    ms: dict  # by the timing's clock
    spread: dict
    wall_ms: dict  # by the wall clock
    times: FileTimes
