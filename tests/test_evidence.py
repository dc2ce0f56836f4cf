"""The evidence module: tables, paired differences, t-intervals and verdicts, checked by hand.

The record sets are written by each test into a results store (as a sweep writes them), with
accuracies chosen so that every mean, standard deviation and interval can be worked out on paper;
the t quantiles are taken from a printed table, not from scipy. The last tests read the committed
evidence and check what any state of the sweep must satisfy (no number of the real sweep is
written here).
"""

import json
import math

import matplotlib
import pandas as pd
import pytest
from matplotlib.collections import PathCollection

from cdp_tutorial.evidence import (COMPARISONS, EXPECTED_ARMS, arm_table, completeness, describe, load_evidence,
                                   paired_differences, plot_evidence, training_cost, verdict)
from cdp_tutorial.results import ResultsStore, summarize

matplotlib.use("Agg")
T_975 = {1: 12.7062, 2: 4.3027, 3: 3.1824}  # Student's t, 97.5th percentile, by degrees of freedom


def run(method, mode, seed, accuracy, **extra):
    """A run record with the fields a sweep writes that these functions read."""
    return {"key": f"vgg16-{method}-{mode}-s{seed}", "model": "vgg16", "dataset": "fashion_mnist",
            "profile": "evidence", "method": method, "mode": mode, "seed": seed,
            "target": None if mode == "baseline" else 0.3, "test_accuracy": accuracy, "collapsed": accuracy <= 0.2,
            "label": "evidence profile (test records)", "wall_time_s": 100.0, **extra}


@pytest.fixture
def store(tmp_path):
    return ResultsStore(tmp_path / "evidence")


def write(store, records):
    for record in records:
        store.append(record)
    return store.path


def test_arm_table_gives_n_mean_std_and_the_t_interval_of_the_mean(store):
    path = write(store, [run("cdp", "FA", s, a) for s, a in [(0, 0.80), (1, 0.82), (2, 0.87)]]
                 + [run("cdp", "baseline", 0, 0.90)])
    table = arm_table(load_evidence(path)).set_index("arm")

    fa = table.loc["CDP-FA"]
    # mean 83; deviations -3, -1, +4: variance (9 + 1 + 16) / 2 = 13
    assert fa["n"] == 3 and fa["seeds"] == (0, 1, 2)
    assert fa["accuracy_mean"] == pytest.approx(83.0)
    assert fa["accuracy_std"] == pytest.approx(math.sqrt(13))
    half = T_975[2] * math.sqrt(13) / math.sqrt(3)
    assert (fa["ci_low"], fa["ci_high"]) == pytest.approx((83 - half, 83 + half), abs=1e-3)
    assert list(table.index) == ["baseline", "CDP-FA"]  # the sweep's order, baseline first

    one = table.loc["baseline"]  # one seed: a mean, no spread, no interval
    assert one["n"] == 1 and one["accuracy_mean"] == pytest.approx(90.0)
    assert math.isnan(one["accuracy_std"]) and math.isnan(one["ci_low"])


def test_reductions_are_of_each_modes_own_complexity_planned_or_else_trained():
    records = [run("cdp", "FA", 0, 0.8, planned_macs=30, baseline_planned_macs=100),
               run("cdp", "PA", 0, 0.8, planned_params=25, baseline_planned_params=100),
               run("l1", "FA", 0, 0.8, planned_macs=None, baseline_planned_macs=None,
                   trained_macs=28, baseline_trained_macs=100)]
    reduction = arm_table(records).set_index("arm")["reduction_pct"]
    assert reduction.to_dict() == pytest.approx({"CDP-PA": 75.0, "CDP-FA": 70.0, "L1-FA": 72.0})


