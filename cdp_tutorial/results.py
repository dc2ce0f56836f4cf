"""The results of a sweep: the store every finished run is added to, and the tables made from it.

``results.jsonl`` (:class:`ResultsStore`) holds one JSON record per finished run, only ever added
to. :func:`summarize` gives mean ± std over seeds in the shape of the paper's tables, one row per
method (``cdp``, ``uniform``, ``l1``, ``random``, ``pls``), mode and budget; :func:`side_by_side`
puts the paper's and PLS's published numbers (``data/reference/``) next to ours, each with its
source. Everything here is re-exported by :mod:`cdp_tutorial.experiments`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from cdp_tutorial.files import write_atomically

RESULTS_FILE = "results.jsonl"
BASELINE = "baseline"

#: Order of the methods in tables: the paper's, the naive one, then the criteria-based baselines.
METHOD_ORDER = {"cdp": 0, "uniform": 1, "l1": 2, "random": 3, "pls": 4}


class ResultsStore:
    """``results.jsonl`` in an output folder: one record per finished run, only ever added to.

    Each addition rewrites the file through a temporary file and ``os.replace``, so a reader (or a
    crash) never sees half a record, and earlier records are never lost.
    """

    def __init__(self, out_dir):
        self.path = Path(out_dir) / RESULTS_FILE

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def finished(self) -> set[str]:
        return {r["key"] for r in self.records()}

    def append(self, record: dict) -> None:
        old = self.path.read_bytes() if self.path.exists() else b""
        line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
        write_atomically(self.path, lambda tmp: tmp.write_bytes(old + line))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.records())


_COMPLEXITY_OF_MODE = {"PA": "params", "FA": "macs", "MA": "memory_bytes"}


def complexity_fields(reported, trained, baseline) -> dict:
    """A record's complexity columns, from three :class:`cdp_tutorial.complexity.Totals`.

    ``reported`` is the architecture the result is about (``params``, ``macs``, ...), ``trained`` the
    model that was actually trained (``trained_*``: narrower in the quick profile) and ``baseline``
    what the reductions are measured against (``baseline_*``).
    """
    return {"params": reported.params, "macs": reported.macs, "flops": reported.flops,
            "memory_bytes": reported.memory_bytes,
            "trained_params": trained.params, "trained_macs": trained.macs,
            "trained_memory_bytes": trained.memory_bytes,
            "baseline_params": baseline.params, "baseline_macs": baseline.macs,
            "baseline_memory_bytes": baseline.memory_bytes}


def summarize(records) -> pd.DataFrame:
    """Mean ± std over seeds, in the shape of the paper's tables.

    One row per (model, dataset, profile, label, method, mode, target): number of seeds, test
    accuracy mean and std (%), accuracy change against the baseline's mean (points), the model's
    params / MACs / memory, the reduction of the mode's own complexity (%), and the mean wall time
    to the trained model (s; for ranking methods the whole train -> prune -> fine-tune pipeline).
    """
    df = records if isinstance(records, pd.DataFrame) else pd.DataFrame(records)
    if df.empty:
        return pd.DataFrame()
    df = df.copy()
    df["target"] = df["target"].astype(float)
    df["accuracy_pct"] = 100 * df["test_accuracy"]
    if "wall_time_s" not in df:
        df["wall_time_s"] = np.nan
    keys = ["model", "dataset", "profile", "label", "method", "mode", "target"]
    grouped = df.groupby(keys, dropna=False, sort=False)
    table = grouped.agg(seeds=("seed", "nunique"), accuracy_mean=("accuracy_pct", "mean"),
                        accuracy_std=("accuracy_pct", "std"), params=("params", "mean"),
                        macs=("macs", "mean"), memory_bytes=("memory_bytes", "mean"),
                        wall_time_s=("wall_time_s", "mean"),
                        baseline_params=("baseline_params", "first"),
                        baseline_macs=("baseline_macs", "first"),
                        baseline_memory_bytes=("baseline_memory_bytes", "first")).reset_index()
    table["accuracy_std"] = table["accuracy_std"].fillna(0.0)
    base = table[table["mode"] == BASELINE].set_index(["model", "dataset", "profile", "label"])
    change, reduction = [], []
    for _, row in table.iterrows():
        idx = (row["model"], row["dataset"], row["profile"], row["label"])
        change.append(row["accuracy_mean"] - base.loc[idx, "accuracy_mean"] if idx in base.index else np.nan)
        column = _COMPLEXITY_OF_MODE.get(row["mode"])
        reduction.append(100 * (1 - row[column] / row["baseline_" + column]) if column else 0.0)
    table["accuracy_change_pts"] = change
    table["reduction_pct"] = reduction
    order = {BASELINE: 0, "PA": 1, "FA": 2, "MA": 3}
    table = table.sort_values(
        ["model", "dataset", "profile", "mode", "target", "method"],
        key=lambda s: s.map(order) if s.name == "mode" else (s.map(METHOD_ORDER) if s.name == "method" else s),
        na_position="first")
    columns = ["model", "dataset", "profile", "method", "mode", "target", "seeds", "accuracy_mean",
               "accuracy_std", "accuracy_change_pts", "reduction_pct", "params", "macs",
               "memory_bytes", "wall_time_s", "label"]
    return table[columns].reset_index(drop=True)


def paper_table(path=None) -> pd.DataFrame:
    """The paper's surviving results (``data/reference/paper_results.csv``), with their source."""
    from cdp_tutorial.data import repository_file

    return pd.read_csv(path or repository_file("data/reference/paper_results.csv"))


