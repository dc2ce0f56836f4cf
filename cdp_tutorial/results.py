"""The results of a sweep: the store every finished run is added to, and the tables made from it.

``results.jsonl`` (:class:`ResultsStore`) holds one JSON record per finished run, only ever added
to. :func:`summarize` gives mean ± std over seeds in the shape of the paper's tables, one row per
method (``cdp``, ``uniform``, ``l1``, ``random``, ``pls``), mode and budget; :func:`side_by_side`
puts the paper's and PLS's published numbers (``data/reference/``) next to ours, each with its
source. Everything here is re-exported by :mod:`cdp_tutorial.experiments`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cdp_tutorial.store import RecordStore

RESULTS_FILE = "results.jsonl"
BASELINE = "baseline"

#: Order of the methods in tables: the paper's, the naive one, then the criteria-based baselines.
METHOD_ORDER = {"cdp": 0, "uniform": 1, "l1": 2, "random": 3, "pls": 4}


class ResultsStore(RecordStore):
    """``results.jsonl`` in an output folder: one record per finished run, only ever added to.

    A :class:`cdp_tutorial.store.RecordStore`: appends are locked and never rewrite earlier records,
    so several sweeps may write one folder at once; a damaged line is reported as ``file:line``.
    """

    def __init__(self, out_dir):
        super().__init__(Path(out_dir) / RESULTS_FILE)

    def records(self) -> list[dict]:
        """Every run record, each checked to be one (a damaged or foreign line is named by file and line).

        Raises
        ------
        ValueError
            A line is not a JSON object, lacks a run's fields (:data:`RUN_FIELDS`), or has a test
            accuracy that is not a number in [0, 1].
        """
        records = []
        for number, record in self.numbered():
            missing = [f for f in RUN_FIELDS if f not in record]
            if missing:
                raise ValueError(f"{self.path}:{number} is not a run record (it has no {', '.join(missing)}); "
                                 "repair or delete that line")
            accuracy = record["test_accuracy"]
            if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not 0 <= accuracy <= 1:
                raise ValueError(f"{self.path}:{number}: test_accuracy must be a number in [0, 1], "
                                 f"got {accuracy!r}; repair or delete that line")
            records.append(record)
        return records

    def finished(self) -> set[str]:
        """The keys of every recorded run (see :meth:`records` for what is checked)."""
        return {r["key"] for r in self.records()}


#: The fields every run record has (:func:`cdp_tutorial.runs.run_identity` and the result).
RUN_FIELDS = ("key", "model", "dataset", "profile", "label", "method", "mode", "target", "seed",
              "test_accuracy")
_COMPLEXITY_OF_MODE = {"PA": "params", "FA": "macs", "MA": "memory_bytes"}
_QUANTITIES = ("params", "macs", "flops", "memory_bytes")


def complexity_fields(planned, trained, planned_baseline, trained_baseline) -> dict:
    """A record's complexity columns, from :class:`cdp_tutorial.complexity.Totals`, kept apart by kind.

    ``planned_*`` is the full-size architecture a plan describes (what the paper's tables report),
    ``trained_*`` the model that was actually trained (narrower in the quick profile), and
    ``baseline_planned_*`` / ``baseline_trained_*`` what each is measured against. A ranking method
    that pruned a narrow trained model has no full-size plan: pass ``planned=None`` and its planned
    columns are None. Rows then compare like with like: planned with planned, trained with trained.
    """
    fields = {}
    for prefix, totals in (("planned_", planned), ("trained_", trained),
                           ("baseline_planned_", planned_baseline if planned is not None else None),
                           ("baseline_trained_", trained_baseline)):
        fields.update({prefix + q: (None if totals is None else int(getattr(totals, q))) for q in _QUANTITIES})
    return fields


def collapsed(accuracy: float, num_classes: int) -> bool:
    """Whether a test accuracy is no better than twice chance: the run (or stage) did not learn.

    Examples
    --------
    >>> collapsed(0.10, 10), collapsed(0.21, 10)
    (True, False)
    """
    return bool(accuracy <= 2.0 / num_classes)


def summarize(records) -> pd.DataFrame:
    """Mean ± std over seeds, in the shape of the paper's tables.

    One row per (model, dataset, profile, label, method, variant, mode, target), where ``variant``
    says how a method was run (Algorithm 1's step ``p``; a ranking method's K and fine-tune schedule):
    number of seeds, test accuracy mean and std (%), accuracy change against the baseline's mean
    (points), how many runs collapsed (final or any fine-tune accuracy at most twice chance), the
    planned full-size and the trained model's complexities and the reduction of the mode's own
    complexity for each (planned vs the planned baseline, trained vs the trained baseline: like with
    like; a ranking method that pruned a narrow model has no planned figures), and the mean wall
    time to the trained model (s; for ranking methods the whole train -> prune -> fine-tune pipeline).

    Raises
    ------
    ValueError
        Two records share a key (the same run recorded twice), or a group holds two runs of one
        seed (results of different specs or package versions mixed in one store).
    """
    df = records if isinstance(records, pd.DataFrame) else pd.DataFrame(records)
    if df.empty:
        return pd.DataFrame()
    df = df.copy()
    if "key" in df:
        twice = df["key"][df["key"].duplicated()].unique()
        if len(twice):
            raise ValueError(f"{len(twice)} run(s) recorded twice, e.g. {twice[0]!r}: a results store "
                             "holds each run once; remove the duplicate lines")
    for column in ("wall_time_s", "step", "iterations", "finetune", "finetune_lr_scale", "collapsed",
                   *[p + q for p in ("planned_", "trained_", "baseline_planned_", "baseline_trained_")
                     for q in _QUANTITIES]):
        if column not in df:
            df[column] = np.nan
    df["target"] = df["target"].astype(float)
    df["accuracy_pct"] = 100 * df["test_accuracy"]
    df["collapsed"] = df["collapsed"].fillna(False).astype(bool)
    df["variant"] = [_variant(r) for r in df.itertuples()]
    keys = ["model", "dataset", "profile", "label", "method", "variant", "mode", "target"]
    grouped = df.groupby(keys, dropna=False, sort=False)
    mixed = grouped["seed"].agg(lambda s: s.duplicated().any())
    if mixed.any():
        raise ValueError(f"two runs of one seed in one group ({dict(zip(keys, mixed[mixed].index[0]))}): "
                         "records of different specs or package versions are mixed; filter them first")
    agg = dict(seeds=("seed", "nunique"), accuracy_mean=("accuracy_pct", "mean"),
               accuracy_std=("accuracy_pct", "std"), collapsed=("collapsed", "sum"),
               wall_time_s=("wall_time_s", "mean"))
    for prefix in ("planned_", "trained_"):
        for q in ("params", "macs", "memory_bytes"):
            agg[prefix + q] = (prefix + q, "mean")
            agg["baseline_" + prefix + q] = ("baseline_" + prefix + q, "first")
    table = grouped.agg(**agg).reset_index()
    # one seed has no spread: NaN, never a false "± 0.00"
    table["collapsed"] = table["collapsed"].astype(int)
    base = table[table["mode"] == BASELINE].set_index(["model", "dataset", "profile", "label"])
    change = []
    for _, row in table.iterrows():
        idx = (row["model"], row["dataset"], row["profile"], row["label"])
        change.append(row["accuracy_mean"] - base.loc[idx, "accuracy_mean"].mean() if idx in base.index else np.nan)
    table["accuracy_change_pts"] = change
    for prefix in ("planned_", "trained_"):
        reduction = []
        for _, row in table.iterrows():
            quantity = _COMPLEXITY_OF_MODE.get(row["mode"])
            reduction.append(100 * (1 - row[prefix + quantity] / row["baseline_" + prefix + quantity])
                             if quantity else 0.0)
        table[prefix + "reduction_pct"] = reduction
    order = {BASELINE: 0, "PA": 1, "FA": 2, "MA": 3}
    table = table.sort_values(
        ["model", "dataset", "profile", "mode", "target", "method"],
        key=lambda s: s.map(order) if s.name == "mode" else (s.map(METHOD_ORDER) if s.name == "method" else s),
        na_position="first")
    columns = ["model", "dataset", "profile", "method", "variant", "mode", "target", "seeds",
               "accuracy_mean", "accuracy_std", "accuracy_change_pts", "collapsed",
               "planned_reduction_pct", "trained_reduction_pct", "planned_params", "planned_macs",
               "planned_memory_bytes", "trained_params", "trained_macs", "trained_memory_bytes",
               "wall_time_s", "label"]
    return table[columns].reset_index(drop=True)


def _variant(row) -> str:
    """How a method was run, for tables: Algorithm 1's step, or a ranking method's schedule."""
    if row.mode == BASELINE or row.method == "uniform":
        return ""
    if row.method == "cdp":
        return f"p = {row.step:g}" if pd.notna(row.step) else ""
    if pd.isna(row.iterations):
        return ""
    schedule = {"rounds": "fine-tune after each", "once": "one fine-tune after the last"}.get(row.finetune, "")
    scale = f", fine-tune lr x{row.finetune_lr_scale:g}" if pd.notna(row.finetune_lr_scale) else ""
    return f"K = {int(row.iterations)} prunings, {schedule}{scale}".replace(", ,", ",")


def accuracy_text(mean: float, std: float, seeds: int) -> str:
    """Mean ± std over seeds as a table shows it; one seed has no spread, and says so.

    Examples
    --------
    >>> accuracy_text(90.75, float("nan"), 1), accuracy_text(90.1, 0.42, 3)
    ('90.75 (1 seed, no spread)', '90.10 ± 0.42 (3 seeds)')
    """
    if seeds < 2 or not np.isfinite(std):
        return f"{mean:.2f} ({seeds} seed{'s' if seeds != 1 else ''}, no spread)"
    return f"{mean:.2f} ± {std:.2f} ({seeds} seeds)"


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
        # the paper's reductions are of full-size models: ours planned ones where there is a plan
        reduction = r["planned_reduction_pct"] if pd.notna(r["planned_reduction_pct"]) else r["trained_reduction_pct"]
        reference = None
        if r["method"] == "cdp":
            match = paper[(paper["model"] == r["model"]) & (paper["mode"] == r["mode"])]
            if len(match):
                p = match.iloc[0]
                reference = (p["dataset"], p["reduction_pct"], p["accuracy_change_pts"], p["source"])
        elif r["method"] == "pls" and r["mode"] == "FA":
            match = pls[pls["model"] == r["model"]]
            if len(match):
                p = match.loc[(match["flops_reduction_pct"] - reduction).abs().idxmin()]
                reference = (p["dataset"], p["flops_reduction_pct"], p["accuracy_change_pts"],
                             f"{p['source']} ({int(p['iterations'])} iterations)")
        rows.append({
            "model": r["model"], "method": r["method"], "mode": r["mode"],
            "ours: data": r["dataset"], "ours: target": r["target"],
            "ours: reduction %": round(reduction, 2),
            "ours: accuracy change (pts)": round(r["accuracy_change_pts"], 2),
            "ours: accuracy %": accuracy_text(r["accuracy_mean"], r["accuracy_std"], r["seeds"]),
            "ours: source": r["label"],
            "paper: data": reference[0] if reference else None,
            "paper: reduction %": reference[1] if reference else None,
            "paper: accuracy change (pts)": reference[2] if reference else None,
            "paper: source": reference[3] if reference else None,
        })
    return pd.DataFrame(rows)
