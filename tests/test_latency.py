"""Latency-aware pruning: a measured LiteRT latency table, and Algorithm 1's mode LA priced by it.

The table fixture is measured for real on this machine (a tiny two-conv model: eight single-block
LiteRT files timed in TensorFlow-free processes, and two whole models for the correction), so
every test below uses real interpreters; only the lookup-rule test uses hand-written numbers.
"""

import json
import re
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

import cdp_tutorial as cdp
from cdp_tutorial.complexity import CostModel
from cdp_tutorial.graph import analyse
from cdp_tutorial.latency import BlockEntry, LatencyTable, LatencyTableWarning, Timing, measure_latency_table
from cdp_tutorial.latency.blocks import build_block, find_blocks
from cdp_tutorial.pruning import PruningProblem

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted((ROOT / "data" / "latency").glob("*.json"))
# Exporting a file costs about a second of converter time, timing a tiny one milliseconds: the tests
# keep the exports few and time each file generously, by the thread's CPU clock (the package's setting
# for a busy shared machine), so that a narrow block measures faster than a wide one even under load.
FAST = Timing(threads=1, clock="thread", warmup=3, repeats=15, rounds=2, processes=1)


def tiny(name="tiny", kernel=3, width=16):
    """conv_a (16) + BN + ReLU, conv_b (width) + ReLU + max-pool, flatten, a 10-class dense head."""
    x = inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(16, kernel, padding="same", name="conv_a")(x)
    x = keras.layers.BatchNormalization(name="bn_a")(x)
    x = keras.layers.ReLU(name="relu_a")(x)
    x = keras.layers.Conv2D(width, 3, padding="same", name="conv_b")(x)
    x = keras.layers.ReLU(name="relu_b")(x)
    x = keras.layers.MaxPooling2D(2, name="pool_b")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name=name)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The folder the table's LiteRT files are kept in (named by content: a partial table reuses them)."""
    return tmp_path_factory.mktemp("latency-files")


@pytest.fixture(scope="module")
def table(exported):
    # output step 8: each conv keeps two measured widths (8, 16), so pruning either lowers the prediction
    # (at step 16 conv_a had one, and timing noise then hid what pruning conv_b alone saved)
    return measure_latency_table(tiny(), timing=FAST, out_step=8, in_points=2, calibration=2, folder=exported)


def reachable_share(table, model, **options):
    """A share of ``model``'s predicted latency that LA can always reach on ``table``: halfway from the floor to 1.

    The floor (every prunable layer at its fewest filters) is the table's fixed costs over its whole prediction;
    a table measured on a loaded machine can carry a large fitted intercept, so a fixed share such as 0.8 may
    lie below it (the planner then refuses, rightly).
    """
    problem = PruningProblem(model, latency_table=table, **options)
    floor = problem.total(problem.minimum_widths(), "latency") / problem.total(problem.baseline_widths, "latency")
    assert floor < 1, "pruning must save some predicted latency on this table"
    return (1 + floor) / 2


def test_blocks_are_a_conv_with_what_litert_fuses_to_it_and_equal_configurations_share_a_key():
    graph = analyse(cdp.models.vgg16())
    blocks = {b.layer: b for b in find_blocks(graph, CostModel(graph))}
    assert blocks["conv2"].followers == ("bn2", "relu2", "pool1")
    assert blocks["conv5"].key == blocks["conv6"].key != blocks["conv7"].key  # conv7 is followed by a pool
    assert (blocks["conv1"].in_kind, blocks["conv1"].out_kind) == ("fixed", "free")  # 3 image channels
    assert blocks["predictions"].out_kind == "fixed"
    assert build_block(blocks["conv7"].key, 40, 24).output.shape == (1, 4, 4, 24)