def pls_table(path=None) -> pd.DataFrame:
    """PLS's published results (``data/reference/pls_results.csv``), with their source."""
    from cdp_tutorial.data import repository_file

    return pd.read_csv(path or repository_file("data/reference/pls_results.csv"))


def side_by_side(summary: pd.DataFrame, paper: pd.DataFrame | None = None,
                 pls: pd.DataFrame | None = None) -> pd.DataFrame:
    """Our summary rows next to the published numbers for the same model and mode, each with its source.

    ``cdp`` rows get the paper's result for that model and mode; ``pls`` rows get the published
    PLS result (Jordao et al., FLOPs only) whose FLOPs reduction is closest to ours (the ``paper:``
    columns then hold PLS's paper, named in ``paper: source``); the other methods have no
    published counterpart in ``data/reference/`` and get none.
    """
    paper = paper_table() if paper is None else paper
    pls = pls_table() if pls is None else pls
    pls = pls.dropna(subset=["flops_reduction_pct"])
    ours = summary[summary["mode"] != BASELINE]
    rows = []
    for _, r in ours.iterrows():
        reference = None
        if r["method"] == "cdp":
            match = paper[(paper["model"] == r["model"]) & (paper["mode"] == r["mode"])]
            if len(match):
                p = match.iloc[0]
                reference = (p["dataset"], p["reduction_pct"], p["accuracy_change_pts"], p["source"])
        elif r["method"] == "pls" and r["mode"] == "FA":
            match = pls[pls["model"] == r["model"]]
            if len(match):
                p = match.loc[(match["flops_reduction_pct"] - r["reduction_pct"]).abs().idxmin()]
                reference = (p["dataset"], p["flops_reduction_pct"], p["accuracy_change_pts"],
                             f"{p['source']} ({int(p['iterations'])} iterations)")
        rows.append({
            "model": r["model"], "method": r["method"], "mode": r["mode"],
            "ours: data": r["dataset"], "ours: target": r["target"],
            "ours: reduction %": round(r["reduction_pct"], 2),
            "ours: accuracy change (pts)": round(r["accuracy_change_pts"], 2),
            "ours: accuracy %": f"{r['accuracy_mean']:.2f} ± {r['accuracy_std']:.2f} ({r['seeds']} seeds)",
            "ours: source": r["label"],
            "paper: data": reference[0] if reference else None,
            "paper: reduction %": reference[1] if reference else None,
            "paper: accuracy change (pts)": reference[2] if reference else None,
            "paper: source": reference[3] if reference else None,
        })
    return pd.DataFrame(rows)
