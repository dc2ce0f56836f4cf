"""The committed evidence: every method at one budget, over seeds, compared seed by seed.

``data/results/evidence/results.jsonl`` holds the runs of ``scripts/evidence_sweep.py`` (the
``evidence`` profile: Fashion-MNIST 20,000 / 10,000 images, VGG-16 planned at full size and trained at
x0.25 width, 10 epochs, seeds 0, 1, 2). Each run is one *arm* (a method at a mode's budget:
``"CDP-FA"``, ``"uniform-FA"``, ``"L1-FA"``, ...) and one seed. Notebooks 04 and 05 draw their
conclusions from these records, not from their own few-minute runs, through four functions:

* :func:`arm_table`: mean ± std of the test accuracy per arm, with n and a 95 % t-interval of the mean;
* :func:`paired_differences`: A minus B seed by seed, the mean, its 95 % t-interval and p-value, whether it holds
  after Holm's correction over the comparisons asked together (:mod:`cdp_tutorial.stats`), and :func:`verdict`;
* :func:`training_cost`: the paper's Table 5 from the recorded times; :func:`plot_evidence`: the figure.

Everything works with however many seeds have finished; :func:`completeness` says how many, and
every verdict on fewer than three seeds says the evidence is incomplete.
"""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from cdp_tutorial.checks import check_fraction
from cdp_tutorial.results import BASELINE
from cdp_tutorial.stats import holm, holm_thresholds, paired_summary, t_half_width
from cdp_tutorial.store import RecordStore

#: Where the evidence sweep's records are committed (shipped with the package; see setup.py).
EVIDENCE_FILE = "data/results/evidence/results.jsonl"
#: Points :func:`load_evidence` at another copy of the records (e.g. a snapshot while the sweep still appends).
EVIDENCE_ENV = "CDP_EVIDENCE_FILE"
#: How the sweep is run (from the repository root); it resumes, skipping finished runs.
SWEEP_COMMAND = "python scripts/evidence_sweep.py"
#: The same runs with the command-line tool a pip install ships (data/results/evidence/README.md gives both commands).
SWEEP_CLI = "cdp-tutorial sweep --model vgg16 --targets 0.3 --seeds 0 1 2 --profile evidence ..."
#: How each method is named in arms, tables and figures.
METHOD_NAMES = {"cdp": "CDP", "uniform": "uniform", "l1": "L1", "random": "random", "pls": "PLS"}
#: The arms ``scripts/evidence_sweep.py`` trains for every seed.
EXPECTED_ARMS = ("baseline", "CDP-PA", "CDP-FA", "CDP-MA", "uniform-FA", "L1-FA", "random-FA", "PLS-FA",
                 "uniform-PA", "uniform-MA")
#: The comparisons the notebooks make, as (A, B): A minus B, seed by seed.
COMPARISONS = (("CDP-FA", "uniform-FA"), ("CDP-PA", "uniform-PA"), ("CDP-MA", "uniform-MA"),
               ("CDP-FA", "L1-FA"), ("CDP-FA", "random-FA"), ("CDP-FA", "PLS-FA"),
               ("L1-FA", "random-FA"), ("PLS-FA", "L1-FA"))
_MODE_QUANTITY = {"PA": "params", "FA": "macs", "MA": "memory_bytes"}
_NEEDED = ("key", "method", "mode", "seed", "test_accuracy")


def load_evidence(path=None) -> pd.DataFrame:
    """The evidence records, one row per finished run, with its ``arm`` and accuracy in %.

    Parameters
    ----------
    path : str or pathlib.Path, optional
        A ``results.jsonl`` file (or the folder holding one). Default: ``$CDP_EVIDENCE_FILE`` if set, else
        the committed evidence, ``data/results/evidence/results.jsonl``, from the checkout or the package.

    Returns
    -------
    pandas.DataFrame
        The records' fields, plus ``arm`` (e.g. ``"CDP-FA"``) and ``accuracy_pct``; sorted by arm
        (in :data:`EXPECTED_ARMS` order) and seed. Empty (with those columns) if no run has finished.

    Raises
    ------
    FileNotFoundError
        No such file; the message gives the command that makes it.
    ValueError
        A damaged line (named by file and line), a record without the fields a comparison needs,
        records of several profiles, or two runs of one arm and seed.
    """
    path = path if path is not None else os.environ.get(EVIDENCE_ENV) or None
    if path is None:
        from cdp_tutorial.data import DatasetNotFoundError, repository_file

        try:
            path = repository_file(EVIDENCE_FILE)
        except DatasetNotFoundError as error:
            raise FileNotFoundError(f"{error} To make the evidence, run `{SWEEP_COMMAND}`.") from None
    path = Path(path)
    if path.is_dir():
        path = path / "results.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no evidence records at {path}: run `{SWEEP_COMMAND}` from the repository "
                                "root (hours on a CPU; it resumes where it stopped)")
    return _frame(RecordStore(path).records(), str(path))