def test_paired_differences_pair_by_seed_and_use_only_seeds_both_arms_have(store):
    path = write(store, [run("cdp", "FA", s, a) for s, a in [(0, 0.80), (1, 0.82), (2, 0.84)]]
                 + [run("uniform", "FA", s, a) for s, a in [(0, 0.79), (2, 0.80)]])
    row = paired_differences(load_evidence(path), [("CDP-FA", "uniform-FA")]).iloc[0]

    assert row["comparison"] == "CDP-FA − uniform-FA"
    assert row["n"] == 2 and row["seeds"] == (0, 2)  # seed 1 has no uniform run: not paired
    assert row["differences"] == pytest.approx((1.0, 4.0))
    # mean 2.5, std of (1, 4) = 3 / sqrt(2); half width = t(1) x std / sqrt(2) = t(1) x 1.5
    assert row["mean"] == pytest.approx(2.5) and row["std"] == pytest.approx(3 / math.sqrt(2))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((2.5 - 1.5 * T_975[1], 2.5 + 1.5 * T_975[1]), abs=1e-3)
    assert row["same_sign"] and not row["excludes_zero"]


def test_an_interval_that_excludes_zero_and_the_verdict_that_says_so_either_way():
    # uniform better by 2, 3, 4 points: mean -3, std 1, half width 4.3027 / sqrt(3) = 2.484
    records = ([run("cdp", "PA", s, a) for s, a in [(0, 0.70), (1, 0.70), (2, 0.70)]]
               + [run("uniform", "PA", s, a) for s, a in [(0, 0.72), (1, 0.73), (2, 0.74)]])
    row = paired_differences(records, [("CDP-PA", "uniform-PA")]).iloc[0]
    assert row["mean"] == pytest.approx(-3.0)
    assert row["ci_high"] == pytest.approx(-3.0 + T_975[2] / math.sqrt(3), abs=1e-3)
    assert row["excludes_zero"] and row["same_sign"]
    text = verdict(row)
    assert text.startswith("uniform-PA is more accurate than CDP-PA by 3.0 points")
    assert "interval of uniform-PA − CDP-PA: +0.5 to +5.5" in text  # the sign follows the sentence
    assert "n = 3 seeds" in text and "ncomplete" not in text


def test_verdicts_for_no_difference_shown_for_one_seed_and_for_none():
    records = ([run("cdp", "FA", s, a) for s, a in [(0, 0.80), (1, 0.83)]]
               + [run("l1", "FA", s, a) for s, a in [(0, 0.81), (1, 0.81)]] + [run("random", "FA", 0, 0.79)])
    rows = paired_differences(records, [("CDP-FA", "L1-FA"), ("CDP-FA", "random-FA"), ("CDP-FA", "PLS-FA")])
    shown = rows.set_index("comparison")

    two = shown.loc["CDP-FA − L1-FA"]  # -1 and +2 points: the interval includes 0
    assert not two["excludes_zero"] and not two["same_sign"]
    assert "show no difference either way" in verdict(two) and "Incomplete evidence: 2 of at least 3" in verdict(two)
    one = shown.loc["CDP-FA − random-FA"]
    assert one["n"] == 1 and math.isnan(one["ci_low"]) and not one["excludes_zero"]
    assert "one seed gives no interval" in verdict(one)
    assert not one["same_sign"]  # one seed's difference has no sign to agree with
    none = shown.loc["CDP-FA − PLS-FA"]
    assert none["n"] == 0 and "no seed has both runs yet" in verdict(none)
    assert "cdp-tutorial sweep" in verdict(none)  # the form a pip install can run, not only the script


def test_completeness_counts_runs_per_seed_against_the_sweeps_arms():
    records = [run("cdp", "baseline", 0, 0.9), run("cdp", "FA", 0, 0.9), run("cdp", "FA", 1, 0.9)]
    text = completeness(records)
    assert text.startswith(f"evidence: 3 of {3 * len(EXPECTED_ARMS)} runs finished")
    assert "seed 0: 2 of 10 arms; seed 1: 1 of 10 arms; seed 2: 0 of 10 arms" in text and "incomplete" in text
    method = {"CDP": "cdp", "uniform": "uniform", "L1": "l1", "random": "random", "PLS": "pls"}
    everything = [run("cdp", "baseline", s, 0.9) if arm == "baseline" else
                  run(method[arm.split("-")[0]], arm.split("-")[1], s, 0.9) for arm in EXPECTED_ARMS for s in (0, 1, 2)]
    assert completeness(everything).endswith(": complete")