def test_a_table_measures_every_block_on_its_width_grid_in_processes_without_tensorflow(table):
    grids = {e.description: (e.in_widths, e.out_widths) for e in table.entries.values()}
    assert grids == {"Conv2D 3x3 @16x16 + BatchNormalization + ReLU": ([3], [8, 16]),
                     "Conv2D 3x3 @16x16 + ReLU + MaxPooling2D 2x2": ([8, 16], [8, 16]),
                     "Dense": ([8, 8 * 8 * 16], [10])}
    assert all(np.all(e.ms > 0) for e in table.entries.values())
    assert table.settings["threads"] == 1 and table.settings["litert_timed_with"]
    assert table.settings["timer_imported_tensorflow"] is False  # timed apart from the exporting process
    assert {"cpu_model", "logical_cores", "ai_edge_litert"} <= table.device.keys()
    assert [row["name"] for row in table.correction["calibration"]] == ["baseline", "uniform-flops-0.5"]


def test_prediction_is_the_block_sum_plus_the_fitted_correction(table):
    model = tiny()
    parts = table.breakdown(model)
    fit = table.correction
    weight_mb = model.count_params() * 4 / 2**20  # BN's moving statistics are weights LiteRT folds in too
    expected = fit["blocks_scale"] * parts.ms.sum() + fit["intercept_ms"] + fit["ms_per_weight_mb"] * weight_mb
    assert table.predict_ms(model) == pytest.approx(expected, rel=1e-6)
    assert list(parts.how) == ["measured"] * 3


def test_widths_between_measured_ones_are_interpolated_along_inputs_and_rounded_up_along_outputs():
    entry = BlockEntry("k", "a block", in_widths=[16, 32], out_widths=[16, 32],
                       ms=np.array([[1.0, 2.0], [3.0, 4.0]]), spread=np.zeros((2, 2)))
    assert entry.lookup(16, 16) == (1.0, "measured")
    assert entry.lookup(24, 32) == (3.0, "input 24 interpolated from 16 and 32")
    assert entry.lookup(16, 17) == (2.0, "output 17 rounded up to 32")
    with pytest.raises(ValueError, match="at most 32"):
        entry.lookup(16, 40, "conv9")


def test_a_pruned_model_is_predicted_from_the_same_table_and_says_how(table):
    narrow = tiny(width=12)
    how = table.breakdown(narrow).set_index("layer").how
    assert how["conv_b"] == "output 12 rounded up to 16"
    assert how["head"] == f"input {8 * 8 * 12} interpolated from 8 and {8 * 8 * 16}"
    assert 0 < table.predict_ms(narrow)


def test_save_and_load_give_the_same_table_and_predictions(table, tmp_path):
    path = table.save(tmp_path / "table.json")
    again = LatencyTable.load(path)
    assert again.predict_ms(tiny()) == pytest.approx(table.predict_ms(tiny()), rel=1e-4)
    assert json.loads(path.read_text())["device"]["cpu_model"] == table.device["cpu_model"]
    with pytest.raises(FileExistsError):
        table.save(path)


def test_mode_LA_meets_a_fraction_of_the_predicted_latency_and_honours_round_to(table):
    model = tiny()
    share = reachable_share(table, model, round_to=8)
    plan = cdp.plan_pruning(model, "LA", target=share, latency_table=table, seed=0, round_to=8)
    assert plan.mode == "latency"
    assert plan.latency["final_ms"] <= share * plan.latency["baseline_ms"] + 1e-9
    assert plan.latency["baseline_ms"] == pytest.approx(table.predict_ms(model), rel=1e-6)
    assert all(w % 8 == 0 for w in plan.widths.values())
    assert "ms predicted" in plan.summary()
    pruned = cdp.apply_plan(model, plan)
    assert table.predict_ms(pruned) == pytest.approx(plan.latency["final_ms"], rel=1e-3)


def test_an_absolute_budget_in_milliseconds_and_the_uniform_plan_at_it(table):
    model = tiny()
    budget = reachable_share(table, model) * table.predict_ms(model)
    plan = cdp.plan_pruning(model, "LA", latency_ms=budget, latency_table=table, seed=1)
    uniform = cdp.plan_uniform(model, "LA", latency_ms=budget, latency_table=table)
    assert plan.latency["final_ms"] <= budget and uniform.latency["final_ms"] <= budget
    assert plan.target is None and plan.budget == pytest.approx(budget)


