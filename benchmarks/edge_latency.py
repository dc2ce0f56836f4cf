"""Does LiteRT latency fall as fast as MACs? Speedup per MAC reduction of pruned VGG-16, measured.

For the full-width CIFAR VGG-16 (untrained: latency does not depend on the weights' values) and
plans that keep 30 % of its MACs — Algorithm 1 FLOPs-aware (FA), FA with every width rounded to a
multiple of 8, uniform width scaling, and uniform rounded to 8 — each model is exported to LiteRT
fp32 and timed at batch 1 with the interpreter at ``--threads`` (2, the paper's VM). The figure of
merit is

    efficiency = (baseline latency / pruned latency) / (baseline MACs / pruned MACs)

1.0 means latency falls exactly as fast as MACs; the goal (issue 10) is >= 0.8 for the best plan.
The models are timed in alternating rounds (every model once per round, order rotated), and each
model's figure is the median of its per-round medians, so a burst of load from other processes on
a shared machine hits all models alike.

Usage::

    python benchmarks/edge_latency.py                        # VGG-16, 30 % MACs, 5 rounds x 100 images
    python benchmarks/edge_latency.py --model alexnet --rounds 7 --out results/
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np

import cdp_tutorial as cdp
from cdp_tutorial.edge import EdgeStore, export_litert, measure


def plans(model, target, seed):
    return {"FA (Algorithm 1)": cdp.plan_pruning(model, "FA", target=target, seed=seed),
            "FA, round_to=8": cdp.plan_pruning(model, "FA", target=target, seed=seed, round_to=8),
            "uniform": cdp.plan_uniform(model, "FA", target=target),
            "uniform, round_to=8": cdp.plan_uniform(model, "FA", target=target, round_to=8)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vgg16", choices=["vgg16", "alexnet"])
    parser.add_argument("--target", type=float, default=0.3, help="fraction of the MACs kept")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None, help="also append every round to <out>/edge.jsonl")
    args = parser.parse_args(argv)

    baseline = cdp.models.build_model(args.model)
    models = {"baseline": baseline}
    for name, plan in plans(baseline, args.target, args.seed).items():
        models[name] = cdp.apply_plan(baseline, plan)
    macs = {name: cdp.profile(m).totals.macs for name, m in models.items()}
    shape = (args.images, *baseline.input_shape[1:])
    images = np.random.default_rng(0).normal(size=shape).astype("float32")
    with tempfile.TemporaryDirectory() as folder:
        files = {name: export_litert(m, Path(folder) / f"{i}.tflite")
                 for i, (name, m) in enumerate(models.items())}
        medians = {name: [] for name in models}
        store = EdgeStore(args.out) if args.out else None
        names = list(models)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                m = measure(files[name], images, n_images=args.images, threads=args.threads, seed=r,
                            name=name)
                medians[name].append(m.median_ms)
                if store:
                    store.append(m.record(benchmark="edge_latency", model=args.model, plan=name,
                                          target=args.target, macs=macs[name], round=r))
    base_ms = statistics.median(medians["baseline"])
    print(f"{args.model}, full width, untrained; LiteRT fp32, batch 1, {args.threads} threads; "
          f"{args.rounds} alternating rounds x {args.images} images; median of per-round medians")
    header = ("plan", "MACs (M)", "MAC red.", "latency ms", "round range", "speedup", "speedup/MAC red.")
    print(f"{header[0]:<22}" + "".join(f"{h:>{w}}" for h, w in zip(header[1:], (10, 10, 12, 16, 9, 18))))
    best = 0.0
    for name in models:
        ms = statistics.median(medians[name])
        reduction, speedup = macs["baseline"] / macs[name], base_ms / ms
        spread = f"{min(medians[name]):.1f}-{max(medians[name]):.1f}"
        if name != "baseline":
            best = max(best, speedup / reduction)
        print(f"{name:<22}{macs[name] / 1e6:>10.1f}{reduction:>10.2f}{ms:>12.2f}{spread:>16}{speedup:>9.2f}"
              f"{speedup / reduction:>18.2f}")
    print(f"best speedup per MAC reduction: {best:.2f} (goal >= 0.8)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
