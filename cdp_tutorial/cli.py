"""The ``cdp-tutorial`` command line: profile, plan, train, sweep, summary.

Examples::

    cdp-tutorial profile --model vgg16
    cdp-tutorial plan --model vgg16 --mode FA --target 0.3 --seed 0 --out plan.json
    cdp-tutorial train --model vgg16 --mode PA --target 0.3 --profile quick --out results/
    cdp-tutorial sweep --model vgg16 --dataset cifar10 --modes PA FA MA --targets 0.3 \\
        --seeds 0 1 2 3 4 --profile paper --out results/
    cdp-tutorial summary --out results/
    cdp-tutorial export --model-file vgg16_fa30.keras --precision fp32 full_int8 --out edge/
    cdp-tutorial measure edge/vgg16_fa30_fp32.tflite --threads 2 --out results/
    cdp-tutorial bench-device --quick               # Table 6 here: several minutes (about 8 on a shared 2-core VM)

``train`` and ``sweep`` add every finished run to ``results.jsonl`` in ``--out`` and skip runs that
are already there; an interrupted run continues from its last completed epoch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from cdp_tutorial.cli_checks import (OneLineParser, check_output_file, check_output_folder, positive_int,
                                     print_error, refuse_ignored_options, show_tracebacks)
from cdp_tutorial.files import write_atomically
from cdp_tutorial.latency.command import add_latency_table_command, run_latency_table_command
from cdp_tutorial.latency.table import LatencyTable


def _add_run_options(p, several: bool) -> None:
    from cdp_tutorial.models import MODELS
    from cdp_tutorial.profiles import PROFILES

    p.add_argument("--model", nargs="+" if several else None, required=True, type=str.lower,
                   choices=sorted(MODELS), help="CIFAR model(s)")
    p.add_argument("--profile", choices=sorted(PROFILES), default=None,
                   help="quick / standard / paper (default: $CDP_PROFILE or quick)")
    p.add_argument("--dataset", default=None, help="cifar10, cifar100, fashion_mnist, fixture (default: the profile's)")
    p.add_argument("--epochs", type=positive_int, default=None, help="default: the profile's")
    p.add_argument("--recipe", default=None, help="paper or modern (default: the profile's)")
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--train-size", type=positive_int, default=None, help="class-balanced subset of the training split")
    p.add_argument("--test-size", type=positive_int, default=None)
    p.add_argument("--width-multiplier", type=float, default=None,
                   help="train every planned width x this, in (0, 1] (default: the profile's; quick: 0.25)")
    p.add_argument("--out", required=True, help="folder for results.jsonl and run checkpoints")
    _add_method_options(p)


def _add_method_options(p) -> None:
    p.add_argument("--methods", nargs="+", type=str.lower, default=None,
                   choices=["cdp", "uniform", "l1", "random", "pls"],
                   help="how pruned runs are made (default: cdp, plus uniform with --uniform); l1, random "
                        "and pls prune the trained baseline in --iterations steps and fine-tune it")
    p.add_argument("--iterations", type=positive_int, default=1, help="K pruning steps of l1/random/pls")
    p.add_argument("--finetune", choices=["rounds", "once"], default="rounds",
                   help="fine-tune after every pruning step (rounds, as PLS's code does) or once after the "
                        "last (once, the paper's §4.4.1)")
    p.add_argument("--finetune-lr-scale", type=float, default=0.1,
                   help="a fine-tune's learning rate as a fraction of the training's, in (0, 1] (default 0.1)")
    p.add_argument("--finetune-epochs", type=positive_int, default=None,
                   help="epochs of each fine-tune (default: --epochs, equal epochs per stage)")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="cdp-tutorial", description=__doc__.split("\n\n")[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    from cdp_tutorial.models import MODELS

    p = sub.add_parser("profile", help="per-layer params, MACs, FLOPs and memory of a model")
    p.add_argument("--model", required=True, type=str.lower, choices=sorted(MODELS))
    p.add_argument("--num-classes", type=positive_int, default=10)
    p.add_argument("--precision", default="fp32", help="fp32, fp16, int8 or a byte count")
    p.add_argument("--csv", default=None, help="also write the per-layer table here (refuses to overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --csv file")

    p = sub.add_parser("plan", help="run Algorithm 1 and save the plan as JSON")
    p.add_argument("--model", required=True, type=str.lower, choices=sorted(MODELS))
    p.add_argument("--num-classes", type=positive_int, default=10)
    p.add_argument("--mode", required=True, help="PA/params, FA/flops, MA/memory, LA/latency (with --latency-table)")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--target", type=float, help="fraction of the baseline to keep, in (0, 1)")
    group.add_argument("--budget", type=float, help="absolute budget (parameters, MACs or bytes)")
    p.add_argument("--step", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--coupled", choices=["skip", "tie"], default="skip")
    p.add_argument("--round-to", type=positive_int, default=1)
    p.add_argument("--latency-table", default=None,
                   help="mode LA: a table from `cdp-tutorial latency-table` (--budget is then in ms)")
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
    p.add_argument("--overwrite", action="store_true", help="replace an existing --csv file")

    p = sub.add_parser("bench-device", help="Table 6 on this device: 1 epoch at batch 5 per mode, latency, power")
    p.add_argument("--quick", action="store_true",
                   help="several minutes (about 8 on a shared 2-core AMD EPYC VM): fixture data, 100 images, x0.25 width "
                        "(not the paper's protocol)")
    p.add_argument("--models", nargs="+", type=str.lower, default=None, choices=sorted(MODELS),
                   help="default: vgg16 alexnet (the paper's)")
    p.add_argument("--modes", nargs="+", default=["PA", "FA", "MA"])
    p.add_argument("--dataset", default=None, help="default: the paper's (vgg16: cifar10, alexnet: cifar100)")
    p.add_argument("--train-size", type=positive_int, default=None)
    p.add_argument("--test-size", type=positive_int, default=None)
    p.add_argument("--epochs", type=positive_int, default=1)
    p.add_argument("--batch-size", type=positive_int, default=5)
    p.add_argument("--iterations", type=positive_int, default=50, help="Algorithm 1 iterations per mode")
    p.add_argument("--step", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width-multiplier", type=float, default=None)
    p.add_argument("--latency-runs", type=positive_int, default=None)
    p.add_argument("--power", default="auto", choices=["auto", "tegrastats", "jtop", "nvml", "rapl", "none"])
    p.add_argument("--interval-ms", type=positive_int, default=100, help="tegrastats / jtop sampling interval")
    p.add_argument("--note", default=None, help="free text kept with every record")
    p.add_argument("--no-litert", action="store_true", help="time Keras only (skip the LiteRT export)")
    p.add_argument("--out", default=None,
                   help="results file (JSON lines, appended); default device-results/<device>.jsonl")
    _add_edge_commands(sub)
    add_latency_table_command(sub)
    return parser


def _add_edge_commands(sub) -> None:
    from cdp_tutorial.edge import PRECISIONS
    from cdp_tutorial.models import MODELS

    p = sub.add_parser("export", help="a Keras model to LiteRT (fp32/fp16/int8), checked against Keras")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model-file", help="a saved .keras model (trained, pruned or not)")
    which.add_argument("--model", type=str.lower, choices=sorted(MODELS),
                       help="or an untrained CIFAR architecture (enough for latency)")
    p.add_argument("--plan", default=None, help="with --model: a plan JSON to apply first")
    p.add_argument("--width-multiplier", type=float, default=None,
                   help="with --model: scale every width (after --plan, as the quick profile trains it)")
    p.add_argument("--precision", nargs="+", default=["fp32"], choices=PRECISIONS)
    p.add_argument("--dataset", default="fixture", help="test images for the check, training images for int8 calibration")
    p.add_argument("--test-size", type=positive_int, default=None)
    p.add_argument("--out", required=True, help="folder for <name>_<precision>.tflite and its .json")
    p.add_argument("--overwrite", action="store_true", help="replace existing files")

    p = sub.add_parser("measure", help="batch-1 latency, CPU, peak RAM (and RAPL energy) of .tflite/.keras files")
    p.add_argument("files", nargs="+", help=".tflite or .keras files")
    p.add_argument("--dataset", default="fixture", help="the test images drawn from")
    p.add_argument("--images", type=positive_int, default=100, help="timed images (the paper: 100)")
    p.add_argument("--warmup", type=positive_int, default=10)
    p.add_argument("--threads", type=positive_int, default=2, help="LiteRT interpreter threads (the paper's VM: 2 CPUs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder whose edge.jsonl the measurements are appended to")


def main(argv=None) -> int:
    """Run one command; a user error is one line on stderr and exit status 2 (``CDP_TRACEBACK=1``: raised)."""
    args = build_parser().parse_args(argv)
    from cdp_tutorial.data import ChecksumError
    from cdp_tutorial.experiments import TrialsFailed

    try:
        refuse_ignored_options(args)
        return COMMANDS[args.command](args)
    except (ValueError, TypeError, KeyError, OSError, ImportError, ChecksumError, TrialsFailed) as error:
        if show_tracebacks():
            raise
        return print_error(args.command, error)


def _profile(args) -> int:
    import cdp_tutorial as cdp

    csv = check_output_file(args.csv, args.overwrite, "--csv")
    model = cdp.models.build_model(args.model, num_classes=args.num_classes)
    precision = int(args.precision) if args.precision.isdigit() else args.precision
    report = cdp.profile(model, bytes_per_element=precision)
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(report.layers.drop(columns=["params_share", "macs_share", "memory_share"]).to_string(index=False))
    print(report.summary())
    if csv:
        write_atomically(csv, lambda tmp: report.layers.to_csv(tmp, index=False))
        print(f"per-layer table written to {csv}")
    return 0


def _plan(args) -> int:
    import cdp_tutorial as cdp

    check_output_file(args.out, args.overwrite, "--out")
    model = cdp.models.build_model(args.model, num_classes=args.num_classes)
    table = LatencyTable.load(args.latency_table) if args.latency_table else None
    plan = cdp.plan_pruning(model, args.mode, target=args.target, budget=args.budget, step=args.step,
                            seed=args.seed, coupled=args.coupled, round_to=args.round_to, latency_table=table)
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
                      uniform=uniform, width_multiplier=args.width_multiplier, methods=args.methods,
                      iterations=args.iterations, finetune_epochs=args.finetune_epochs,
                      finetune=args.finetune, finetune_lr_scale=args.finetune_lr_scale)


def _train(args) -> int:
    from cdp_tutorial.experiments import BASELINE, run_sweep

    check_output_folder(args.out)
    if args.mode.lower() == BASELINE:
        specs = _specs(args, [args.model], (), (), [args.seed], True, False)
    else:
        if args.target is None:
            raise ValueError("a pruned run needs --target (fraction of the baseline to keep)")
        specs = [s for s in _specs(args, [args.model], [args.mode], [args.target], [args.seed], False,
                                   args.uniform) if args.methods or (s.method == "uniform") == args.uniform]
    _print_summary(run_sweep(specs, args.out, verbose="auto"))
    return 0


def _sweep(args) -> int:
    from cdp_tutorial.experiments import run_sweep

    check_output_folder(args.out)
    specs = _specs(args, args.model, args.modes, args.targets, args.seeds, not args.no_baseline,
                   args.uniform)
    frame = run_sweep(specs, args.out, backend=args.backend, gpus_per_trial=args.gpus_per_trial,
                      cpus_per_trial=args.cpus_per_trial)
    _print_summary(frame)
    return 0


def _summary(args) -> int:
    from cdp_tutorial.experiments import ResultsStore, side_by_side, summarize

    csv = check_output_file(args.csv, args.overwrite, "--csv")
    store = ResultsStore(args.out)
    if not store.path.exists():
        raise FileNotFoundError(f"no results in {args.out} (expected {store.path})")
    table = summarize(store.frame())
    _print_summary(store.frame())
    if csv:
        write_atomically(csv, lambda tmp: table.to_csv(tmp, index=False))
        print(f"summary written to {csv}")
    if args.paper:
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(side_by_side(table).to_string(index=False))
    return 0


def _print_summary(frame) -> None:
    from cdp_tutorial.experiments import summarize
    from cdp_tutorial.results import accuracy_text

    table = summarize(frame)
    if table.empty:
        print("no finished runs")
        return
    shown = table.assign(
        accuracy=[accuracy_text(m, s, n) for m, s, n in zip(table.accuracy_mean, table.accuracy_std, table.seeds)],
        change=table.accuracy_change_pts.round(2),
        planned=table.planned_reduction_pct.round(2), trained=table.trained_reduction_pct.round(2),
        trained_macs=table.trained_macs.round().astype("Int64"))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(shown[["model", "dataset", "method", "variant", "mode", "target", "seeds", "accuracy", "change",
                     "collapsed", "planned", "trained", "trained_macs"]].to_string(index=False))
    print("planned / trained: % of the mode's complexity removed from the full-size plan / the trained model")
    for label in table.label.unique():
        print(f"* {label}")


def _bench_device(args) -> int:
    from cdp_tutorial.devices.bench import QUICK_SETTINGS, run_device_benchmark
    from cdp_tutorial.devices.record import device_record, device_slug
    from cdp_tutorial.devices.store import load_results, table6

    quick = QUICK_SETTINGS if args.quick else {}
    out = Path(args.out) if args.out else Path("device-results") / f"{device_slug(device_record())}.jsonl"
    run_device_benchmark(
        models=args.models or quick.get("models", ("vgg16", "alexnet")), modes=args.modes,
        dataset=_given(args.dataset, quick.get("dataset")), train_size=_given(args.train_size, quick.get("train_size")),
        test_size=_given(args.test_size, quick.get("test_size")), epochs=args.epochs, batch_size=args.batch_size,
        iterations=args.iterations, step=args.step, seed=args.seed,
        width_multiplier=_given(args.width_multiplier, quick.get("width_multiplier", 1.0)),
        latency_runs=_given(args.latency_runs, quick.get("latency_runs", 50)), power=args.power,
        interval_ms=args.interval_ms, store=out, note=args.note, litert=not args.no_litert)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table6(load_results(out)).drop(columns=["protocol"]).to_string(index=False))
    print(f"results appended to {out}; send it back as data/devices/<name>.jsonl in a pull request")
    return 0


def _given(value, default):
    """``value`` unless the option was left out: an explicit 0 is checked, never replaced by a default."""
    return default if value is None else value


def _export_model(args):
    """``(model, name)``: the saved model, or the architecture built with its plan and width multiplier."""
    import cdp_tutorial as cdp
    from cdp_tutorial.edge.export import load_keras_model

    if args.model_file:
        return load_keras_model(args.model_file), Path(args.model_file).stem
    m = args.width_multiplier
    name = Path(args.plan).stem if args.plan else args.model
    widths = {}
    if args.plan:  # checked against the model it is applied to, totals counted on it
        widths = cdp.PruningPlan.load(args.plan, model=cdp.models.build_model(args.model)).widths
    if m is None or m == 1:
        return cdp.models.build_model(args.model, widths=widths or None), name
    narrow = {layer: max(1, round(w * m)) for layer, w in widths.items()}  # as experiments trains it
    return cdp.models.build_model(args.model, widths=narrow or None, width_multiplier=m), f"{name}_x{m:g}"


def _export(args) -> int:
    from cdp_tutorial.data import load_dataset
    from cdp_tutorial.edge import export_litert, split_arrays

    check_output_folder(args.out)
    model, name = _export_model(args)
    data = load_dataset(args.dataset, test_size=args.test_size)
    images, labels = split_arrays(data, "test")
    calibration = split_arrays(data, "train", limit=200)[0] if "full_int8" in args.precision else None
    for precision in args.precision:
        path = export_litert(model, Path(args.out) / f"{name}_{precision}.tflite", precision,
                             representative_images=calibration if precision == "full_int8" else None,
                             overwrite=args.overwrite, check_images=images, check_labels=labels,
                             description={"source": args.model_file or name, "check_dataset": data.description})
        check = json.loads(path.with_name(path.name + ".json").read_text(encoding="utf-8"))["check"]
        print(f"{path}: {path.stat().st_size / 2**20:.2f} MiB; accuracy Keras {check['keras_accuracy']:.4f}, "
              f"LiteRT {check['litert_accuracy']:.4f}; same top-1 on {check['agreement']:.1%}; "
              f"max |delta output| {check['max_abs_output_diff']:.2e}")
    return 0


def _measure(args) -> int:
    from cdp_tutorial.data import load_dataset
    from cdp_tutorial.edge import EdgeStore, measure, split_arrays
    from cdp_tutorial.edge.export import load_keras_model

    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"no such file: {', '.join(missing)}")
    check_output_folder(args.out)
    data = load_dataset(args.dataset)
    images, _ = split_arrays(data, "test")
    store = EdgeStore(args.out)
    for file in args.files:
        keras_file = Path(file).suffix in (".keras", ".h5")  # loaded here: a clear error naming the file
        result = measure(load_keras_model(file) if keras_file else file, images, n_images=args.images,
                         warmup=args.warmup, threads=args.threads, seed=args.seed, name=Path(file).stem)
        store.append(result.record(file=str(file), dataset=data.description))
        print(result.summary())
        print(f"  energy: {result.energy_j_per_image if result.energy_j_per_image is not None else 'n/a'}"
              f" ({result.energy_note})")
    print(f"appended to {store.path}")
    return 0


COMMANDS = {"export": _export, "measure": _measure, "profile": _profile, "plan": _plan, "train": _train, "sweep": _sweep, "summary": _summary,
            "bench-device": _bench_device, "latency-table": run_latency_table_command}

if __name__ == "__main__":
    sys.exit(main())
