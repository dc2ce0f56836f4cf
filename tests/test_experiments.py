"""Sweeps and the command line, end to end on the fixture in the quick profile."""

import json
import runpy
import sys
from dataclasses import replace

import pandas as pd
import pytest

from cdp_tutorial import cli, profile
from cdp_tutorial.experiments import (ResultsStore, build_run_model, make_specs, paper_table, run_sweep,
                                      protocol_label, side_by_side, summarize)
from cdp_tutorial.models import build_model

TINY = ["--epochs", "1", "--train-size", "200", "--test-size", "100"]


def test_specs_cover_baseline_and_every_mode_per_seed():
    specs = make_specs("vgg16", ["PA", "flops", "ma"], [0.3], [0, 1], profile="quick")
    assert [(s.mode, s.seed) for s in specs] == [
        ("baseline", 0), ("PA", 0), ("FA", 0), ("MA", 0), ("baseline", 1), ("PA", 1), ("FA", 1), ("MA", 1)]
    assert len({s.key for s in specs}) == 8
    assert all(s.dataset == "fixture" and s.profile == "quick" and s.epochs == 3 for s in specs)
    uniform = make_specs("alexnet", ["PA"], [0.5], [0], profile="quick", baseline=False, uniform=True)
    assert [s.method for s in uniform] == ["cdp", "uniform"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(models="lenet"), "unknown model 'lenet'"),
    (dict(models="vgg16", modes=["speed"]), "unknown mode"),
    (dict(models="vgg16", targets=[1.2]), "strictly between 0 and 1"),
    (dict(models="vgg16", profile="huge"), "unknown profile"),
    (dict(models="vgg16", seeds=[], baseline=True), "the sweep is empty"),
])
def test_bad_sweeps_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_specs(**kwargs)


def test_labels_say_whether_a_result_follows_the_paper():
    paper = make_specs("vgg16", ["PA"], [0.3], [0], profile="paper", baseline=False)[0]
    assert protocol_label(paper).startswith("paper protocol")
    shortened = make_specs("vgg16", ["PA"], [0.3], [0], profile="paper", epochs=10, baseline=False)[0]
    assert "not the paper's protocol" in protocol_label(shortened)
    quick = make_specs("vgg16", ["PA"], [0.3], [0], profile="quick", baseline=False)[0]
    assert protocol_label(quick).startswith("quick profile (fixture, trained at x0.25 width")


def test_train_one_run_then_a_sweep_around_it_end_to_end_then_rerun_skips(tmp_path, capsys):
    out = tmp_path / "results"
    # `train` records one run ...
    assert cli.main(["train", "--model", "alexnet", "--mode", "FA", "--target", "0.5", "--seed", "0",
                     "--profile", "quick", *TINY, "--out", str(out)]) == 0
    store = ResultsStore(out)
    (record,) = store.records()
    assert record["mode"] == "FA" and record["planned_macs"] <= 0.5 * record["baseline_planned_macs"]
    capsys.readouterr()
    # ... and a sweep that lists it finds it, and trains only the other three
    argv = ["sweep", "--model", "alexnet", "--modes", "FA", "--targets", "0.5",
            "--seeds", "0", "1", "--profile", "quick", *TINY, "--out", str(out)]
    assert cli.main(argv) == 0
    records = store.records()
    assert records[0] == record
    assert len(records) == 4 and {r["mode"] for r in records} == {"baseline", "FA"}
    for r in records:
        assert 0 <= r["test_accuracy"] <= 1 and r["epochs_trained"] == 1
        assert "not the paper's protocol" in r["label"] and "Fashion-MNIST" in r["dataset_description"]
        assert "trained at x0.25 width" in r["label"] and r["width_multiplier"] == 0.25
        assert r["trained_macs"] < r["planned_macs"] / 10  # what was trained is narrow ...
        if r["mode"] != "baseline":
            assert r["planned_macs"] <= 0.5 * r["baseline_planned_macs"]  # ... the plan is full-size
            assert r["trained_macs"] < 0.6 * r["baseline_trained_macs"]  # and the narrow model follows it
        assert r["code_fingerprint"] and r["versions"]["cdp_tutorial"]  # which code produced it
    assert sorted(p.name for p in out.iterdir()) == ["results.jsonl", "runs"]  # no temporary files
    table = summarize(store.frame())
    assert list(table["mode"]) == ["baseline", "FA"] and (table.seeds == 2).all()
    assert table.loc[table["mode"] == "baseline", "accuracy_change_pts"].item() == 0
    printed = capsys.readouterr().out
    assert "1 of 4 runs already finished" in printed
    assert "± " in printed and "not the paper's protocol" in printed

    before = store.path.read_bytes()
    assert cli.main(argv) == 0
    assert "4 of 4 runs already finished" in capsys.readouterr().out  # and where: reused, not retrained
    assert store.path.read_bytes() == before  # nothing retrained, nothing rewritten

    assert cli.main(["summary", "--out", str(out), "--paper"]) == 0
    assert "arXiv:2208.12816" in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["PA", "FA", "MA"])