def _frame(records, where: str = "the records") -> pd.DataFrame:
    """Records (dicts or a DataFrame) as the checked, sorted frame every function here works on."""
    frame = records.copy() if isinstance(records, pd.DataFrame) else pd.DataFrame(list(records))
    if frame.empty:
        return pd.DataFrame(columns=[*_NEEDED, "profile", "arm", "accuracy_pct"])
    missing = [c for c in _NEEDED if c not in frame]
    if missing:
        raise ValueError(f"{where}: records lack {missing}; these are not run records of a sweep")
    if "profile" in frame and frame["profile"].nunique() > 1:
        raise ValueError(f"{where} mixes profiles {sorted(frame['profile'].unique())}: compare runs of one "
                         "profile (filter the records first)")
    frame["arm"] = [arm_of(m, d) for m, d in zip(frame["method"], frame["mode"])]
    twice = frame[frame.duplicated(["arm", "seed"], keep=False)]
    if len(twice):
        raise ValueError(f"{where}: {len(twice)} runs share an arm and a seed (e.g. {twice['arm'].iloc[0]}, seed "
                         f"{twice['seed'].iloc[0]}: keys {sorted(twice['key'])[:2]}); records of different "
                         "specs or code are mixed: keep one of each")
    frame["accuracy_pct"] = 100 * frame["test_accuracy"].astype(float)
    order = {arm: i for i, arm in enumerate(EXPECTED_ARMS)}
    frame = frame.assign(_order=frame["arm"].map(order).fillna(len(order)))
    return frame.sort_values(["_order", "arm", "seed"]).drop(columns="_order").reset_index(drop=True)


def arm_of(method: str, mode: str) -> str:
    """An arm's name: ``"baseline"``, or the method's name and the mode, e.g. ``"CDP-FA"``.

    Examples
    --------
    >>> arm_of("cdp", "FA"), arm_of("pls", "FA"), arm_of("cdp", "baseline")
    ('CDP-FA', 'PLS-FA', 'baseline')
    """
    if mode == BASELINE:
        return BASELINE
    if method not in METHOD_NAMES:
        raise ValueError(f"unknown method {method!r}; known: {sorted(METHOD_NAMES)}")
    return f"{METHOD_NAMES[method]}-{mode}"


def arm_table(records, confidence: float = 0.95) -> pd.DataFrame:
    """Test accuracy per arm: n, the seeds, mean ± std (%) and the t-interval of the mean.

    Parameters
    ----------
    records : pandas.DataFrame or list of dict
        Run records (e.g. :func:`load_evidence`).
    confidence : float, default 0.95
        Of the interval: mean ± t(confidence, n - 1) x std / sqrt(n) (NaN for n = 1).

    Returns
    -------
    pandas.DataFrame
        One row per arm: ``arm``, ``n``, ``seeds``, ``accuracy_mean``, ``accuracy_std`` (NaN for n = 1),
        ``ci_low``, ``ci_high``, ``collapsed`` (runs at most twice chance, or with a fine-tune stage
        that was), ``reduction_pct`` (of the mode's own complexity: the full-size plan's for CDP and
        uniform, the pruned trained model's for ranking methods, against their own baselines),
        ``wall_time_s`` (mean), ``label``.

    Examples
    --------
    >>> rows = [dict(key=f"{m}{s}", method="cdp", mode=m, seed=s, test_accuracy=a)
    ...         for m, s, a in [("baseline", 0, 0.90), ("baseline", 1, 0.92), ("FA", 0, 0.89), ("FA", 1, 0.90)]]
    >>> arm_table(rows)[["arm", "n", "accuracy_mean"]].to_dict("records")
    [{'arm': 'baseline', 'n': 2, 'accuracy_mean': 91.0}, {'arm': 'CDP-FA', 'n': 2, 'accuracy_mean': 89.5}]
    """
    confidence = check_fraction(confidence, "confidence")
    frame = _frame(records)
    rows = []
    for arm, runs in frame.groupby("arm", sort=False):
        accuracy = runs["accuracy_pct"].to_numpy(float)
        half = t_half_width(accuracy, confidence)
        mean = float(accuracy.mean())
        rows.append({"arm": arm, "n": len(runs), "seeds": tuple(int(s) for s in runs["seed"]),
                     "accuracy_mean": mean, "accuracy_std": float(accuracy.std(ddof=1)) if len(runs) > 1 else math.nan,
                     "ci_low": mean - half, "ci_high": mean + half,
                     "collapsed": int(runs["collapsed"].fillna(False).astype(bool).sum()) if "collapsed" in runs else 0,
                     "reduction_pct": _reduction(runs),
                     "wall_time_s": float(runs["wall_time_s"].mean()) if "wall_time_s" in runs else math.nan,
                     "label": runs["label"].iloc[0] if "label" in runs else ""})
    return pd.DataFrame(rows, columns=["arm", "n", "seeds", "accuracy_mean", "accuracy_std", "ci_low", "ci_high",
                                       "collapsed", "reduction_pct", "wall_time_s", "label"])


