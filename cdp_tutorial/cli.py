"""The ``cdp-tutorial`` command line: profile, plan, train, sweep, summary.

Examples::

    cdp-tutorial profile --model vgg16
    cdp-tutorial plan --model vgg16 --mode FA --target 0.3 --seed 0 --out plan.json
    cdp-tutorial train --model vgg16 --mode PA --target 0.3 --profile quick --out results/
    cdp-tutorial sweep --model vgg16 --dataset cifar10 --modes PA FA MA --targets 0.3 \\
        --seeds 0 1 2 3 4 --profile paper --out results/
    cdp-tutorial summary --out results/

``train`` and ``sweep`` add every finished run to ``results.jsonl`` in ``--out`` and skip runs that
are already there; an interrupted run continues from its last completed epoch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def _add_run_options(p, several: bool) -> None:
    from cdp_tutorial.models import MODELS
    from cdp_tutorial.profiles import PROFILES

    p.add_argument("--model", nargs="+" if several else None, required=True, type=str.lower,
                   choices=sorted(MODELS), help="CIFAR model(s)")
    p.add_argument("--profile", choices=sorted(PROFILES), default=None,
                   help="quick / standard / paper (default: $CDP_PROFILE or quick)")
    p.add_argument("--dataset", default=None, help="cifar10, cifar100, fashion_mnist, fixture (default: the profile's)")
    p.add_argument("--epochs", type=int, default=None, help="default: the profile's")
    p.add_argument("--recipe", default=None, help="paper or modern (default: the profile's)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--train-size", type=int, default=None, help="class-balanced subset of the training split")
    p.add_argument("--test-size", type=int, default=None)
    p.add_argument("--width-multiplier", type=float, default=None,
                   help="train every planned width x this, in (0, 1] (default: the profile's; quick: 0.25)")
    p.add_argument("--out", required=True, help="folder for results.jsonl and run checkpoints")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdp-tutorial", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    from cdp_tutorial.models import MODELS

    p = sub.add_parser("profile", help="per-layer params, MACs, FLOPs and memory of a model")
    p.add_argument("--model", required=True, type=str.lower, choices=sorted(MODELS))
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--precision", default="fp32", help="fp32, fp16, int8 or a byte count")
    p.add_argument("--csv", default=None, help="also write the per-layer table here")

    p = sub.add_parser("plan", help="run Algorithm 1 and save the plan as JSON")
    p.add_argument("--model", required=True, type=str.lower, choices=sorted(MODELS))
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--mode", required=True, help="PA/params, FA/flops, MA/memory")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--target", type=float, help="fraction of the baseline to keep, in (0, 1)")
    group.add_argument("--budget", type=float, help="absolute budget (parameters, MACs or bytes)")
    p.add_argument("--step", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--coupled", choices=["skip", "tie"], default="skip")
    p.add_argument("--round-to", type=int, default=1)
    p.add_argument("--out", default=None, help="write the plan here (JSON)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing plan file")

    p = sub.add_parser("train", help="train one model (baseline or pruned) and record it")
    _add_run_options(p, several=False)
    p.add_argument("--mode", default="baseline", help="baseline, PA, FA or MA")
    p.add_argument("--target", type=float, default=None)
    p.add_argument("--uniform", action="store_true", help="uniform width scaling instead of Algorithm 1")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("sweep", help="baseline + modes x targets x seeds, skipping finished runs")
    _add_run_options(p, several=True)
    p.add_argument("--modes", nargs="+", default=["PA", "FA", "MA"])
    p.add_argument("--targets", nargs="+", type=float, default=[0.5])
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="default: the profile's")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--uniform", action="store_true", help="also train uniform width scaling at each budget")
    p.add_argument("--backend", choices=["serial", "ray"], default="serial")
    p.add_argument("--gpus-per-trial", type=float, default=0.0)
    p.add_argument("--cpus-per-trial", type=int, default=1)

    p = sub.add_parser("summary", help="mean ± std over seeds of the runs in --out")
    p.add_argument("--out", required=True)
    p.add_argument("--paper", action="store_true", help="show the paper's numbers side by side")
    p.add_argument("--csv", default=None, help="also write the summary table here (refuses to overwrite)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, TypeError, FileExistsError, FileNotFoundError, ImportError) as error:
        print(f"cdp-tutorial {args.command}: error: {error}", file=sys.stderr)
        return 2


def _profile(args) -> int:
    import cdp_tutorial as cdp

    model = cdp.models.build_model(args.model, num_classes=args.num_classes)
    precision = int(args.precision) if args.precision.isdigit() else args.precision
    report = cdp.profile(model, bytes_per_element=precision)
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(report.layers.drop(columns=["params_share", "macs_share", "memory_share"]).to_string(index=False))
    print(report.summary())
    if args.csv:
        report.layers.to_csv(args.csv, index=False)
    return 0


def _plan(args) -> int:
    import cdp_tutorial as cdp

    model = cdp.models.build_model(args.model, num_classes=args.num_classes)
    plan = cdp.plan_pruning(model, args.mode, target=args.target, budget=args.budget, step=args.step,
                            seed=args.seed, coupled=args.coupled, round_to=args.round_to)
    print(plan.summary())
    print(f"seed {plan.seed}; widths: " + ", ".join(f"{k}={v}" for k, v in plan.widths.items()))
    if args.out:
        plan.save(args.out, overwrite=args.overwrite)
        print(f"plan written to {args.out}")
    return 0


def _specs(args, models, modes, targets, seeds, baseline, uniform):
    from cdp_tutorial.experiments import make_specs

    return make_specs(models, modes, targets, seeds, profile=args.profile, dataset=args.dataset,
                      epochs=args.epochs, recipe=args.recipe, batch_size=args.batch_size,
                      train_size=args.train_size, test_size=args.test_size, baseline=baseline,
                      uniform=uniform, width_multiplier=args.width_multiplier)


def _train(args) -> int:
    from cdp_tutorial.experiments import BASELINE, run_sweep

    if args.mode.lower() == BASELINE:
        specs = _specs(args, [args.model], (), (), [args.seed], True, False)
    else:
        if args.target is None:
            raise ValueError("a pruned run needs --target (fraction of the baseline to keep)")
        specs = [s for s in _specs(args, [args.model], [args.mode], [args.target], [args.seed], False,
                                   args.uniform) if (s.method == "uniform") == args.uniform]
    _print_summary(run_sweep(specs, args.out, verbose="auto"))
    return 0


def _sweep(args) -> int:
    from cdp_tutorial.experiments import run_sweep

    specs = _specs(args, args.model, args.modes, args.targets, args.seeds, not args.no_baseline,
                   args.uniform)
    frame = run_sweep(specs, args.out, backend=args.backend, gpus_per_trial=args.gpus_per_trial,
                      cpus_per_trial=args.cpus_per_trial)
    _print_summary(frame)
    return 0


def _summary(args) -> int:
    from cdp_tutorial.experiments import ResultsStore, side_by_side, summarize

    store = ResultsStore(args.out)
    if not store.path.exists():
        raise FileNotFoundError(f"no results in {args.out} (expected {store.path})")
    table = summarize(store.frame())
    _print_summary(store.frame())
    if args.csv:
        if Path(args.csv).exists():
            raise FileExistsError(f"{args.csv} exists; choose another name or delete it first")
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.csv, index=False)
        print(f"summary written to {args.csv}")
    if args.paper:
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(side_by_side(table).to_string(index=False))
    return 0


def _print_summary(frame) -> None:
    from cdp_tutorial.experiments import summarize

    table = summarize(frame)
    if table.empty:
        print("no finished runs")
        return
    shown = table.assign(
        accuracy=[f"{m:.2f} ± {s:.2f}" for m, s in zip(table.accuracy_mean, table.accuracy_std)],
        change=table.accuracy_change_pts.round(2), reduction=table.reduction_pct.round(2),
        params=table.params.astype(int), macs=table.macs.astype(int))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(shown[["model", "dataset", "method", "mode", "target", "seeds", "accuracy", "change",
                     "reduction", "params", "macs"]].to_string(index=False))
    for label in table.label.unique():
        print(f"* {label}")


COMMANDS = {"profile": _profile, "plan": _plan, "train": _train, "sweep": _sweep, "summary": _summary}

if __name__ == "__main__":
    sys.exit(main())