def test_quick_profile_trains_the_plan_at_a_quarter_width(mode):
    """Plans are made on the full-size model; the trained model keeps each planned width x0.25."""
    (spec,) = make_specs("vgg16", [mode], [0.3], [0], profile="quick", baseline=False)
    model, baseline, plan = build_run_model(spec, num_classes=10)
    own = {"PA": "params", "FA": "macs", "MA": "memory_bytes"}[mode]
    assert getattr(plan.final, own) <= 0.3 * getattr(baseline, own)  # the paper's budget, full size
    trained = {layer.name: layer.filters for layer in model.layers if hasattr(layer, "filters")}
    assert all(trained[name] == max(1, round(w * 0.25)) for name, w in plan.widths.items())
    # so the narrow pruned model is about as much smaller than the narrow baseline as the plan says
    narrow_baseline = getattr(profile(build_model("vgg16", width_multiplier=0.25)).totals, own)
    kept = getattr(profile(model).totals, own) / narrow_baseline
    assert abs(kept - getattr(plan.final, own) / getattr(baseline, own)) < 0.05


def test_width_multiplier_must_be_a_fraction():
    with pytest.raises(ValueError, match="width_multiplier must be > 0 and ≤ 1"):
        make_specs("vgg16", ["PA"], [0.3], [0], profile="quick", width_multiplier=2)


def test_side_by_side_puts_the_papers_numbers_next_to_ours():
    ours = summarize([_record("b", "cdp", "baseline", None, 0, 0.8, planned=(100, 100, 100)),
                      _record("p", "cdp", "PA", 0.3, 0, 0.75, planned=(30, 60, 50))])
    row = side_by_side(ours).iloc[0]
    assert row["ours: reduction %"] == 70.0 and row["ours: accuracy change (pts)"] == -5.0
    assert row["paper: reduction %"] == 84.25 and row["paper: accuracy change (pts)"] == 1.76
    assert "2208.12816" in row["paper: source"]
    assert len(paper_table()) == 12


def _record(key, method, mode, target, seed, accuracy, *, planned=None, trained=(100, 100, 100)):
    """A run record as the store holds it (complexities: params, MACs, memory bytes)."""
    record = dict(key=key, model="vgg16", dataset="fixture", profile="quick", label="quick", method=method,
                  mode=mode, target=target, seed=seed, test_accuracy=accuracy, step=0.1)
    for prefix, values, base in (("planned_", planned, (100, 100, 100)), ("trained_", trained, (100, 100, 100))):
        for quantity, value, b in zip(("params", "macs", "memory_bytes"), values or (None,) * 3, base):
            record[prefix + quantity] = value
            record["baseline_" + prefix + quantity] = b if values else None
    return record


def test_summary_compares_planned_with_planned_and_trained_with_trained():
    """A CDP row's plan is full-size, a ranking row's pruned model is narrow: columns keep them apart."""
    table = summarize([_record("b", "cdp", "baseline", None, 0, 0.8, planned=(100, 100, 100)),
                       _record("c", "cdp", "FA", 0.3, 0, 0.7, planned=(40, 30, 50), trained=(42, 31, 52)),
                       _record("l", "l1", "FA", 0.3, 0, 0.6, planned=None, trained=(45, 29, 55))])
    cdp, l1 = (table[(table.method == m) & (table["mode"] == "FA")].iloc[0] for m in ("cdp", "l1"))
    assert cdp.planned_reduction_pct == 70 and cdp.trained_reduction_pct == 69
    assert l1.trained_reduction_pct == 71 and l1.planned_reduction_pct != l1.planned_reduction_pct  # NaN: no plan


def test_summary_refuses_a_run_recorded_twice_or_two_runs_of_one_seed():
    run = _record("k", "cdp", "baseline", None, 0, 0.8, planned=(100, 100, 100))
    with pytest.raises(ValueError, match="recorded twice.*'k'"):
        summarize([run, run])
    with pytest.raises(ValueError, match="two runs of one seed"):
        summarize([run, {**run, "key": "k-from-other-code"}])