def _reduction(runs) -> float:
    """Mean % of the mode's own complexity removed: planned (full size) where planned, else trained."""
    mode = runs["mode"].iloc[0]
    if mode == BASELINE:
        return 0.0
    quantity = _MODE_QUANTITY[mode]
    for kind in ("planned_", "trained_"):
        kept, base = kind + quantity, "baseline_" + kind + quantity
        if kept in runs and base in runs and runs[kept].notna().all() and runs[base].notna().all():
            return float((100 * (1 - runs[kept].astype(float) / runs[base].astype(float))).mean())
    return math.nan


def paired_differences(records, comparisons=COMPARISONS, confidence: float = 0.95) -> pd.DataFrame:
    """Accuracy of arm A minus arm B, seed by seed, with the mean difference and its t-interval.

    Pairing by seed removes what a seed's two runs share (the data order; the initial weights too for one architecture),
    so the interval is that of the mean of the per-seed differences: mean ± t(confidence, n - 1) x std / sqrt(n).

    Parameters
    ----------
    records : pandas.DataFrame or list of dict
        Run records (e.g. :func:`load_evidence`).
    comparisons : sequence of (str, str), default :data:`COMPARISONS`
        Arms (see :func:`arm_of`); only seeds both arms have count. A pair with no common seed gets
        a row with ``n = 0``: not run yet.
    confidence : float, default 0.95

    Returns
    -------
    pandas.DataFrame
        One row per comparison: ``comparison`` ("CDP-FA − uniform-FA"), ``a``, ``b``, ``n``, ``seeds``,
        ``differences`` (points, per seed), ``mean``, ``std``, ``ci_low``, ``ci_high`` (NaN for
        n < 2), ``same_sign`` (n >= 2 and every seed's difference has the mean's sign, none zero) and
        ``excludes_zero`` (the interval lies on one side of 0; False for n < 2), ``p_value`` (paired
        t-test), ``family_size`` (the comparisons of this call with a p-value: one family),
        ``holm_threshold`` (what Holm's step compares this p with) and ``holds_after_holm``: the
        difference holds for the family at family-wise ``1 - confidence`` (:mod:`cdp_tutorial.stats`).

    Raises
    ------
    ValueError
        A comparison is not a pair of arm names, or names an arm no method has.

    Examples
    --------
    >>> rows = [dict(key=f"{me}{s}", method=me, mode="FA", seed=s, test_accuracy=a) for me, s, a in
    ...         [("cdp", 0, 0.80), ("cdp", 1, 0.82), ("cdp", 2, 0.84),
    ...          ("uniform", 0, 0.79), ("uniform", 1, 0.80), ("uniform", 2, 0.81)]]
    >>> row = paired_differences(rows, [("CDP-FA", "uniform-FA")]).iloc[0]
    >>> print([round(d, 6) for d in row["differences"]], f"{row['ci_low']:.3f} to {row['ci_high']:.3f}")
    [1.0, 2.0, 3.0] -0.484 to 4.484
    """
    confidence = check_fraction(confidence, "confidence")
    frame = _frame(records)
    known = {arm_of(m, d) for m in METHOD_NAMES for d in _MODE_QUANTITY} | {BASELINE}
    by_arm = {arm: runs.set_index("seed")["accuracy_pct"] for arm, runs in frame.groupby("arm")}
    rows = []
    for pair in comparisons:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise ValueError(f"each comparison must be a pair of arms (A, B), got {pair!r}")
        a, b = pair
        for arm in (a, b):
            if arm not in known:
                raise ValueError(f"unknown arm {arm!r} in comparison {pair!r}; arms are named like "
                                 f"'CDP-FA', 'uniform-PA', 'L1-FA' or 'baseline'")
        first, second = by_arm.get(a, pd.Series(dtype=float)), by_arm.get(b, pd.Series(dtype=float))
        seeds = sorted(set(first.index) & set(second.index))
        diff = [float(first[s] - second[s]) for s in seeds]
        rows.append({"comparison": f"{a} − {b}", "a": a, "b": b, "n": len(seeds),
                     "seeds": tuple(int(s) for s in seeds), "differences": tuple(diff),
                     **paired_summary(diff, confidence)})
    table = pd.DataFrame(rows, columns=["comparison", "a", "b", "n", "seeds", "differences", "mean", "std",
                                        "ci_low", "ci_high", "same_sign", "excludes_zero", "p_value"])
    table["family_size"] = int(table["p_value"].notna().sum())
    table["holm_threshold"] = holm_thresholds(table["p_value"], 1 - confidence)
    table["holds_after_holm"] = holm(table["p_value"], 1 - confidence) & table["excludes_zero"]
    return table