def test_training_cost_is_table_5_from_the_stages_of_the_pipeline():
    stages = [{"stage": 0, "kind": "train", "score_time_s": 0.0, "prune_time_s": 0.0, "train_time_s": 600.0},
              {"stage": 1, "kind": "prune", "score_time_s": 5.0, "prune_time_s": 2.0, "train_time_s": 0.0},
              {"stage": 2, "kind": "prune, then fine-tune", "score_time_s": 4.0, "prune_time_s": 1.0,
               "train_time_s": 388.0}]
    records = [run("pls", "FA", 0, 0.85, stages=stages, wall_time_s=1000.0),
               run("cdp", "FA", 0, 0.86, wall_time_s=400.0), run("cdp", "MA", 0, 0.86, wall_time_s=500.0)]
    table = training_cost(records)
    row = table.loc[0]
    assert (row["baseline_s"], row["score_s"], row["prune_s"], row["finetune_s"], row["pipeline_s"]) == (
        600.0, 9.0, 3.0, 388.0, 1000.0)
    assert row["CDP-FA / PLS-FA"] == pytest.approx(0.4) and row["CDP-MA / PLS-FA"] == pytest.approx(0.5)
    assert "CDP-PA_s" not in table  # no PA run: no PA column
    assert training_cost([run("cdp", "FA", 0, 0.86)]).empty


def test_describe_labels_data_model_epochs_seeds_and_speed():
    records = [run("cdp", "baseline", s, 0.9, width_multiplier=0.25, epochs=10, recipe="modern", batch_size=128,
                   dataset_description="Fashion-MNIST: 20,000/10,000 images", images_per_second=v)
               for s, v in [(0, 300.0), (1, 320.0), (2, 340.0)]]
    text = describe(records)
    assert text.startswith("vgg16 trained at x0.25 width, 10 epochs, modern recipe, batch 128")
    assert "training seeds 0, 1, 2" in text and "320 images/s" in text and text.endswith("not the paper's protocol")


def test_the_figure_has_a_point_per_seed_and_says_n():
    records = ([run("cdp", "FA", s, 0.8 + s / 100) for s in (0, 1, 2)]
               + [run("uniform", "FA", s, 0.8) for s in (0, 1)])
    fig = plot_evidence(records, comparisons=[("CDP-FA", "uniform-FA"), ("CDP-FA", "L1-FA")], title="test records")
    left, right = fig.axes[:2]
    assert [t.get_text() for t in left.get_xticklabels()] == ["CDP-FA\nn = 3", "uniform-FA\nn = 2"]
    assert [t.get_text() for t in right.get_xticklabels()] == ["CDP-FA\n−\nuniform-FA\nn = 2"]  # no L1 run: left out
    assert sum(len(c.get_offsets()) for c in left.collections if isinstance(c, PathCollection)) == 5  # 3 + 2 seeds
    assert fig._suptitle.get_text() == "test records"
    alone = plot_evidence([run("cdp", "FA", 0, 0.8)], comparisons=[("CDP-FA", "uniform-FA")])
    assert [t.get_text() for t in alone.axes[1].texts] == ["no comparison has a seed\nwith both of its runs yet"]


