"""Measuring a latency table: every block configuration of a model on a grid of widths, then the
whole-model correction fitted on calibration models.

The grid is what Algorithm 1 can ask for. Output widths: every multiple of ``out_step`` up to the
layer's own width (a pruned layer's width is rounded *up* to one of them before lookup). Input
widths: ``in_points`` widths from ``out_step`` to the largest input, with straight lines between
them (latency bends along the input width on the Xeon of ``data/latency/``: more points follow
the bend more closely). A width that never changes
(the image's 3 channels, a classifier's 10 outputs) is measured at that width only.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from cdp_tutorial.checks import check_int, check_model
from cdp_tutorial.latency.blocks import build_block, find_blocks
from cdp_tutorial.latency.table import BlockEntry, LatencyTable, now_utc
from cdp_tutorial.latency.timing import Timing, export_files, time_files

#: Whole models the correction is fitted on: (mode, target, method, seed). Seeds >= 10,000 are
#: reserved for calibration, so no benchmark or notebook plan (seeds below 10,000) is one of them.
CALIBRATION_PLANS = (("flops", 0.5, "uniform", None), ("params", 0.3, "cdp", 10_000),
                     ("flops", 0.25, "cdp", 10_001), ("memory", 0.6, "cdp", 10_002),
                     ("params", 0.15, "uniform", None), ("flops", 0.75, "cdp", 10_003),
                     ("memory", 0.35, "cdp", 10_004), ("params", 0.2, "cdp", 10_005),
                     ("memory", 0.25, "uniform", None))


def measure_latency_table(model, *, timing: Timing = Timing(), out_step: int = 16, in_points: int = 3,
                          layers=None, calibration: int = 10, folder=None, progress=None) -> LatencyTable:
    """Measure the latency of every block of ``model`` with LiteRT on this machine.

    Each block (a conv or dense layer and the batch norm, activation and pooling fused to it) is
    built alone at every grid width and exported to LiteRT fp32, and so are ``calibration`` whole
    models (the unpruned model and pruned variants of it, :data:`CALIBRATION_PLANS`). All are
    timed together at batch 1, in separate processes that never import TensorFlow
    (:func:`cdp_tutorial.latency.time_files`: warm-up, interleaved rounds, median), and the
    correction of :mod:`cdp_tutorial.latency.table` is fitted on the whole models
    (:func:`fit_correction`).

    Parameters
    ----------
    model : keras.Model
        The unpruned model whose pruned variants will be priced (batch size free, one input).
    timing : Timing, default Timing()
        Interpreter threads (2: the paper's VM), warm-up, repeats, rounds and processes.
    out_step : int, default 16
        Output widths are measured at multiples of this (16 or 32: a CPU kernel's tile).
    in_points : int, default 3
        Input widths measured per block configuration (at least 2).
    layers : list of str, optional
        Measure only the blocks of these conv/dense layers (a quick, partial table: no correction,
        use it through :meth:`LatencyTable.updated`).
    calibration : int, default 10
        Whole models to fit the correction on, timed in the same rounds as the blocks (so that both
        see the machine in one state): 1 = the unpruned model only (intercept only), at most
        ``1 + len(CALIBRATION_PLANS)``.
    folder : str or pathlib.Path, optional
        Keep the exported ``.tflite`` files here (default: a temporary folder). Files are named by
        what they contain, so a second measurement into the same folder reuses them.
    progress : callable, optional
        Called with one line of text per stage (e.g. ``print``).

    Returns
    -------
    LatencyTable

    Raises
    ------
    ValueError
        An unknown layer in ``layers``, a model with no conv or dense layer, or settings out of range.

    Examples
    --------
    >>> import cdp_tutorial as cdp
    >>> table = measure_latency_table(cdp.models.vgg16(), progress=print)    # doctest: +SKIP
    >>> table.save("data/latency/my-laptop.json")                              # doctest: +SKIP
    """
    from cdp_tutorial.complexity import CostModel
    from cdp_tutorial.devices import device_record
    from cdp_tutorial.graph import analyse

    check_model(model)
    out_step = check_int(out_step, "out_step", minimum=1)
    in_points = check_int(in_points, "in_points", minimum=2)
    calibration = check_int(calibration, "calibration", minimum=0, maximum=1 + len(CALIBRATION_PLANS))
    say = progress or (lambda text: None)
    costs = CostModel(analyse(model))
    blocks = find_blocks(costs.graph, costs)
    if layers is not None:
        wanted = [layers] if isinstance(layers, str) else list(layers)
        unknown = sorted(set(wanted) - {b.layer for b in blocks})
        if unknown:
            raise ValueError(f"layers names {unknown}, which are not conv or dense layers of {model.name!r}; "
                             f"its blocks start at {[b.layer for b in blocks]}")
        blocks = [b for b in blocks if b.layer in wanted]
    if not blocks:
        raise ValueError(f"model {model.name!r} has no conv or dense layer to time")
    grids = _grids(blocks, out_step, in_points)
    load = [os.getloadavg()[0]]
    points = {_file_name(key, i, o): (key, i, o)
              for key, (ins, outs, _) in grids.items() for i in (ins or [0]) for o in outs}
    whole = calibration_models(model, calibration) if layers is None and calibration else {}
    with tempfile.TemporaryDirectory(prefix="cdp-latency-table-") as scratch:
        say(f"exporting {len(points)} single-block models for {len(grids)} block configurations"
            + (f" and {len(whole)} whole models for the correction" if whole else ""))
        folder = Path(folder or scratch)
        files = export_files({name: (lambda key=key, i=i, o=o: build_block(key, i, o))
                              for name, (key, i, o) in points.items()}, folder, reuse=True)
        files.update(export_files({model_file_name(m): m for m in whole.values()}, folder, reuse=True))
        say(f"timing them together: {timing.processes} processes x {timing.rounds} rounds x {timing.repeats} "
            f"calls, {timing.threads} thread(s), clock {timing.clock!r}")
        times = time_files(list(files.values()), timing)
    entries = {}
    for key, (ins, outs, description) in grids.items():
        ms, spread = np.zeros((max(1, len(ins)), len(outs))), np.zeros((max(1, len(ins)), len(outs)))
        entries[key] = BlockEntry(key, description, list(ins), list(outs), ms, spread)
    for name, (key, i, o) in points.items():
        row = entries[key].in_widths.index(i) if entries[key].in_widths else 0
        col = entries[key].out_widths.index(o)
        entries[key].ms[row, col] = round(times.median(files[name]), 6)  # as saved: 1 ns
        entries[key].spread[row, col] = times.spread(files[name])
    table = LatencyTable(model_name=model.name, device=device_record(),
                         settings={**timing.as_dict(), "out_step": out_step, "in_points": in_points,
                                   "litert_timed_with": times.litert, "precision": "fp32", "batch": 1,
                                   "timer_imported_tensorflow": times.tensorflow_imported},
                         entries=entries, measured_at=now_utc(), load=load + times.load,
                         layers={b.layer: b.key for b in blocks})
    if whole:
        measured = {name: (times.median(files[model_file_name(m)]), times.wall_median(files[model_file_name(m)]),
                           times.spread(files[model_file_name(m)])) for name, m in whole.items()}
        table.correction = fit_correction(correction_rows(table, whole, measured))
    say(table.summary())
    return table


def calibration_models(model, count: int) -> dict:
    """The unpruned model and ``count - 1`` pruned variants (:data:`CALIBRATION_PLANS`), by name."""
    from cdp_tutorial.pruning import plan_pruning, plan_uniform
    from cdp_tutorial.rebuild import apply_plan

    models = {"baseline": model}
    for mode, target, method, seed in CALIBRATION_PLANS[:count - 1]:
        plan = (plan_uniform(model, mode, target=target) if method == "uniform"
                else plan_pruning(model, mode, target=target, seed=seed))
        models[f"{method}-{mode}-{target:g}" + (f"-s{seed}" if seed is not None else "")] = apply_plan(model, plan)
    return models


def correction_rows(table: LatencyTable, models: dict, measured: dict) -> list[dict]:
    """One row per whole model: measured ms (table's clock), wall ms, spread, block sum, weight MB.

    ``measured`` maps each name of ``models`` to ``(ms, wall_ms, spread)`` from one timing job.
    """
    rows = []
    for name, m in models.items():
        predictor = table.predictor(m, warn=False)
        widths = predictor.costs.baseline_widths
        ms, wall, spread = measured[name]
        rows.append(dict(name=name, measured_ms=round(ms, 6), wall_ms=round(wall, 6), spread=round(spread, 4),
                         blocks_ms=round(float(predictor.block_ms(widths).sum()), 6),
                         weight_mb=round(predictor.weight_mb(widths), 4)))
    return rows


def fit_correction(rows: list[dict]) -> dict:
    """Least squares ``measured = s * block sum + c0 + c1 * weight MB`` over whole models.

    ``s`` carries what the blocks timed alone miss in proportion to their work, ``c1`` what the
    whole model loses to moving its weights, ``c0`` the rest. With fewer than 5 models only ``c0`` and
    ``c1`` are fitted (``s = 1``); with fewer than 3, or models of nearly one size, only ``c0``.
    """
    y = np.array([r["measured_ms"] for r in rows])
    blocks = np.array([r["blocks_ms"] for r in rows])
    mb = np.array([r["weight_mb"] for r in rows])
    if len(rows) >= 5:
        (scale, intercept, slope), *_ = np.linalg.lstsq(np.c_[blocks, np.ones(len(y)), mb], y, rcond=None)
    elif len(rows) >= 3 and np.ptp(mb) > 0.1 * mb.max():
        scale, (slope, intercept) = 1.0, np.polyfit(mb, y - blocks, 1)
    else:
        scale, slope, intercept = 1.0, 0.0, float(np.mean(y - blocks))
    return {"blocks_scale": round(float(scale), 6), "intercept_ms": round(float(intercept), 6),
            "ms_per_weight_mb": round(float(slope), 6), "calibration": rows}


def model_file_name(model) -> str:
    """A file name that changes with a model's architecture: ``vgg16-<hash of its layer configs>``."""
    text = json.dumps([layer.get_config() for layer in model.layers], sort_keys=True, default=str)
    return f"{model.name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _file_name(key: str, in_width: int, out_width: int) -> str:
    return f"block-{hashlib.sha256(f'{key}|{in_width}|{out_width}'.encode()).hexdigest()[:12]}"


def _grids(blocks, out_step, in_points) -> dict:
    """``{key: (input widths, output widths, description)}`` covering every block sharing a key."""
    grids = {}
    for b in blocks:
        ins, outs, _ = grids.get(b.key, ([], [], b.description))
        outs = [b.out_width] if b.out_kind == "fixed" else sorted(set(outs) | set(_steps(b.out_width, out_step)))
        if b.in_kind == "tied":
            ins = []
        elif b.in_kind == "fixed":
            ins = [b.in_width]
        else:
            top = max([b.in_width] + ins)
            low = out_step if top > out_step else max(1, top // 2)  # at least two points to draw a line
            ins = sorted({int(round(w)) for w in np.linspace(low, top, in_points)})
        grids[b.key] = (ins, outs, b.description)
    return grids


def _steps(width: int, step: int) -> list[int]:
    """Multiples of ``step`` up to ``width`` rounded up: every width a pruned layer can be looked up at."""
    return [step * k for k in range(1, math.ceil(width / step) + 1)]