def verdict(row, complete_at: int = 3) -> str:
    """The sentence a notebook prints for one row of :func:`paired_differences`, whichever way it falls.

    It states the mean difference, its interval and n, and only what they show: a difference when the interval
    excludes 0, "no difference shown" (not "equal") when it does not, and that the evidence is incomplete below
    ``complete_at`` seeds. In a family (``family_size`` > 1) it says whether a difference holds after Holm's
    correction; one that does not is stated by that status first, not as a finding.

    Examples
    --------
    >>> row = dict(a="CDP-FA", b="uniform-FA", n=3, mean=2.0, ci_low=0.5, ci_high=3.5, excludes_zero=True)
    >>> verdict(row)
    'CDP-FA is more accurate than uniform-FA by 2.0 points (95 % interval of CDP-FA − uniform-FA: +0.5 to +3.5, n = 3 seeds).'
    >>> print(verdict({**row, "family_size": 6, "p_value": 0.011, "holm_threshold": 0.01, "holds_after_holm": False}))
    CDP-FA − uniform-FA: +2.0 points, 95 % interval +0.5 to +3.5 (n = 3 seeds); it excludes 0 on its own but not after Holm's correction over the 6 comparisons made together (p = 0.011; Holm's threshold for it 0.010): not shown for the family, undecided at n = 3 (more seeds would settle it).
    """
    a, b, n, mean = row["a"], row["b"], int(row["n"]), row["mean"]
    if n == 0:
        return f"{a} vs {b}: no seed has both runs yet (the sweep: `{SWEEP_COMMAND}` in a clone, or `{SWEEP_CLI}`)."
    incomplete = "" if n >= complete_at else (f" Incomplete evidence: {n} of at least {complete_at} seeds "
                                               f"{'has' if n == 1 else 'have'} both runs.")
    if n == 1:
        return (f"{a} vs {b}: {mean:+.1f} points in the one seed that has both runs; one seed gives no "
                f"interval, so this says nothing about which is more accurate.{incomplete}")
    interval = f"95 % interval {row['ci_low']:+.1f} to {row['ci_high']:+.1f}"
    family = int(row.get("family_size", 1) or 1)
    holm_text = f"Holm's correction over the {family} comparisons made together (p = {row.get('p_value', math.nan):.3f}"
    if row["excludes_zero"] and family > 1 and not row.get("holds_after_holm", True):
        return (f"{a} − {b}: {mean:+.1f} points, {interval} (n = {n} seeds); it excludes 0 on its own but not after "
                f"{holm_text}; Holm's threshold for it {row['holm_threshold']:.3f}): not shown for the family, "
                f"undecided at n = {n} (more seeds would settle it).{incomplete}")
    if row["excludes_zero"]:  # stated as better minus worse, so the interval's sign matches the sentence
        better, worse, low, high = ((a, b, row["ci_low"], row["ci_high"]) if mean > 0
                                    else (b, a, -row["ci_high"], -row["ci_low"]))
        held = f"; it holds after {holm_text})" if family > 1 else ""
        return (f"{better} is more accurate than {worse} by {abs(mean):.1f} points (95 % interval of {better} − "
                f"{worse}: {low:+.1f} to {high:+.1f}, n = {n} seeds){held}.{incomplete}")
    return (f"{a} vs {b}: {mean:+.1f} points, {interval} (n = {n} seeds): it includes 0, so these runs show no "
            f"difference either way (which is not the same as showing none exists).{incomplete}")


