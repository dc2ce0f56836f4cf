"""``cdp-tutorial latency-table``: measure a model's latency table on this device and save it.

Examples::

    cdp-tutorial latency-table --model vgg16 --out data/latency/my-laptop.json
    cdp-tutorial latency-table --model vgg16 --threads 1 --out data/latency/my-laptop-1thread.json
    cdp-tutorial plan --model vgg16 --mode LA --target 0.5 --latency-table data/latency/my-laptop.json

The command is registered in :mod:`cdp_tutorial.cli`; its logic lives here.
"""

from __future__ import annotations

from pathlib import Path


def add_latency_table_command(sub) -> None:
    """Add the ``latency-table`` sub-command to an ``argparse`` sub-parsers object."""
    from cdp_tutorial.models import MODELS

    p = sub.add_parser("latency-table", help="measure per-layer LiteRT latency on this device (for mode LA)")
    p.add_argument("--model", required=True, type=str.lower, choices=sorted(MODELS))
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--width-multiplier", type=float, default=1.0,
                   help="measure the model at this width (1: full size, what plans are made on)")
    p.add_argument("--out", required=True, help="the table's JSON file, e.g. data/latency/<device>.json")
    p.add_argument("--threads", type=int, default=2, help="LiteRT interpreter threads (the paper's VM: 2 CPUs)")
    p.add_argument("--clock", choices=["wall", "thread"], default="wall",
                   help="wall: wall-clock latency (a quiet machine); thread: the interpreter thread's CPU time, "
                        "robust on a busy shared machine (needs --threads 1)")
    p.add_argument("--out-step", type=int, default=16, help="output widths measured at multiples of this")
    p.add_argument("--in-points", type=int, default=3, help="input widths measured per block configuration")
    p.add_argument("--repeats", type=int, default=20, help="timed calls per round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per process")
    p.add_argument("--processes", type=int, default=3, help="separate timing processes")
    p.add_argument("--calibration", type=int, default=6, help="whole models the correction is fitted on")
    p.add_argument("--layers", nargs="+", default=None, help="only these layers' blocks (a partial table)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def run_latency_table_command(args) -> int:
    """Measure and save the table the parsed ``args`` describe; print what was measured."""
    from cdp_tutorial.latency.build import measure_latency_table
    from cdp_tutorial.latency.timing import Timing
    from cdp_tutorial.models import build_model

    out = Path(args.out)
    if out.suffix != ".json":
        raise ValueError(f"--out must be a .json file, got {args.out!r}")
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    timing = Timing(threads=args.threads, repeats=args.repeats, rounds=args.rounds, processes=args.processes,
                    clock=args.clock)
    model = build_model(args.model, num_classes=args.num_classes, width_multiplier=args.width_multiplier)
    table = measure_latency_table(model, timing=timing, out_step=args.out_step, in_points=args.in_points,
                                  layers=args.layers, calibration=args.calibration, progress=print)
    table.save(out, overwrite=args.overwrite)
    if table.correction:
        for row in table.correction["calibration"]:
            print(f"  calibration {row['name']}: measured {row['measured_ms']:.3f} ms, blocks {row['blocks_ms']:.3f} ms, "
                  f"{row['weight_mb']:.1f} weight MB")
    print(f"latency table written to {out}")
    return 0