def test_the_figure_marks_the_differences_that_hold_after_holm():
    records = ([run("cdp", "FA", s, a) for s, a in [(0, 0.800), (1, 0.810), (2, 0.820)]]
               + [run("l1", "FA", s, a) for s, a in [(0, 0.810), (1, 0.8205), (2, 0.8295)]]     # +1.0, +1.05, +0.95
               + [run("random", "FA", s, a) for s, a in [(0, 0.790), (1, 0.812), (2, 0.820)]])  # -1, +0.2, 0
    fig = plot_evidence(records, comparisons=[("L1-FA", "CDP-FA"), ("random-FA", "CDP-FA")])
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == [
        "L1-FA\n−\nCDP-FA\nn = 3\nholds (Holm)", "random-FA\n−\nCDP-FA\nn = 3"]
    assert "unadjusted" in " ".join(t.get_text() for t in fig.axes[1].get_legend().get_texts())


def test_bad_input_is_refused_with_what_was_wrong(store, tmp_path):
    with pytest.raises(FileNotFoundError, match="python scripts/evidence_sweep.py"):
        load_evidence(tmp_path / "nowhere.jsonl")
    twice = write(store, [run("cdp", "FA", 0, 0.8), {**run("cdp", "FA", 0, 0.81), "key": "other-code"}])
    with pytest.raises(ValueError, match="share an arm and a seed"):
        load_evidence(twice)
    with pytest.raises(ValueError, match="mixes profiles"):
        arm_table([run("cdp", "FA", 0, 0.8), {**run("cdp", "PA", 0, 0.8), "profile": "quick"}])
    with pytest.raises(ValueError, match="unknown arm 'CDP-XA'"):
        paired_differences([run("cdp", "FA", 0, 0.8)], [("CDP-XA", "uniform-FA")])
    with pytest.raises(ValueError, match="pair of arms"):
        paired_differences([run("cdp", "FA", 0, 0.8)], ["CDP-FA"])
    with pytest.raises(ValueError, match="confidence"):
        arm_table([run("cdp", "FA", 0, 0.8)], confidence=95)
    with pytest.raises(ValueError, match="lack"):
        arm_table([{"key": "k", "method": "cdp", "mode": "FA", "seed": 0}])
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text('{"key": "a"}\nnot json\n')
    with pytest.raises(ValueError, match="damaged.jsonl:2"):
        load_evidence(damaged)


def test_an_environment_variable_points_at_another_copy_of_the_records(store, monkeypatch):
    path = write(store, [run("cdp", "baseline", 0, 0.9), run("cdp", "FA", 0, 0.88)])
    monkeypatch.setenv("CDP_EVIDENCE_FILE", str(path))
    assert list(load_evidence()["arm"]) == ["baseline", "CDP-FA"]


# ---------------------------------------------------------------------------------- the committed evidence
def test_the_committed_evidence_is_evidence_scale_and_ships_with_the_package(monkeypatch):
    monkeypatch.delenv("CDP_EVIDENCE_FILE", raising=False)
    records = load_evidence()  # data/results/evidence/results.jsonl, from the checkout or the wheel
    assert len(records) >= 1
    assert set(records["profile"]) == {"evidence"} and set(records["dataset"]) == {"fashion_mnist"}
    assert (records["train_size"] >= 20000).all() and records["test_size"].isna().all()  # all 10,000 test images
    assert (records["epochs"] >= 10).all()
    assert set(records["arm"]) <= set(EXPECTED_ARMS)
    assert not records["collapsed"].any(), "a run or a fine-tune stage of the evidence collapsed"
    assert {a for pair in COMPARISONS for a in pair} <= set(EXPECTED_ARMS)


def test_the_committed_summary_is_the_summary_of_the_committed_evidence():
    """data/results/summaries.csv is `cdp-tutorial summary` of the evidence: regenerate it with the records."""
    from cdp_tutorial.data import repository_file

    committed = pd.read_csv(repository_file("data/results/summaries.csv"))
    fresh = summarize(ResultsStore(repository_file("data/results/evidence")).records())
    assert len(committed) == len(fresh), ("regenerate data/results/summaries.csv (data/results/README.md gives "
                                          "the command)")
    assert list(committed["seeds"]) == list(fresh["seeds"])
    assert committed["accuracy_mean"].to_numpy() == pytest.approx(fresh["accuracy_mean"].to_numpy())


