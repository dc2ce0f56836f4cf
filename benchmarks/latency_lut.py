"""How well does a latency table predict whole pruned models? Predicted vs measured LiteRT latency.

For the full-width CIFAR VGG-16 (untrained: latency does not depend on the weights' values) and
``--plans`` pruned architectures — random Algorithm 1 plans over the PA / FA / MA modes at targets
drawn from 0.2-0.8, uniform width scaling at such targets, and latency-aware (LA) plans made with
the table itself — every model is exported to LiteRT fp32 and timed the way the table was
(:func:`cdp_tutorial.latency.time_files`: separate TensorFlow-free processes, every model once per
round in a new random order, median of all rounds), with the table's threads and clock. Each
measured latency is compared with the table's prediction.

**The correction, and what it is fitted on.** A whole model's latency is the table's block sum
plus a correction (scale, intercept, weight-MB term) fitted on *calibration* models: the unpruned
VGG-16 and pruned variants with seeds >= 10,000 and fixed uniform targets
(:data:`cdp_tutorial.latency.CALIBRATION_PLANS`). The scored plans use seeds below 10,000, and the
script checks that none has a calibration model's widths. Two predictions are scored:

* **as saved**: the correction fitted when the table was measured. On a machine shared with other
  jobs, a whole model's speed drifts with what they do (memory traffic, the host's clock), so this
  one is only as good as the machine is steady;
* **recalibrated** (the last line): the calibration models are timed again *in the same rounds as the
  scored plans*, and the correction is refitted on them alone (a fixed split: calibration models vs
  scored plans; the blocks' milliseconds are the table's).

As references it also scores ``k x MACs`` (one parameter) and ``a + b x MACs + c x weight MB`` (three
parameters, as many as the table's correction), both fitted on the same calibration models.

The CSV (``--csv``) keeps each plan's ``widths`` and the table's block sum ``blocks_ms`` too, so that
other models can be fitted to the same measurements later (notebook 09 does, leave-one-out).

The last line reads ``LUT within ±10 % of measured: K of N plans`` (goal: K/N >= 0.9).

Usage::

    python benchmarks/latency_lut.py                                  # the committed table, 24 plans
    python benchmarks/latency_lut.py --table data/latency/x.json --plans 30 --csv lut-check.csv
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import cdp_tutorial as cdp
from cdp_tutorial.latency import (LatencyTable, LatencyTableWarning, Timing, calibration_models, export_files,
                                  time_files)
from cdp_tutorial.latency.build import correction_rows, fit_correction, model_file_name

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 0.10


def scored_plans(model, table, count: int, seed: int) -> dict:
    """``count`` plans: half random CDP (PA/FA/MA), a quarter uniform, a quarter LA; all seeds < 10,000."""
    rng = np.random.default_rng(seed)
    modes = ["params", "flops", "memory"]
    n_uniform = n_la = count // 4
    plans = {}
    for i in range(count - n_uniform - n_la):
        mode, target, s = modes[i % 3], float(rng.uniform(0.2, 0.8)), int(rng.integers(0, 10_000))
        plans[f"{cdp.sampling.ABBREVIATIONS[mode]} t={target:.2f} s={s}"] = cdp.plan_pruning(model, mode, target=target, seed=s)
    for i in range(n_uniform):
        mode, target = modes[i % 3], float(rng.uniform(0.2, 0.8))
        plans[f"uniform-{cdp.sampling.ABBREVIATIONS[mode]} t={target:.2f}"] = cdp.plan_uniform(model, mode, target=target)
    for i in range(n_la):
        target, s = float(rng.uniform(0.2, 0.8)), int(rng.integers(0, 10_000))
        plans[f"LA t={target:.2f} s={s}"] = cdp.plan_pruning(model, "LA", target=target, seed=s, latency_table=table)
    return plans


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = sorted((ROOT / "data" / "latency").glob("*.json"))
    parser.add_argument("--table", default=str(default[0]) if default else None,
                        help="a latency table (default: the first under data/latency/)")
    parser.add_argument("--plans", type=int, default=24, help="how many pruned plans to score (>= 20)")
    parser.add_argument("--seed", type=int, default=21, help="draws the plans' modes, targets and seeds")
    parser.add_argument("--rounds", type=int, default=None, help="default: the table's")
    parser.add_argument("--processes", type=int, default=None, help="default: the table's")
    parser.add_argument("--csv", default=None, help="also write the per-plan comparison here")
    parser.add_argument("--keep", default=None, help="export into (and reuse files from) this folder")
    args = parser.parse_args(argv)
    if args.table is None:
        parser.error("no latency table under data/latency/; pass --table")

    table = LatencyTable.load(args.table)
    s = table.settings
    timing = Timing(threads=s["threads"], warmup=s["warmup"], repeats=s["repeats"],
                    rounds=args.rounds or s["rounds"], processes=args.processes or s["processes"], seed=args.seed,
                    clock=s.get("clock", "wall"))
    baseline = cdp.models.build_model(table.model_name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LatencyTableWarning)
        table.predict_ms(baseline)
    for w in caught:
        print(f"warning: {w.message}")
    warnings.simplefilter("ignore", LatencyTableWarning)  # said once, above
    plans = scored_plans(baseline, table, args.plans, args.seed)
    models = {name: cdp.apply_plan(baseline, p) for name, p in plans.items()}
    calibration = calibration_models(baseline, len(table.correction["calibration"]))
    file_of = {name: model_file_name(m) for name, m in {**models, **calibration}.items()}
    overlap = sorted(set(file_of[n] for n in models) & set(file_of[n] for n in calibration))
    if overlap:
        raise SystemExit(f"a scored plan has a calibration model's widths ({overlap}): change --seed")

    print(f"table: {args.table}\n  {table.summary()}")
    print(f"measuring {len(models)} scored plans and {len(calibration)} calibration models together: "
          f"{timing.processes} processes x {timing.rounds} rounds x {timing.repeats} calls, {timing.threads} "
          f"thread(s), clock {timing.clock!r}; load average now {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="cdp-lut-") as scratch:
        folder = Path(args.keep or scratch)
        files = export_files({file_of[n]: m for n, m in {**models, **calibration}.items()}, folder, reuse=True)
        times = time_files(list(files.values()), timing)
    measured = {name: (times.median(files[file_of[name]]), times.wall_median(files[file_of[name]]),
                       times.spread(files[file_of[name]])) for name in file_of}
    session = dataclasses.replace(table, correction=fit_correction(
        correction_rows(table, calibration, {n: measured[n] for n in calibration})))

    frame = pd.DataFrame([dict(plan=name, macs_m=plan.final.macs / 1e6, weight_mb=plan.final.params * 4 / 2**20,
                               saved_ms=table.predict_ms(models[name]), predicted_ms=session.predict_ms(models[name]),
                               measured_ms=measured[name][0], wall_ms=measured[name][1], spread=measured[name][2])
                          for name, plan in plans.items()])
    blocks = {name: table.predictor(m, warn=False) for name, m in models.items()}
    frame["blocks_ms"] = [float(p.block_ms(p.costs.baseline_widths).sum()) for p in blocks.values()]
    frame["widths"] = [json.dumps(plan.widths, separators=(",", ":")) for plan in plans.values()]
    frame["saved_error"] = frame.saved_ms / frame.measured_ms - 1
    frame["error"] = frame.predicted_ms / frame.measured_ms - 1
    # the reference predictor: latency proportional to MACs, k fitted on the same calibration models
    cal_macs = np.array([cdp.profile(m).totals.macs / 1e6 for m in calibration.values()])
    cal_ms = np.array([measured[n][0] for n in calibration])
    k = float(np.sum(cal_macs * cal_ms) / np.sum(cal_macs ** 2))
    frame["macs_error"] = k * frame.macs_m / frame.measured_ms - 1
    # a fairer reference: as many fitted parameters as the table's correction (a + b x MACs + c x weight MB)
    cal_mb = np.array([row["weight_mb"] for row in session.correction["calibration"]])
    (a, b, c), *_ = np.linalg.lstsq(np.c_[np.ones(len(cal_ms)), cal_macs, cal_mb], cal_ms, rcond=None)
    frame["macs_mb_error"] = (a + b * frame.macs_m + c * frame.weight_mb) / frame.measured_ms - 1
    with pd.option_context("display.width", 200, "display.max_rows", 100):
        print(frame.drop(columns=["wall_ms", "widths"]).round(3).to_string(index=False))
    if args.csv:
        frame.to_csv(args.csv, index=False, float_format="%.5g")
    fit = session.correction
    load = times.load
    rho = frame[["predicted_ms", "measured_ms"]].corr(method="spearman").iloc[0, 1]
    print(f"load average (1 min) during the measurement: {min(load):.2f}-{max(load):.2f} "
          f"(median {np.median(load):.2f}) on {os.cpu_count()} logical cores")
    print(f"median spread of a plan's round medians (IQR / median): {frame.spread.median():.1%}; "
          f"wall clock / {timing.clock} clock, median over plans: {(frame.wall_ms / frame.measured_ms).median():.2f}")
    print(f"recalibrated correction: s = {fit['blocks_scale']:.3f}, c0 = {fit['intercept_ms']:.3f} ms, "
          f"c1 = {fit['ms_per_weight_mb']:.4f} ms/MB (as saved: s = {table.correction.get('blocks_scale', 1.0):.3f}, "
          f"c0 = {table.correction['intercept_ms']:.3f} ms, c1 = {table.correction['ms_per_weight_mb']:.4f} ms/MB)")
    print(f"k x MACs (k fitted on the calibration models) within ±10 %: "
          f"{int((frame.macs_error.abs() <= TOLERANCE).sum())} of {len(frame)} plans")
    print(f"a + b x MACs + c x weight MB (fitted on the calibration models) within ±10 %: "
          f"{int((frame.macs_mb_error.abs() <= TOLERANCE).sum())} of {len(frame)} plans "
          f"(mean |error| {frame.macs_mb_error.abs().mean():.1%})")
    print(f"LUT with its correction as saved ({table.measured_at}) within ±10 %: "
          f"{int((frame.saved_error.abs() <= TOLERANCE).sum())} of {len(frame)} plans "
          f"(mean |error| {frame.saved_error.abs().mean():.1%}, bias {frame.saved_error.mean():+.1%})")
    print(f"LUT, recalibrated: mean |error| {frame.error.abs().mean():.1%}, bias {frame.error.mean():+.1%}, "
          f"max |error| {frame.error.abs().max():.1%}, Spearman rank correlation {rho:.3f}")
    print(f"LUT within ±10 % of measured: {int((frame.error.abs() <= TOLERANCE).sum())} of {len(frame)} plans")
    return 0


if __name__ == "__main__":
    sys.exit(main())