def completeness(records, arms=EXPECTED_ARMS, seeds=None) -> str:
    """How much of the evidence sweep has finished, in one sentence (``seeds``: the evidence profile's).

    Examples
    --------
    >>> completeness([dict(key="b0", method="cdp", mode="baseline", seed=0, test_accuracy=0.9)], seeds=(0, 1))
    'evidence: 1 of 20 runs finished (seed 0: 1 of 10 arms; seed 1: 0 of 10 arms): incomplete, so each comparison rests on the seeds that have both of its runs (its n)'
    """
    if seeds is None:
        from cdp_tutorial.profiles import get_profile

        seeds = get_profile("evidence").seeds
    frame = _frame(records)
    have = {(arm, int(seed)) for arm, seed in zip(frame["arm"], frame["seed"])}
    per_seed = {seed: sum((arm, seed) in have for arm in arms) for seed in seeds}
    done, total = sum(per_seed.values()), len(arms) * len(seeds)
    detail = "; ".join(f"seed {seed}: {count} of {len(arms)} arms" for seed, count in per_seed.items())
    if done == total:
        return f"evidence: all {total} runs finished ({detail}): complete"
    return (f"evidence: {done} of {total} runs finished ({detail}): incomplete, so each comparison rests on "
            "the seeds that have both of its runs (its n)")


def describe(records) -> str:
    """What the evidence is, for labels: data, model and width, epochs, recipe, seeds, and the machine's speed.

    Examples
    --------
    >>> print(describe([dict(key="b0", method="cdp", mode="baseline", seed=0, test_accuracy=0.9, model="vgg16",
    ...                      width_multiplier=0.25, epochs=10, recipe="modern", batch_size=128,
    ...                      dataset_description="Fashion-MNIST: 20,000/10,000 images", images_per_second=300.0)]))
    vgg16 trained at x0.25 width, 10 epochs, modern recipe, batch 128; Fashion-MNIST: 20,000/10,000 images; training seeds 0; baseline trained at 300 images/s (median over seeds; the machine: data/results/evidence/README.md); not the paper's protocol
    """
    frame = _frame(records)
    if frame.empty:
        return "no evidence runs yet"
    first = frame.iloc[0]
    get = (lambda name, default="?": first[name] if name in frame and pd.notna(first[name]) else default)
    base = frame.loc[frame["arm"] == BASELINE].get("images_per_second", pd.Series(dtype=float)).dropna()
    speed = (f"; baseline trained at {base.median():.0f} images/s (median over seeds; the machine: "
             "data/results/evidence/README.md)") if len(base) else ""
    data = str(get("dataset_description")).replace("subset, seed ", "subset drawn with seed ")  # not the training seed
    return (f"{get('model')} trained at x{float(get('width_multiplier', 1.0)):g} width, {get('epochs')} epochs, "
            f"{get('recipe')} recipe, batch {get('batch_size')}; {data}; training seeds "
            f"{', '.join(map(str, sorted(frame['seed'].astype(int).unique())))}{speed}; not the paper's protocol")