def test_sampling_weights_in_mode_LA_are_each_blocks_share_of_the_block_sum(table):
    model = tiny()
    weights = cdp.layer_weights(model, "LA", latency_table=table)
    block_ms = table.breakdown(model).set_index("layer").ms
    shares = block_ms[["conv_a", "conv_b"]] / block_ms[["conv_a", "conv_b"]].sum()
    assert list(weights.index) == ["conv_a", "conv_b"]
    assert np.allclose(weights.values, shares.values)


def test_a_saved_LA_plan_loads_with_its_predicted_latency(table, tmp_path):
    plan = cdp.plan_pruning(tiny(), "LA", target=reachable_share(table, tiny()), latency_table=table, seed=0)
    again = cdp.PruningPlan.load(plan.save(tmp_path / "plan.json"))
    assert again.latency == plan.latency and again.summary() == plan.summary()


@pytest.mark.parametrize("kwargs, match", [
    (dict(mode="LA", target=0.5), "latency table"),
    (dict(mode="FA", target=0.5, latency_table="table"), "mode 'LA' only"),
    (dict(mode="FA", latency_ms=1.0), "latency_ms is a budget for mode 'LA'"),
    (dict(mode="LA", latency_ms=1.0, budget=1.0, latency_table="table"), "not both"),
])
def test_bad_LA_arguments_are_refused_with_what_is_allowed(table, kwargs, match):
    kwargs = {k: (table if v == "table" else v) for k, v in kwargs.items()}
    with pytest.raises(ValueError, match=match):
        cdp.plan_pruning(tiny(), seed=0, **kwargs)


def test_a_layer_the_table_did_not_measure_is_named(table):
    with pytest.raises(ValueError, match=r"does not cover layer\(s\) conv_a \(Conv2D 5x5"):
        table.predict_ms(tiny(kernel=5))


def test_a_layer_wider_than_the_table_is_named(table):
    with pytest.raises(ValueError, match="'conv_b'.* 32 output channels, but the latency table measured at most 16"):
        table.predict_ms(tiny(width=32))