def test_what_the_readmes_say_the_committed_evidence_shows_is_what_it_shows(monkeypatch):
    """README.md and data/results/evidence/README.md summarise notebooks 04's and 05's verdicts: keep them true."""
    from pathlib import Path

    monkeypatch.delenv("CDP_EVIDENCE_FILE", raising=False)
    records = load_evidence()
    assert completeness(records).endswith(": complete")  # "all 30 runs have finished"
    modes = paired_differences(records, [("CDP-PA", "uniform-PA"), ("CDP-FA", "uniform-FA"), ("CDP-MA", "uniform-MA"),
                                         ("CDP-PA", "baseline"), ("CDP-FA", "baseline"), ("CDP-MA", "baseline")])
    methods = paired_differences(records, [("CDP-FA", "uniform-FA"), ("CDP-FA", "L1-FA"), ("CDP-FA", "random-FA"),
                                           ("CDP-FA", "PLS-FA"), ("L1-FA", "random-FA"), ("PLS-FA", "L1-FA")])
    shown = {row.comparison: (row.excludes_zero, row.holds_after_holm) for row in modes.itertuples()}
    shown.update({f"{row.comparison} (05)": (row.excludes_zero, row.holds_after_holm) for row in methods.itertuples()})
    assert shown["CDP-FA − uniform-FA"] == (False, False) and shown["CDP-PA − uniform-PA"] == (False, False)
    assert shown["CDP-MA − uniform-MA"] == (True, False) and shown["CDP-FA − baseline"] == (True, True)
    assert shown["CDP-FA − L1-FA (05)"] == shown["CDP-FA − random-FA (05)"] == (True, False)
    assert shown["CDP-FA − PLS-FA (05)"] == (False, False)
    readme = Path(__file__).resolve().parents[1] / "README.md"
    assert "all 30 runs have finished" in readme.read_text(encoding="utf-8")
    # the numbers both READMEs and the notebooks' recaps quote
    ma, l1, rand = modes.iloc[2], methods.iloc[1], methods.iloc[2]
    assert (f"{ma.p_value:.3f}", f"{ma.holm_threshold:.3f}") == ("0.011", "0.010")  # missed by a hair
    assert (f"{l1.p_value:.3f}", f"{rand.p_value:.3f}") == ("0.011", "0.014")
    assert (f"{l1.holm_threshold:.3f}", f"{rand.holm_threshold:.3f}") == ("0.008", "0.010")
    assert f"{modes.iloc[4].p_value:.3f}" == "0.002"
    # ... and the family matters: CDP-FA against each other method alone keeps both, as the evidence README says
    alone = paired_differences(records, [pair for pair in COMPARISONS[3:6]] + [("CDP-FA", "uniform-FA")])
    assert alone.holds_after_holm.tolist() == [True, True, False, False]
    macs = records.groupby("arm").trained_macs.mean()
    ratio = {mode: macs[f"CDP-{mode}"] / macs[f"uniform-{mode}"] for mode in ("PA", "FA", "MA")}
    assert (f"{ratio['PA']:.2f}", f"{ratio['FA']:.2f}", f"{ratio['MA']:.2f}") == ("2.06", "0.98", "1.92")
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    recaps = {name: next("".join(c["source"]) for c in json.loads((notebooks / name).read_text(encoding="utf-8"))["cells"]
                         if "".join(c["source"]).startswith("## Recap"))
              for name in ("04_training_pruned_models.ipynb", "05_baselines_and_training_cost.ipynb")}
    assert ("no CDP-vs-uniform difference holds after Holm's correction. CDP-MA's +0.8 points over uniform-MA excludes "
            "0 on its own (p = 0.011, its Holm threshold 0.010)") in recaps["04_training_pruned_models.ipynb"]
    assert ("no method difference holds after Holm's correction over the notebook's six comparisons. L1 and random were "
            "about 1 point above CDP-FA (p = 0.011 and 0.014)") in recaps["05_baselines_and_training_cost.ipynb"]
