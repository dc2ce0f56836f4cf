"""Table 5, measured: wall time to a trained pruned model, complexity-driven vs the PLS pipeline.

Complexity-driven pruning (Fig. 2b) plans the architecture before training and trains the pruned
model once. PLS (Fig. 2a) trains the full baseline, then scores every filter (VIP), prunes the
lowest-scoring ones and fine-tunes. The paper's §4.4.1 runs PLS as "fine-tuning the pruned model after
10 iterations", with "150 epochs before and after pruning": K = 10 pruning iterations, then **one**
fine-tune (``--schedule once``, the default here). Jordao et al.'s own code alternates K prune ->
fine-tune rounds instead (``--schedule rounds``). At equal epochs per stage, the time to a trained
pruned model is

* CDP: Algorithm 1's planning (seconds) + one training of the pruned model;
* PLS: one training of the baseline + K x (scoring + pruning) + one fine-tune (``once``), or
  + K fine-tunes of a shrinking model (``rounds``).

Both are measured in one process, on the same data, at the same budget (``--target`` of the MACs,
30 % by default), and printed with their ratio. The paper's Table 5 hours are lost from our copy; the
journal version's abstract (Zawish, Davy & Abraham, "Complexity-Driven Model Compression for
Resource-constrained Deep Learning on Edge") reports "≈ 60% less training time than conventional
pruning", a ratio of about 0.4, for full training on a Tesla K20. Fine-tunes run as the reproduced
methods do (:mod:`cdp_tutorial.prune_finetune`: a tenth of the learning rate, a fresh optimizer,
batch-norm statistics re-estimated after each pruning); every stage says whether it collapsed (test
accuracy at most twice chance), and the defaults are chosen so that none does.

Usage (from a clone of the repository: ``benchmarks/`` is not part of a pip install)::

    python benchmarks/training_cost.py                          # VGG-16 x0.25, fixture, 3 epochs/stage, K=10, once
    python benchmarks/training_cost.py --schedule rounds --iterations 5    # Jordao et al.'s code's way
    python benchmarks/training_cost.py --width-multiplier 1 --epochs 1     # full width: slow on a CPU

This is not a test: it prints its figures. Times on a shared CPU are noisy (it prints the load).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import keras

import cdp_tutorial as cdp
from cdp_tutorial.data import load_dataset
from cdp_tutorial.prune_finetune import FINETUNE_SCHEDULES, train_prune_finetune
from cdp_tutorial.training import train

JOURNAL_ABSTRACT = ('the journal version\'s abstract (Zawish, Davy & Abraham, "Complexity-Driven Model Compression '
                    'for Resource-constrained Deep Learning on Edge"): "≈ 60% less training time than conventional '
                    'pruning", a ratio of about 0.4 (full training, Tesla K20)')


def load_text() -> str:
    """The machine's 1-minute load average and core count: how shared the CPU was."""
    try:
        return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    except OSError:  # not on every platform
        return f"{os.cpu_count()} cores (load average unavailable)"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--dataset", default="fixture")
    parser.add_argument("--train-size", type=int, default=None, help="default: the whole split (fixture: 2,000)")
    parser.add_argument("--test-size", type=int, default=None, help="default: the whole split (fixture: 500)")
    parser.add_argument("--target", type=float, default=0.3, help="fraction of the MACs kept")
    parser.add_argument("--iterations", type=int, default=10, help="K pruning iterations (the paper's §4.4.1: 10)")
    parser.add_argument("--schedule", choices=sorted(FINETUNE_SCHEDULES), default="once",
                        help="once: K prunings, then one fine-tune (the paper's §4.4.1); rounds: K x (prune, "
                             "fine-tune) (Jordao et al.'s code)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per stage (equal for every stage)")
    parser.add_argument("--width-multiplier", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--recipe", default="modern")
    parser.add_argument("--finetune-lr-scale", type=float, default=0.1, help="a fine-tune's learning rate / training's")
    parser.add_argument("--samples", type=int, default=500, help="training images PLS scores with")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    print(f"before: {load_text()}")
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
    pruned = cdp.models.build_model(args.model, num_classes=data.num_classes, widths=widths, width_multiplier=m)
    cdp_result = train(pruned, data, epochs=args.epochs, **common)
    cdp_time = plan_time + cdp_result.wall_time_s

    # PLS: train the baseline, then K x (VIP scores, prune globally), fine-tuning once or every round
    keras.utils.set_random_seed(args.seed)
    baseline = cdp.models.build_model(args.model, num_classes=data.num_classes, width_multiplier=m)
    baseline_macs = cdp.profile(baseline).totals.macs
    with tempfile.TemporaryDirectory() as run_dir:
        pls = train_prune_finetune(baseline, data, criterion="pls", scope="global", mode="FA", target=args.target,
                                   iterations=args.iterations, epochs=args.epochs, schedule=args.schedule,
                                   finetune_lr_scale=args.finetune_lr_scale, samples=args.samples,
                                   run_dir=run_dir, **common)

    print(f"{args.model} at x{m:g} width, {data.description}; MACs kept <= {args.target:g}; "
          f"{args.epochs} epoch(s) per stage, batch {args.batch_size}, {args.recipe} recipe; seed {args.seed}")
    print(f"CDP: plan {plan_time:.2f} s + train {cdp_result.wall_time_s:.1f} s = {cdp_time:.1f} s; test accuracy "
          f"{100 * cdp_result.test_accuracy:.2f} %; MACs kept {cdp.profile(pruned).totals.macs / baseline_macs:.3f} "
          f"of the {'narrow ' if m != 1 else ''}baseline's")

    def percent(value):
        return "-" if value is None else f"{100 * value:.2f} %"

    for stage in pls.stages:
        print(f"  PLS stage {stage['stage']:2d} ({stage['kind']}): score {stage['score_time_s']:.1f} s, "
              f"prune {stage['prune_time_s']:.1f} s, train {stage['train_time_s']:.1f} s; MACs {stage['macs']:,}; "
              f"accuracy before fine-tune {percent(stage['pruned_accuracy'])}, after {percent(stage['test_accuracy'])}"
              + ("  COLLAPSED" if stage["collapsed"] else ""))
    collapsed = pls.collapsed_stages
    print(f"PLS pipeline ({FINETUNE_SCHEDULES[args.schedule]}, K = {args.iterations}, fine-tune at "
          f"{args.finetune_lr_scale:g} x the learning rate): {pls.wall_time_s:.1f} s; test accuracy "
          f"{100 * pls.test_accuracy:.2f} %; collapsed stages (accuracy <= 2 x chance): "
          f"{', '.join(map(str, collapsed)) if collapsed else 'none'}")
    protocol = ("under the paper's §4.4.1 protocol (K prunings, then one fine-tune)" if args.schedule == "once"
                else "under Jordao et al.'s code's protocol (K prune -> fine-tune rounds), not the paper's")
    print(f"CDP / PLS wall time: {cdp_time / pls.wall_time_s:.3f} {protocol}, equal epochs per stage")
    print(f"  compare: {JOURNAL_ABSTRACT}; this run is {args.epochs} epoch(s) per stage of a "
          f"{'narrow ' if m != 1 else ''}model on {data.description.split(':')[0]}, where fixed costs weigh more")
    print(f"after: {load_text()} (times are noisy when other jobs share the CPU)")


if __name__ == "__main__":
    main()
