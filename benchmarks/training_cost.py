"""Table 5, measured: wall time to a trained pruned model, complexity-driven vs the PLS pipeline.

Complexity-driven pruning (Fig. 2b) plans the architecture before training and trains the pruned
model once. PLS (Fig. 2a) trains the full baseline, then ``K`` times scores every filter (VIP),
prunes the lowest-scoring ones and fine-tunes. At equal epochs per stage, the time to a trained
pruned model is

* CDP: one training of the pruned model;
* PLS: one training of the baseline + K x (scoring + pruning + a fine-tune of a shrinking model).

Both are measured in one run, on the same data, at the same budget (``--target`` of the FLOPs,
30 % by default) and printed with their ratio. The goal is CDP / PLS <= 0.25; the paper reports
about 0.4 (≈ 60 % less training time, journal version). Both pipelines are timed with
:func:`cdp_tutorial.training.train`'s ``wall_time_s`` (training time, checkpointing excluded)
plus, for PLS, the scoring and pruning time.

Usage::

    python benchmarks/training_cost.py                                  # VGG-16, full width, K=5, 1 epoch/stage
    python benchmarks/training_cost.py --width-multiplier 0.25 --train-size 2000   # faster, narrow

This is not a test: it prints its figures. On a shared CPU the times are noisy: say so when you
quote them.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import keras

import cdp_tutorial as cdp
from cdp_tutorial.baselines import train_prune_finetune
from cdp_tutorial.data import load_dataset
from cdp_tutorial.training import train


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--dataset", default="fixture")
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--test-size", type=int, default=200)
    parser.add_argument("--target", type=float, default=0.3, help="fraction of the FLOPs kept")
    parser.add_argument("--iterations", type=int, default=5, help="K, PLS prune + fine-tune rounds")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per stage (equal for every stage)")
    parser.add_argument("--width-multiplier", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--recipe", default="paper")
    parser.add_argument("--samples", type=int, default=500, help="training images PLS scores with")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = load_dataset(args.dataset, train_size=args.train_size, test_size=args.test_size)
    m = args.width_multiplier
    common = dict(recipe=args.recipe, batch_size=args.batch_size, seed=args.seed, verbose=0)

    # CDP: plan on the full-size model, train the pruned architecture once (widths x m if narrow)
    keras.utils.set_random_seed(args.seed)
    full = cdp.models.build_model(args.model, num_classes=data.num_classes)
    start = time.perf_counter()
    plan = cdp.plan_pruning(full, "FA", target=args.target, seed=args.seed)
    plan_time = time.perf_counter() - start
    widths = {name: max(1, round(w * m)) for name, w in plan.widths.items()}
    keras.utils.set_random_seed(args.seed)
    pruned = cdp.models.build_model(args.model, num_classes=data.num_classes, widths=widths,
                                    width_multiplier=m)
    cdp_result = train(pruned, data, epochs=args.epochs, **common)
    cdp_time = plan_time + cdp_result.wall_time_s

    # PLS: train the baseline, then K x (VIP scores, prune globally, fine-tune)
    keras.utils.set_random_seed(args.seed)
    baseline = cdp.models.build_model(args.model, num_classes=data.num_classes, width_multiplier=m)
    with tempfile.TemporaryDirectory() as run_dir:
        pls = train_prune_finetune(baseline, data, criterion="pls", scope="global", mode="FA",
                                   target=args.target, iterations=args.iterations, epochs=args.epochs,
                                   samples=args.samples, run_dir=run_dir, **common)

    print(f"{args.model} at x{m:g} width, {data.description}; FLOPs kept <= {args.target:g}; "
          f"{args.epochs} epoch(s) per stage, batch {args.batch_size}, {args.recipe} recipe")
    print(f"CDP: plan {plan_time:.2f} s + train {cdp_result.wall_time_s:.1f} s = {cdp_time:.1f} s; "
          f"test accuracy {100 * cdp_result.test_accuracy:.2f} %; "
          f"MACs kept {cdp.profile(pruned).totals.macs / cdp.profile(baseline).totals.macs:.3f} "
          "(of the narrow baseline)" if m != 1 else
          f"CDP: plan {plan_time:.2f} s + train {cdp_result.wall_time_s:.1f} s = {cdp_time:.1f} s; "
          f"test accuracy {100 * cdp_result.test_accuracy:.2f} %")
    for stage in pls.stages:
        print(f"  PLS stage {stage['stage']} ({stage['kind']}): score {stage['score_time_s']:.1f} s, "
              f"prune {stage['prune_time_s']:.1f} s, train {stage['train_time_s']:.1f} s; "
              f"MACs {stage['macs']:,}; accuracy {100 * stage['test_accuracy']:.2f} %")
    print(f"PLS pipeline (K={args.iterations}): {pls.wall_time_s:.1f} s; "
          f"test accuracy {100 * pls.test_accuracy:.2f} %")
    print(f"CDP / PLS wall time: {cdp_time / pls.wall_time_s:.3f}  (goal <= 0.25; the paper reports ~0.4)")


if __name__ == "__main__":
    main()
