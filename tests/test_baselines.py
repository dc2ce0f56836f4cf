"""Ranking plans and the train -> prune -> fine-tune pipeline, on tiny real models and the fixture."""

import json

import keras
import numpy as np
import pytest

from cdp_tutorial import apply_plan, profile
from cdp_tutorial.baselines import plan_by_ranking
from cdp_tutorial.prune_finetune import train_prune_finetune
from cdp_tutorial.data import load_dataset
from cdp_tutorial.importance import filter_scores

L = keras.layers


def tiny_cnn(name="tiny"):
    inputs = keras.Input((32, 32, 3))
    x = inputs
    for i, filters in enumerate((8, 12, 16)):
        x = L.Conv2D(filters, 3, padding="same", name=f"conv{i + 1}")(x)
        x = L.BatchNormalization(name=f"bn{i + 1}")(x)
        x = L.MaxPooling2D()(L.ReLU()(x))
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(10, activation="softmax", name="head")(x), name=name)


@pytest.fixture(scope="module")
def data():
    return load_dataset("fixture", train_size=200, test_size=100)


def test_global_ranking_removes_the_lowest_scores_of_the_whole_network():
    model = tiny_cnn()
    scores = {"conv1": np.arange(8.0), "conv2": np.arange(12.0) + 100, "conv3": np.arange(16.0) + 10}
    plan = plan_by_ranking(model, scores, scope="global", fraction=0.25)  # 9 of 36 filters go
    # the 9 lowest scores are conv1's eight and conv3's 10: conv1 keeps its best filter (never a
    # whole layer), so conv3's next lowest, 11, goes instead
    assert plan.widths == {"conv1": 1, "conv2": 12, "conv3": 14}
    small = apply_plan(model, plan, keep_weights=True, importance=scores)
    np.testing.assert_array_equal(small.get_layer("conv1").bias.numpy(), model.get_layer("conv1").bias.numpy()[7:])
    np.testing.assert_array_equal(small.get_layer("bn3").gamma.numpy(), model.get_layer("bn3").gamma.numpy()[2:])


def test_per_layer_ranking_prunes_every_layer_alike_and_meets_a_budget():
    model = tiny_cnn()
    scores = filter_scores(model, "l1")
    half = plan_by_ranking(model, scores, scope="per_layer", fraction=0.5)
    assert half.widths == {"conv1": 4, "conv2": 6, "conv3": 8}
    for mode, key in (("FA", "macs"), ("PA", "params"), ("MA", "memory_bytes")):
        plan = plan_by_ranking(model, scores, scope="per_layer", mode=mode, target=0.4, method="l1")
        assert " l1 (" in plan.summary()  # a ranking plan says which criterion made it
        small = apply_plan(model, plan, keep_weights=True, importance=scores)
        assert getattr(profile(small).totals, key) <= 0.4 * getattr(profile(model).totals, key)


@pytest.mark.parametrize("kwargs, message", [
    (dict(scope="somewhere", fraction=0.5), "scope must be one of"),
    (dict(), "exactly one of fraction"),
    (dict(fraction=0.5, target=0.5), "exactly one of fraction"),
    (dict(fraction=1.5), "fraction"),
    (dict(target=1e-6), "out of reach"),
])
def test_bad_ranking_requests(kwargs, message):
    model = tiny_cnn()
    with pytest.raises(ValueError, match=message):
        plan_by_ranking(model, filter_scores(model, "l1"), **kwargs)


def test_scores_must_match_the_model():
    model = tiny_cnn()
    with pytest.raises(ValueError, match="no scores for prunable conv 'conv2'"):
        plan_by_ranking(model, {"conv1": np.ones(8), "conv3": np.ones(16)}, fraction=0.5)
    with pytest.raises(ValueError, match="must be 8 finite numbers"):
        plan_by_ranking(model, {"conv1": np.ones(5), "conv2": np.ones(12), "conv3": np.ones(16)}, fraction=0.5)


PLS_PIPELINE = dict(criterion="pls", mode="FA", target=0.5, iterations=2, epochs=1, batch_size=64, samples=200)


@pytest.fixture(scope="module")
def pls_pipeline(tmp_path_factory, data):
    """``(result, run_dir)``: one PLS pipeline (train, then two prune+fine-tune rounds), shared read-only."""
    run_dir = tmp_path_factory.mktemp("pls-pipeline")
    keras.utils.set_random_seed(0)
    return train_prune_finetune(tiny_cnn(), data, run_dir=run_dir, **PLS_PIPELINE), run_dir


