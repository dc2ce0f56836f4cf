"""The pruning plan: what Algorithm 1 returns, and how it is saved and loaded.

A :class:`PruningPlan` records how many filters each prunable conv keeps (not which: the paper
trains the pruned architecture from scratch), the complexities before and after, and the history
of the loop, so a run can be inspected, saved as JSON and repeated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cdp_tutorial.complexity import Totals
from cdp_tutorial.files import write_json_atomically
from cdp_tutorial.sampling import ABBREVIATIONS

@dataclass
class PruningPlan:
    """The output of Algorithm 1: how many filters each prunable conv layer keeps.

    Attributes
    ----------
    widths : dict
        ``{layer name: filters}`` for every prunable conv layer after pruning.
    baseline_widths : dict
        The same layers' filter counts before pruning.
    history : pandas.DataFrame
        One row per iteration: ``iteration, layer, probability, filters_before, filters_after,
        params, macs, memory_bytes, fraction`` (model totals after the step; ``fraction`` is the
        mode's total relative to the baseline).
    baseline, final : Totals
        Model complexity before and after.
    mode : str
        ``"params"``, ``"flops"`` or ``"memory"``.
    target : float or None
        The budget as a fraction of the baseline (None if an absolute budget was given).
    budget : float
        The absolute budget in the mode's unit (parameters, MACs or bytes).
    """

    model_name: str
    mode: str
    target: float | None
    budget: float
    step: float | None
    seed: int | None
    coupled: str
    round_to: int
    bytes_per_element: int
    widths: dict
    baseline_widths: dict
    baseline: Totals
    final: Totals
    history: pd.DataFrame = field(repr=False)
    method: str = "cdp"  # "cdp" (Algorithm 1), "uniform" (every layer alike) or a ranking criterion
    tied: list = field(default_factory=list, repr=False)  # groups of layers that share a width
    memory: str = "stored"  # what memory counts: "stored" (all weights) or "eq5" (kernels only)
    removed_fraction: float | None = None  # a ranking plan's share of filters removed (``step`` is Algorithm 1's p)

    @property
    def reduction(self) -> dict:
        """Fraction of each complexity removed: ``{"params": .., "flops": .., "memory": ..}``."""
        return {m: 1.0 - self.final.mode_total(m) / self.baseline.mode_total(m) for m in ("params", "flops", "memory")}

    def summary(self) -> str:
        label = ABBREVIATIONS[self.mode] if self.method == "cdp" else self.method  # uniform, l1, pls, ...
        red = self.reduction
        unit = {"params": "parameters", "flops": "MACs", "memory": "bytes"}[self.mode]
        return (f"{self.model_name} {label} ({self.mode}) plan: {self.final.mode_total(self.mode):,} {unit} "
                f"<= budget {self.budget:,.0f}; removed params {red['params']:.1%}, "
                f"MACs {red['flops']:.1%}, memory {red['memory']:.1%} "
                + (f"by removing {self.removed_fraction:.1%} of the filters" if self.removed_fraction is not None
                   else f"in {len(self.history)} iterations"))

    # -- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": "cdp-tutorial/pruning-plan", "version": 1,
            "model_name": self.model_name, "method": self.method, "mode": self.mode,
            "target": self.target, "budget": self.budget, "step": self.step, "seed": self.seed,
            "coupled": self.coupled, "round_to": self.round_to,
            "bytes_per_element": self.bytes_per_element, "memory": self.memory,
            "removed_fraction": self.removed_fraction,
            "widths": self.widths, "baseline_widths": self.baseline_widths, "tied": self.tied,
            "baseline": self.baseline.as_dict(), "final": self.final.as_dict(),
            "history": self.history.to_dict(orient="records"),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "PruningPlan":
        if d.get("format") != "cdp-tutorial/pruning-plan":
            raise ValueError("not a cdp-tutorial pruning plan (missing format tag)")
        return cls(
            model_name=d["model_name"], mode=d["mode"], target=d["target"], budget=d["budget"],
            step=d["step"], seed=d["seed"], coupled=d["coupled"], round_to=d["round_to"],
            bytes_per_element=d["bytes_per_element"],
            widths={k: int(v) for k, v in d["widths"].items()},
            baseline_widths={k: int(v) for k, v in d["baseline_widths"].items()},
            baseline=Totals(**d["baseline"]), final=Totals(**d["final"]),
            history=pd.DataFrame.from_records(d["history"], columns=HISTORY_COLUMNS),
            method=d.get("method", "cdp"), tied=[list(t) for t in d.get("tied", [])],
            memory=d.get("memory", "stored"), removed_fraction=d.get("removed_fraction"),
        )

    def save(self, path, overwrite: bool = False) -> Path:
        """Write the plan as JSON, atomically; refuse to replace an existing file unless ``overwrite``."""
        return write_json_atomically(path, self.to_dict(), overwrite=overwrite)

    @classmethod
    def load(cls, path) -> "PruningPlan":
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))


#: The columns of :attr:`PruningPlan.history`, one row per iteration of Algorithm 1.
HISTORY_COLUMNS = ["iteration", "layer", "probability", "filters_before", "filters_after",
                    "params", "macs", "memory_bytes", "fraction"]