def test_a_table_from_another_device_or_model_warns_naming_both(table):
    other = LatencyTable.from_dict({**table.to_dict(), "device": {**table.device, "cpu_model": "Cortex-A72"}})
    here = re.escape(table.device["cpu_model"])
    with pytest.warns(LatencyTableWarning, match=f"measured on Cortex-A72.*but this machine is {here}"):
        other.predict_ms(tiny())
    with pytest.warns(LatencyTableWarning, match="measured for model 'tiny', not 'other'"):
        table.predict_ms(tiny(name="other"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table.predict_ms(tiny())  # its own device and model: silent


def test_a_file_that_is_not_a_table_is_refused(tmp_path):
    (tmp_path / "plan.json").write_text(json.dumps({"format": "cdp-tutorial/pruning-plan"}))
    with pytest.raises(ValueError, match="not a cdp-tutorial latency table"):
        LatencyTable.load(tmp_path / "plan.json")
    with pytest.raises(FileNotFoundError, match="cdp-tutorial latency-table"):
        LatencyTable.load(tmp_path / "missing.json")


def test_a_partial_table_prices_its_layers_and_combines_with_a_complete_one(table, exported):
    files = sorted(exported.iterdir())
    partial = measure_latency_table(tiny(), timing=FAST, out_step=8, in_points=2, layers=["conv_a"], folder=exported)
    assert sorted(exported.iterdir()) == files  # conv_a's blocks were exported for the table: reused, timed afresh
    (entry,) = partial.entries.values()
    assert entry.description == "Conv2D 3x3 @16x16 + BatchNormalization + ReLU" and not partial.correction
    with pytest.raises(ValueError, match="does not cover"):
        partial.predict_ms(tiny())
    combined = table.updated(partial)
    assert combined.breakdown(tiny()).set_index("layer").ms["conv_a"] == entry.lookup(3, 16)[0]
    assert combined.correction == table.correction


@pytest.mark.skipif(not COMMITTED, reason="no committed latency table under data/latency/")
@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_a_committed_table_plans_vgg16_to_half_its_predicted_latency(path):
    table = LatencyTable.load(path)
    assert table.model_name == "vgg16" and table.correction["calibration"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LatencyTableWarning)  # measured on another CPU than this one, maybe
        plan = cdp.plan_pruning(cdp.models.vgg16(), "LA", target=0.5, latency_table=table, seed=0)
    assert plan.latency["final_ms"] <= 0.5 * plan.latency["baseline_ms"]


@pytest.mark.skipif(not COMMITTED, reason="no committed latency table under data/latency/")
def test_a_budget_below_the_smallest_reachable_latency_is_refused_with_the_lowest_target():
    """On the committed table, not the tiny one timed here: a table fitted on two tiny calibration models
    under load can have a negative intercept, and then predicts almost nothing at the minimum widths."""
    table = LatencyTable.load(COMMITTED[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LatencyTableWarning)
        with pytest.raises(ValueError, match=r"0\.100 ms predicted .* is unreachable: .* the lowest reachable "
                                             r"target is 0\.\d+"):
            cdp.plan_pruning(cdp.models.vgg16(), "LA", latency_ms=0.1, latency_table=table, seed=0)


def test_timing_by_thread_cpu_time_needs_one_interpreter_thread():
    with pytest.raises(ValueError, match="needs threads=1"):
        Timing(threads=2, clock="thread")


def test_the_command_line_measures_a_table_and_refuses_LA_without_one(tmp_path, capsys):
    from cdp_tutorial.cli import main

    out = tmp_path / "head.json"
    assert main(["latency-table", "--model", "vgg16", "--width-multiplier", "0.0625", "--layers", "predictions",
                 "--threads", "1", "--clock", "thread", "--rounds", "1", "--processes", "1", "--repeats", "3",
                 "--out", str(out)]) == 0
    (entry,) = LatencyTable.load(out).entries.values()
    assert (entry.description, entry.in_widths, entry.out_widths) == ("Dense", [32], [10])  # fc2's 32 units in
    assert main(["plan", "--model", "vgg16", "--mode", "LA", "--target", "0.5"]) == 2
    assert "latency table" in capsys.readouterr().err


@pytest.mark.skipif(not COMMITTED, reason="no committed latency table under data/latency/")
def test_the_command_line_plans_vgg16_in_mode_LA_with_the_committed_table(tmp_path, capsys):
    from cdp_tutorial.cli import main

    out = tmp_path / "plan.json"
    assert main(["plan", "--model", "vgg16", "--mode", "LA", "--target", "0.5", "--seed", "0",
                 "--latency-table", str(COMMITTED[0]), "--out", str(out)]) == 0
    assert "ms predicted <= budget" in capsys.readouterr().out
    plan = cdp.PruningPlan.load(out)
    assert plan.latency["final_ms"] <= 0.5 * plan.latency["baseline_ms"]


@pytest.mark.skipif(not COMMITTED, reason="no committed latency table under data/latency/")
def test_the_committed_benchmark_plans_are_priced_by_the_committed_table_as_recorded():
    """The benchmark CSV keeps each plan's widths and block sum: notebook 09 refits models on them."""
    import pandas as pd

    from cdp_tutorial.pruning import PruningProblem

    table = LatencyTable.load(COMMITTED[0])
    check = pd.read_csv(COMMITTED[0].with_suffix(".lut-check.csv"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LatencyTableWarning)
        problem = PruningProblem(cdp.models.vgg16(), latency_table=table)
    for row in check.itertuples():
        widths = problem.baseline_widths.copy()
        planned = json.loads(row.widths)
        for layers, column in zip(problem.unit_layers, problem.unit_columns):
            widths[column] = planned[layers[0]]
        assert problem.latency.block_ms(widths).sum() == pytest.approx(row.blocks_ms, rel=1e-3), row.plan
        assert problem.latency.weight_mb(widths) == pytest.approx(row.weight_mb, rel=1e-3), row.plan
        assert problem.total(widths, "latency") == pytest.approx(row.saved_ms, rel=1e-3), row.plan  # as saved