def test_pipeline_meets_the_budget_records_every_stage_and_resumes(pls_pipeline, data):
    result, run_dir = pls_pipeline
    assert [s["kind"] for s in result.stages] == ["train", "prune+fine-tune", "prune+fine-tune"]
    base_macs = result.stages[0]["macs"]
    assert result.stages[1]["macs"] <= 0.5 ** 0.5 * base_macs < result.stages[0]["macs"]
    assert result.stages[2]["macs"] <= 0.5 * base_macs
    assert profile(result.model).totals.macs == result.stages[2]["macs"]
    assert result.wall_time_s == pytest.approx(sum(s["wall_time_s"] for s in result.stages))
    assert all(s["train_time_s"] > 0 for s in result.stages)
    saved = json.loads((run_dir / "stage2.json").read_text())
    assert saved["plan"]["method"] == "pls" and saved["pruned_accuracy"] == result.stages[2]["pruned_accuracy"]
    # the fine-tunes train at a tenth of the recipe's learning rate, without warm-up
    tuned = json.loads((run_dir / "stage1-finetune" / "config.json").read_text())["recipe"]
    assert tuned["learning_rate"] == pytest.approx(1e-4) and tuned["name"] == "paper-finetune"
    # a second call with the same run folder reads every stage back: same model, same numbers, no training
    keras.utils.set_random_seed(0)
    again = train_prune_finetune(tiny_cnn(), data, run_dir=run_dir, **PLS_PIPELINE)
    assert again.stages == result.stages
    np.testing.assert_array_equal(again.model.get_layer("conv3").kernel.numpy(),
                                  result.model.get_layer("conv3").kernel.numpy())


@pytest.mark.parametrize("kwargs, message", [
    (dict(criterion="taylor"), "criterion must be one of"),
    (dict(target=0), "target"),
    (dict(iterations=0), "iterations"),
    (dict(criterion="pls", samples=5), "more samples than classes"),
])
def test_bad_pipelines_fail_before_training(tmp_path, data, kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_prune_finetune(tiny_cnn(), data, run_dir=tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())  # nothing was trained


def test_a_model_without_conv_is_refused(data):
    dense = keras.Sequential([keras.Input((32, 32, 3)), L.Flatten(), L.Dense(10, activation="softmax")])
    with pytest.raises(ValueError, match="no prunable conv"):
        train_prune_finetune(dense, data)


def test_docstring_examples_run():
    import doctest

    from cdp_tutorial import baselines

    result = doctest.testmod(baselines)
    assert result.attempted > 0 and result.failed == 0


def test_the_papers_schedule_prunes_k_times_then_fine_tunes_once(tmp_path, data, pls_pipeline):
    """§4.4.1: 'fine-tuning the pruned model after 10 iterations' (here K = 2).

    It prunes the baseline the PLS pipeline trained (``baseline_dir``), as a sweep's methods share theirs.
    """
    pls, pls_dir = pls_pipeline
    keras.utils.set_random_seed(0)
    result = train_prune_finetune(tiny_cnn(), data, criterion="l1", scope="per_layer", mode="FA", target=0.5,
                                  iterations=2, epochs=1, batch_size=64, run_dir=tmp_path, schedule="once",
                                  baseline_dir=pls_dir / "stage0-train")
    assert [s["kind"] for s in result.stages] == ["train", "prune", "prune, then fine-tune"]
    assert result.stages[0]["test_accuracy"] == pls.stages[0]["test_accuracy"]  # that baseline, not another
    assert result.stages[1]["test_accuracy"] is None and result.stages[1]["epochs"] == 0
    assert result.stages[2]["epochs"] == 1 and result.stages[2]["macs"] <= 0.5 * result.stages[0]["macs"]
    assert sorted(p.name for p in tmp_path.glob("stage*-*")) == ["stage2-finetune"]  # no folder for a bare prune


def test_a_run_folder_is_never_reused_for_another_pipeline(pls_pipeline, data):
    """Asking for another target or criterion in the same folder is refused, naming what differs."""
    _, run_dir = pls_pipeline
    files = sorted((p.relative_to(run_dir), p.stat().st_mtime_ns) for p in run_dir.rglob("*"))
    keras.utils.set_random_seed(0)
    with pytest.raises(ValueError, match=r"(?s)another pipeline.*criterion: \"pls\" \(stored\) vs \"random\".*target"):
        train_prune_finetune(tiny_cnn(), data, criterion="random", scope="per_layer", mode="FA", target=0.2,
                             epochs=1, batch_size=64, run_dir=run_dir)
    assert sorted((p.relative_to(run_dir), p.stat().st_mtime_ns) for p in run_dir.rglob("*")) == files  # untouched


def test_stages_say_whether_they_collapsed(pls_pipeline):
    """A stage at or below twice chance is marked, so a sweep can show it (chance is 10 % here)."""
    result, _ = pls_pipeline
    for stage in result.stages:
        assert stage["collapsed"] == (stage["test_accuracy"] <= 0.2)
    assert result.collapsed_stages == [s["stage"] for s in result.stages if s["test_accuracy"] <= 0.2]
