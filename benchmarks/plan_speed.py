"""How fast is Algorithm 1 on shapes, compared with rebuilding a Keras model every iteration?

``plan_pruning`` re-counts the model's complexity from channel widths (a few small matrix-vector
products per iteration). The naive way builds the pruned Keras model after every step and profiles
it. Both draw the same layers from the same seed, which this script checks.

The naive way takes about a second per iteration on ResNet-50, and a 10 % FLOPs plan needs about
a thousand iterations, so by default it runs ``--naive-iterations`` steps and the full time is
*estimated* as (time per naive step) x (steps the real plan took); ``--naive-full`` runs it all.

Usage::

    python benchmarks/plan_speed.py                 # ResNet-50-CIFAR, 10 % FLOPs, step 0.1
    python benchmarks/plan_speed.py --model vgg16 --target 0.3 --naive-full
"""

from __future__ import annotations

import argparse
import statistics
import time

import keras
import numpy as np

import cdp_tutorial as cdp
from cdp_tutorial.pruning import PruningProblem
from cdp_tutorial.sampling import normalize_mode, sample_layer, selection_probabilities

COLUMN = {"params": "params", "flops": "macs", "memory": "memory_bytes"}


def naive_plan(model, mode, target, step, seed, coupled, max_iterations=None):
    """Algorithm 1 the slow way: clone and profile a Keras model after every pruning step."""
    problem = PruningProblem(model, coupled=coupled)  # only for unit names and the shrink rule
    widths = {name: model.get_layer(name).filters for layers in problem.unit_layers for name in layers}
    rng = np.random.default_rng(seed)
    baseline = cdp.profile(model).totals.of(mode)
    current, chosen = baseline, []
    rows = cdp.profile(model).layers.set_index("name")
    while current > target * baseline and (max_iterations is None or len(chosen) < max_iterations):
        x = np.array([rows.loc[layers, COLUMN[mode]].sum() for layers in problem.unit_layers], float)
        x[[widths[layers[0]] <= m for layers, m in zip(problem.unit_layers, problem.min_widths)]] = 0
        unit = sample_layer(selection_probabilities(x), rng)
        new = problem.shrink(widths[problem.unit_layers[unit][0]], step)
        for name in problem.unit_layers[unit]:
            widths[name] = new
        chosen.append(problem.unit_names[unit])

        def clone_function(layer):
            config = layer.get_config()
            if layer.name in widths:
                config["filters"] = widths[layer.name]
            return layer.__class__.from_config(config)

        pruned = keras.models.clone_model(model, clone_function=clone_function)
        report = cdp.profile(pruned)
        rows, current = report.layers.set_index("name"), report.totals.of(mode)
    return chosen


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50", choices=sorted(cdp.models.MODELS))
    parser.add_argument("--mode", default="flops")
    parser.add_argument("--target", type=float, default=0.1)
    parser.add_argument("--step", type=float, default=0.1)
    parser.add_argument("--coupled", default="skip", choices=["skip", "tie"])
    parser.add_argument("--repeats", type=int, default=15, help="runs of plan_pruning (median reported)")
    parser.add_argument("--naive-iterations", type=int, default=10)
    parser.add_argument("--naive-full", action="store_true", help="run the naive loop to the end")
    args = parser.parse_args(argv)
    mode = normalize_mode(args.mode)

    model = cdp.models.build_model(args.model)
    cdp.plan_pruning(model, mode, args.target, step=args.step, seed=0, coupled=args.coupled)  # warm-up
    times, plans = [], []
    for seed in range(args.repeats):
        start = time.perf_counter()
        plans.append(cdp.plan_pruning(model, mode, args.target, step=args.step, seed=seed,
                                      coupled=args.coupled))
        times.append(time.perf_counter() - start)
    fast = statistics.median(times)
    iterations = len(plans[0].history)
    print(f"{args.model}-CIFAR, {mode} to {args.target:.0%} of baseline, step {args.step}, "
          f"coupled={args.coupled}")
    print(f"plan_pruning (shapes only): median {fast * 1e3:.1f} ms over {args.repeats} runs "
          f"(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}); seed 0 took {iterations} iterations")

    limit = None if args.naive_full else args.naive_iterations
    start = time.perf_counter()
    chosen = naive_plan(model, mode, args.target, args.step, 0, args.coupled, limit)
    naive_elapsed = time.perf_counter() - start
    same = chosen == plans[0].history.layer.tolist()[: len(chosen)]
    per_step = naive_elapsed / len(chosen)
    naive_total = naive_elapsed if args.naive_full else per_step * iterations
    label = "measured" if args.naive_full else f"estimated from {len(chosen)} steps"
    print(f"naive (rebuild + profile a Keras model per iteration): {per_step * 1e3:.0f} ms/iteration, "
          f"{naive_total:.1f} s for the whole plan ({label})")
    print(f"same layer draws as plan_pruning for the steps compared: {same}")
    print(f"speed-up: {naive_total / fast:,.0f}x")


if __name__ == "__main__":
    main()
