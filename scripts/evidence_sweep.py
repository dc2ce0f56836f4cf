"""The evidence sweep: every method at one budget, on real data, over three seeds (data/results/evidence/).

    python scripts/evidence_sweep.py                        # resumes: finished runs are skipped
    python scripts/evidence_sweep.py --out /tmp/evidence    # somewhere else

What it runs (the ``evidence`` profile of :mod:`cdp_tutorial.profiles`: Fashion-MNIST 20,000 / 10,000
images, VGG-16 planned at full size and trained at x0.25 width, 10 epochs, modern recipe), per seed
0, 1, 2, in this order so that an interrupted sweep leaves whole seeds behind:

1. the baseline;
2. complexity-driven pruning (CDP) in PA, FA and MA mode, keeping 30 % of each mode's complexity;
3. uniform scaling at the FA budget;
4. L1, random and PLS at the FA budget, pruning the seed's trained baseline in 10 steps and then
   fine-tuning once for 10 epochs at a tenth of the learning rate (the paper's §4.4.1 schedule);

and then, for every seed, uniform scaling at the PA and MA budgets. The same runs from the command
line (two commands, as printed by ``--print-commands``) give the same keys. Never run in CI: it takes
hours on 2 CPU cores (data/results/evidence/README.md has the measured time).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL, TARGET, SEEDS = "vgg16", 0.3, (0, 1, 2)
RANKING = dict(methods=["l1", "random", "pls"], iterations=10, finetune="once")


def evidence_specs():
    """The sweep's runs, in the order they are trained."""
    from cdp_tutorial.experiments import make_specs

    common = dict(profile="evidence")
    first, extras = [], []
    for seed in SEEDS:
        first += make_specs(MODEL, ["PA", "FA", "MA"], [TARGET], [seed], methods=["cdp"], **common)
        first += make_specs(MODEL, ["FA"], [TARGET], [seed], methods=["uniform"], baseline=False, **common)
        first += make_specs(MODEL, ["FA"], [TARGET], [seed], baseline=False, **RANKING, **common)
        extras += make_specs(MODEL, ["PA", "MA"], [TARGET], [seed], methods=["uniform"], baseline=False, **common)
    return first + extras


def commands(out: str) -> list[str]:
    """The same sweep as two ``cdp-tutorial sweep`` commands (another order, the same runs and keys)."""
    seeds = [str(s) for s in SEEDS]
    base = ["cdp-tutorial", "sweep", "--model", MODEL, "--targets", f"{TARGET:g}", "--seeds", *seeds,
            "--profile", "evidence", "--out", out]
    return [shlex.join(base + ["--modes", "PA", "FA", "MA", "--methods", "cdp", "uniform"]),
            shlex.join(base + ["--modes", "FA", "--methods", *RANKING["methods"], "--iterations",
                               str(RANKING["iterations"]), "--finetune", RANKING["finetune"]])]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "data" / "results" / "evidence"))
    parser.add_argument("--print-commands", action="store_true", help="print the equivalent CLI commands")
    args = parser.parse_args(argv)
    if args.print_commands:
        print("\n".join(commands(args.out)))
        return 0
    from cdp_tutorial.experiments import run_sweep

    run_sweep(evidence_specs(), args.out, progress=True, verbose="auto")
    return 0


if __name__ == "__main__":
    sys.exit(main())