def test_every_field_of_a_spec_is_part_of_its_key():
    """A changed step, an exact target or a fine-tune setting is another run, never a finished one."""
    (spec,) = make_specs("vgg16", ["FA"], [0.3], [0], profile="quick", baseline=False)
    assert replace(spec, step=0.05).key != spec.key
    assert replace(spec, target=0.3000001).key != spec.key
    (ranking,) = make_specs("vgg16", ["FA"], [0.3], [0], profile="quick", baseline=False, methods=["l1"])
    assert replace(ranking, finetune="once").key != ranking.key
    assert replace(ranking, finetune_lr_scale=1.0).key != ranking.key
    assert spec.key == make_specs("vgg16", ["FA"], [0.3], [0], profile="quick", baseline=False)[0].key


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(epochs=0), ValueError, "epochs must be"),
    (dict(batch_size=0), ValueError, "batch_size must be"),
    (dict(train_size=0), ValueError, "train_size must be"),
    (dict(epochs=2.7), TypeError, "epochs must be an integer"),
    (dict(finetune="sometimes"), ValueError, "finetune must be one of"),
])
def test_an_explicit_zero_or_fraction_is_refused_not_replaced_by_the_default(kwargs, error, message):
    with pytest.raises(error, match=message):
        make_specs("vgg16", ["FA"], [0.3], [0], profile="quick", **kwargs)


def test_command_line_profile_and_plan(tmp_path, capsys, monkeypatch):
    # `python -m cdp_tutorial` as Python runs it (runpy), in this process: a fresh interpreter would import
    # TensorFlow again for seconds (test_cli.py starts one, for the checkpoint only a fresh one can show)
    monkeypatch.setattr(sys, "argv", ["cdp_tutorial", "profile", "--model", "vgg16"])
    with pytest.raises(SystemExit) as profiled:
        runpy.run_module("cdp_tutorial", run_name="__main__", alter_sys=True)
    assert profiled.value.code == 0 and "MACs 313,725,952" in capsys.readouterr().out
    plan_path = tmp_path / "plan.json"
    plan = ["plan", "--model", "vgg16", "--mode", "FA", "--target", "0.3", "--seed", "0", "--out", str(plan_path)]
    assert cli.main(plan) == 0 and json.loads(plan_path.read_text())["mode"] == "flops"
    assert cli.main(plan) == 2 and "overwrite" in capsys.readouterr().err
    assert cli.main(["plan", "--model", "vgg16", "--mode", "FA", "--target", "1.5"]) == 2
    assert "strictly between 0 and 1" in capsys.readouterr().err


# The Ray backend (real trials on a private local Ray instance) is tested in tests/test_ways_in.py.


def test_specs_list_every_method_with_its_rounds():
    specs = make_specs("vgg16", ["FA"], [0.3], [0], profile="quick", methods=["cdp", "uniform", "l1", "random", "pls"],
                       iterations=3)
    assert [(s.method, s.iterations) for s in specs] == [
        ("cdp", 1), ("cdp", 1), ("uniform", 1), ("l1", 3), ("random", 3), ("pls", 3)]  # first: the baseline
    assert len({s.key for s in specs}) == 6 and specs[-1].key.startswith("vgg16-fixture-FA-pls-t0.3-k3-rounds-")
    # the old spelling still makes the old runs (and the old keys, so finished runs are found)
    assert make_specs("vgg16", ["FA"], [0.3], [0], profile="quick", uniform=True) == specs[:3]
    with pytest.raises(ValueError, match="each method must be one of"):
        make_specs("vgg16", ["FA"], [0.3], [0], methods=["taylor"])
    with pytest.raises(ValueError, match="iterations"):
        make_specs("vgg16", ["FA"], [0.3], [0], methods=["pls"], iterations=0)


def test_pls_run_prunes_the_trained_baseline_and_sits_beside_published_pls(tmp_path):
    out = tmp_path / "results"
    specs = make_specs("vgg16", ["FA"], [0.3], [0], profile="quick", methods=["pls"], epochs=1,
                       train_size=200, test_size=100, width_multiplier=0.125)
    frame = run_sweep(specs, out, progress=False)
    baseline, pls = (frame[frame.method == m].iloc[0] for m in ("cdp", "pls"))
    # the sweep's baseline is trained once, and the ranking method prunes that very model
    assert not list((out / "runs").glob("*/stage0-train"))
    assert pls["stages"][0]["test_accuracy"] == baseline["test_accuracy"]
    assert pls["stages"][0]["wall_time_s"] == pytest.approx(baseline["wall_time_s"])  # still counted
    assert pls["trained_macs"] <= 0.3 * pls["baseline_trained_macs"]  # the budget, on the trained narrow models
    assert pd.isna(pls["planned_macs"]) and "x0.125 width" in pls["label"]  # no full-size plan exists
    assert [s["kind"] for s in pls["stages"]] == ["train", "prune+fine-tune"]
    assert pls["wall_time_s"] == pytest.approx(sum(s["wall_time_s"] for s in pls["stages"]))
    assert pls["epochs_trained"] == 2  # equal epochs per stage
    table = side_by_side(summarize(frame))
    row = table[table["method"] == "pls"].iloc[0]
    assert row["ours: reduction %"] >= 70
    assert "Jordao" in row["paper: source"] and row["paper: reduction %"] == 67.25  # the closest published