def training_cost(records, ranking: str = "PLS-FA") -> pd.DataFrame:
    """Table 5 from the records: per seed, each CDP mode's training time against a ranking pipeline's.

    A CDP run's time is its one training (``wall_time_s``; planning takes seconds, not recorded). The
    ranking run's stages (baseline training, scoring and pruning, fine-tunes) sum to its ``wall_time_s``.

    Returns
    -------
    pandas.DataFrame
        Indexed by seed (seeds that have the ranking run): ``baseline_s``, ``score_s``, ``prune_s``,
        ``finetune_s``, ``pipeline_s`` of the ranking run, then per CDP mode present ``CDP-XX_s``
        and ``CDP-XX / <ranking>`` (the ratio of times; the paper's journal abstract reports about
        0.4, "≈ 60% less training time"). Empty if no seed has the ranking run.
    """
    frame = _frame(records)
    rows = []
    for _, run in frame[frame["arm"] == ranking].iterrows():
        stages = run["stages"] if isinstance(run.get("stages"), list) else []
        part = (lambda key, train: float(sum(s[key] for s in stages if (s["kind"] == "train") == train)))
        row = {"seed": int(run["seed"]), "baseline_s": part("train_time_s", True),
               "score_s": part("score_time_s", False), "prune_s": part("prune_time_s", False),
               "finetune_s": part("train_time_s", False),
               "pipeline_s": float(run["wall_time_s"])}
        for mode in _MODE_QUANTITY:
            mine = frame[(frame["arm"] == f"CDP-{mode}") & (frame["seed"] == run["seed"])]
            if len(mine):
                row[f"CDP-{mode}_s"] = float(mine["wall_time_s"].iloc[0])
                row[f"CDP-{mode} / {ranking}"] = row[f"CDP-{mode}_s"] / row["pipeline_s"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("seed") if rows else pd.DataFrame()


def plot_evidence(records, comparisons=COMPARISONS, arms=None, confidence: float = 0.95, title: str = ""):
    """Two panels, accuracy per arm and paired differences: a point per seed, the mean and its t-interval.

    ``arms`` (default: every arm present) are the left panel's, ``comparisons`` the right panel's
    (those with no common seed are left out); ``title`` should say what the runs are. Returns the
    matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    frame = _frame(records)
    table = arm_table(frame, confidence)
    if arms is not None:
        table = table.set_index("arm").loc[[a for a in arms if a in set(table["arm"])]].reset_index()
    pairs = paired_differences(frame, comparisons, confidence).query("n > 0")
    colours = dict(zip(sorted(int(s) for s in frame["seed"].unique()), plt.cm.tab10.colors))
    by_arm = {arm: runs for arm, runs in frame.groupby("arm")}
    panels = [[(f"{r.arm}\nn = {r.n}", tuple(by_arm[r.arm]["seed"]), tuple(by_arm[r.arm]["accuracy_pct"]),
                r.accuracy_mean, r.ci_low, r.ci_high) for r in table.itertuples()],
              [(f"{r.a}\n−\n{r.b}\nn = {r.n}" + "\nholds (Holm)" * bool(r.holds_after_holm), r.seeds, r.differences,
                r.mean, r.ci_low, r.ci_high) for r in pairs.itertuples()]]
    width = max(12.0, 0.95 * (len(panels[0]) + len(panels[1])) + 2.5)  # room for every label
    fig, axes = plt.subplots(1, 2, figsize=(width, 4.4), gridspec_kw={"width_ratios": [len(p) + 1 for p in panels]})
    for ax, groups in zip(axes, panels):
        for i, (_, seeds, values, mean, low, high) in enumerate(groups):
            offsets = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else [0.0]
            ax.scatter([i + o for o in offsets], values, color=[colours[int(s)] for s in seeds], s=22, zorder=3)
            ax.hlines(mean, i - 0.25, i + 0.25, color="black", lw=2, zorder=4)
            if not math.isnan(low):
                ax.vlines(i + 0.3, low, high, color="black", lw=1, zorder=4)
        ax.set_xticks(range(len(groups)), [g[0] for g in groups], fontsize=7)
    axes[0].set(ylabel="test accuracy (%)", title="accuracy per arm")
    axes[1].axhline(0, color="gray", lw=1)
    if pairs.empty:
        axes[1].text(0.5, 0.5, "no comparison has a seed\nwith both of its runs yet", ha="center", va="center",
                     transform=axes[1].transAxes, fontsize=8)
    axes[1].set(ylabel="A − B, paired by seed (points)", title="paired differences")
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=f"seed {s}") for s, c in colours.items()]
    handles += [plt.Line2D([], [], color="black", lw=2, label="mean"),
                plt.Line2D([], [], color="black", lw=1, label=f"{confidence:.0%} t-interval of the mean (n ≥ 2),\n"
                           "unadjusted; 'holds (Holm)': survives\nHolm's correction over the panel")]
    axes[1].legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    if title:
        fig.suptitle(textwrap.fill(title, 160), fontsize=8)
    fig.tight_layout()
    return fig
