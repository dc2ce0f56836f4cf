"""Measuring a latency table: every block configuration of a model on a grid of widths, then the
whole-model correction fitted on calibration models.

The grid is what Algorithm 1 can ask for. Output widths: every multiple of ``out_step`` up to the
layer's own width (a pruned layer's width is rounded *up* to one of them before lookup). Input
widths: ``in_points`` widths from ``out_step`` to the largest input (latency is linear in input
width, so a few points and straight lines between them suffice). A width that never changes
(the image's 3 channels, a classifier's 10 outputs) is measured at that width only.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np

from cdp_tutorial.checks import check_int, check_model
from cdp_tutorial.latency.blocks import build_block, find_blocks
from cdp_tutorial.latency.table import BlockEntry, LatencyTable, now_utc
from cdp_tutorial.latency.timing import Timing, export_files, measure_models, time_files

#: Whole models the correction is fitted on: (mode, target, method, seed). Seeds >= 10,000 are
#: reserved for calibration, so no benchmark or notebook plan (seeds below 10,000) is one of them.
CALIBRATION_PLANS = (("flops", 0.5, "uniform", None), ("params", 0.3, "cdp", 10_000),
                     ("flops", 0.25, "cdp", 10_001), ("memory", 0.6, "cdp", 10_002),
                     ("params", 0.15, "uniform", None), ("flops", 0.75, "cdp", 10_003),
                     ("memory", 0.35, "cdp", 10_004))


def measure_latency_table(model, *, timing: Timing = Timing(), out_step: int = 16, in_points: int = 3,
                          layers=None, calibration: int = 6, folder=None, progress=None) -> LatencyTable:
    """Measure the latency of every block of ``model`` with LiteRT on this machine.

    Each block (a conv or dense layer and the batch norm, activation and pooling fused to it) is
    built alone at every grid width, exported to LiteRT fp32, and timed at batch 1 in separate
    processes that never import TensorFlow (:func:`cdp_tutorial.latency.time_files`: warm-up,
    interleaved rounds, median). Then ``calibration`` whole models (the unpruned model and pruned
    variants of it, see :data:`CALIBRATION_PLANS`) are measured the same way, and the intercept
    and size correction of :mod:`cdp_tutorial.latency.table` are fitted on them.

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
    calibration : int, default 6
        Whole models to fit the correction on (1 = the unpruned model only: intercept, no size
        term; at most ``1 + len(CALIBRATION_PLANS)``).
    folder : str or pathlib.Path, optional
        Keep the exported ``.tflite`` files here (default: a temporary folder).
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
    with tempfile.TemporaryDirectory(prefix="cdp-latency-table-") as scratch:
        folder = Path(folder or scratch)
        points = [(key, i, o) for key, (ins, outs, _) in grids.items() for i in (ins or [0]) for o in outs]
        say(f"exporting {len(points)} single-block models for {len(grids)} block configurations")
        files = export_files({f"block{n}": build_block(key, i, o) for n, (key, i, o) in enumerate(points)},
                             folder / "blocks")
        say(f"timing them: {timing.processes} processes x {timing.rounds} rounds x {timing.repeats} calls, "
            f"{timing.threads} thread(s)")
        times = time_files(list(files.values()), timing)
        load += times.load
        entries = {}
        for key, (ins, outs, description) in grids.items():
            ms, spread = np.zeros((max(1, len(ins)), len(outs))), np.zeros((max(1, len(ins)), len(outs)))
            entries[key] = BlockEntry(key, description, list(ins), list(outs), ms, spread)
        for n, (key, i, o) in enumerate(points):
            row = entries[key].in_widths.index(i) if entries[key].in_widths else 0
            col = entries[key].out_widths.index(o)
            entries[key].ms[row, col] = round(times.median(files[f"block{n}"]), 6)  # as saved: 1 ns
            entries[key].spread[row, col] = times.spread(files[f"block{n}"])
        table = LatencyTable(model_name=model.name, device=device_record(),
                             settings={**timing.as_dict(), "out_step": out_step, "in_points": in_points,
                                       "litert_timed_with": times.litert, "precision": "fp32", "batch": 1},
                             entries=entries, measured_at=now_utc(), load=load,
                             layers={b.layer: b.key for b in blocks})
        if layers is None and calibration:
            say(f"measuring {calibration} whole models to fit the correction")
            table.correction = fit_correction(table, model, calibration_models(model, calibration),
                                              timing, folder / "calibration")
            table.load += table.correction.pop("load")
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


def fit_correction(table: LatencyTable, model, models: dict, timing: Timing, folder) -> dict:
    """Measure whole ``models`` and fit ``measured - block sum = c0 + c1 * weight MB`` by least squares.

    With one model (or models of nearly one size) only the intercept is fitted (``c1 = 0``).
    """
    measured = measure_models(models, timing, folder)
    rows = []
    for name, m in models.items():
        predictor = table.predictor(m, warn=False)
        widths = predictor.costs.baseline_widths
        rows.append(dict(name=name, measured_ms=round(measured.ms[name], 6),
                         spread=round(measured.spread[name], 4),
                         blocks_ms=round(float(predictor.block_ms(widths).sum()), 6),
                         weight_mb=round(predictor.weight_mb(widths), 4)))
    residual = np.array([r["measured_ms"] - r["blocks_ms"] for r in rows])
    mb = np.array([r["weight_mb"] for r in rows])
    if len(rows) >= 3 and np.ptp(mb) > 0.1 * mb.max():
        slope, intercept = np.polyfit(mb, residual, 1)
    else:
        slope, intercept = 0.0, float(np.mean(residual))
    return {"intercept_ms": round(float(intercept), 6), "ms_per_weight_mb": round(float(slope), 6),
            "calibration": rows, "load": measured.times.load}


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
