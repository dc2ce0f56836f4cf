"""Algorithm 1 (plan_pruning): every mode reaches its target on every model, deterministically."""

import json

import keras
import numpy as np
import pytest

import cdp_tutorial as cdp
from cdp_tutorial.pruning import PruningProblem

MODELS = ["vgg16", "alexnet", "resnet50", "mobilenetv2"]
MODES = ["params", "flops", "memory"]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_reaches_its_target_and_stops_at_once(cifar_models, name, mode):
    model = cifar_models[name]
    plan = cdp.plan_pruning(model, mode, target=0.5, seed=0)
    assert plan.final.of(mode) <= 0.5 * plan.baseline.of(mode)
    history = plan.history
    assert history.fraction.iloc[-1] <= 0.5
    assert (history.fraction.iloc[:-1] > 0.5).all()  # it stopped as soon as it could
    assert history.fraction.is_monotonic_decreasing
    # the plan's totals are the real model's totals
    assert cdp.profile(cdp.apply_plan(model, plan)).totals == plan.final


def test_each_step_removes_p_of_the_chosen_layer(cifar_models):
    plan = cdp.plan_pruning(cifar_models["vgg16"], "PA", target=0.3, step=0.2, seed=3)
    h = plan.history
    expected = np.maximum(1, np.minimum(h.filters_before - 1, np.floor(h.filters_before * 0.8 + 0.5)))
    np.testing.assert_array_equal(h.filters_after, expected)
    assert ((h.probability > 0) & (h.probability <= 1)).all()
    assert set(h.layer) <= set(plan.widths)


def test_same_seed_same_plan_and_seed_none_is_recorded(cifar_models):
    model = cifar_models["alexnet"]
    a = cdp.plan_pruning(model, "flops", target=0.4, seed=11)
    b = cdp.plan_pruning(model, "flops", target=0.4, seed=11)
    c = cdp.plan_pruning(model, "flops", target=0.4, seed=12)
    assert a.widths == b.widths and a.history.equals(b.history)
    assert a.history.layer.tolist() != c.history.layer.tolist()
    fresh = cdp.plan_pruning(model, "flops", target=0.4)
    assert isinstance(fresh.seed, int)
    assert cdp.plan_pruning(model, "flops", target=0.4, seed=fresh.seed).widths == fresh.widths


def test_absolute_budget(cifar_models):
    model = cifar_models["vgg16"]
    plan = cdp.plan_pruning(model, "params", budget=2_000_000, seed=0)
    assert plan.final.params <= 2_000_000 < plan.history.params.iloc[-2]
    assert plan.target is None and plan.budget == 2_000_000


def test_round_to_gives_hardware_friendly_widths(cifar_models):
    plan = cdp.plan_pruning(cifar_models["vgg16"], "flops", target=0.2, seed=0, round_to=8)
    assert all(w % 8 == 0 and w >= 8 for w in plan.widths.values())


def test_no_layer_drops_below_one_filter(cifar_models):
    plan = cdp.plan_pruning(cifar_models["alexnet"], "flops", target=0.02, step=0.5, seed=0)
    assert min(plan.widths.values()) >= 1


def test_unreachable_target_names_the_lowest_reachable_value(cifar_models):
    model = cifar_models["resnet50"]
    problem = PruningProblem(model)
    lowest = problem.total(problem.minimum_widths(), "params") / problem.total(problem.baseline_widths, "params")
    with pytest.raises(ValueError, match=f"lowest reachable target is {lowest:.4f}.*coupled='tie'"):
        cdp.plan_pruning(model, "params", target=0.05, seed=0)
    # ...and just above it, it is reached
    plan = cdp.plan_pruning(model, "params", target=lowest + 0.02, seed=0, step=0.3)
    assert plan.final.params <= (lowest + 0.02) * plan.baseline.params


def test_the_lowest_target_a_message_names_can_be_passed_back_and_tiny_floors_do_not_read_as_zero(cifar_models):
    """AlexNet's floor is 0.13974...: the message names 0.1398 (0.1397 would be refused), and that target plans."""
    import re

    model = cifar_models["alexnet"]
    with pytest.raises(ValueError, match=r"lowest reachable target is 0\.\d{4}$") as error:
        cdp.plan_pruning(model, "params", target=0.1, seed=0)
    named = float(re.search(r"lowest reachable target is ([\d.]+)$", str(error.value))[1])
    problem = PruningProblem(model)
    floor = problem.total(problem.minimum_widths(), "params") / problem.total(problem.baseline_widths, "params")
    assert floor <= named < floor + 1e-4
    plan = cdp.plan_pruning(model, "params", target=named, seed=0, step=0.5)
    assert plan.final.params <= named * plan.baseline.params

    # ResNet-50 tied: about 2e-5 of the parameters, written with three significant digits, not as 0.0000
    # ...followed by what it is, a share of the baseline, so that the number is not bare
    with pytest.raises(ValueError, match=r"lowering the lowest reachable target to 0\.0000\d{3} \(0\.00\d+% of baseline\)\.") as error:
        cdp.plan_pruning(cifar_models["resnet50"], "params", target=0.05, seed=0)
    tied_named, tied_percent = map(float, re.search(r"target to ([\d.]+) \(([\d.]+)% of baseline", str(error.value)).groups())
    assert tied_percent == pytest.approx(100 * tied_named, rel=0.05)
    tied = PruningProblem(cifar_models["resnet50"], coupled="tie")
    tied_floor = tied.total(tied.minimum_widths(), "params") / tied.total(tied.baseline_widths, "params")
    assert tied_floor <= tied_named < 1.01 * tied_floor


@pytest.mark.parametrize("name", ["resnet50", "mobilenetv2"])
def test_coupled_channels_skipped_by_default_and_tied_on_request(cifar_models, name):
    model = cifar_models[name]
    skipped = cdp.plan_pruning(model, "flops", target=0.5, seed=0)
    residual = "conv3_block2_3_conv" if name == "resnet50" else "block3_project"
    assert residual not in skipped.widths
    tied = cdp.plan_pruning(model, "flops", target=0.3, seed=0, coupled="tie")
    group = next(t for t in tied.tied if residual in t)
    assert len({tied.widths[n] for n in group}) == 1
    small = cdp.apply_plan(model, tied)
    assert small(np.zeros((2, 32, 32, 3), "float32")).shape == (2, 10)
    assert cdp.profile(small).totals == tied.final


def test_depthwise_follows_its_input(cifar_models):
    model = cifar_models["mobilenetv2"]
    plan = cdp.plan_pruning(model, "params", target=0.4, seed=1)
    small = cdp.apply_plan(model, plan)
    for i in range(2, 18):
        dw = small.get_layer(f"block{i}_depthwise")
        assert dw.output.shape[-1] == small.get_layer(f"block{i}_expand").filters


def test_uniform_plan_meets_the_same_budget(cifar_models):
    model = cifar_models["vgg16"]
    plan = cdp.plan_uniform(model, "flops", target=0.3)
    assert plan.final.macs <= 0.3 * plan.baseline.macs
    ratios = [plan.widths[n] / plan.baseline_widths[n] for n in plan.widths]
    assert max(ratios) - min(ratios) < 0.02  # every layer kept the same fraction (up to rounding)
    assert plan.method == "uniform"


def test_plan_json_round_trip_and_no_overwrite(cifar_models, tmp_path):
    plan = cdp.plan_pruning(cifar_models["resnet50"], "MA", target=0.5, seed=4, coupled="tie")
    path = plan.save(tmp_path / "plan.json")
    loaded = cdp.PruningPlan.load(path)
    assert loaded.widths == plan.widths and loaded.final == plan.final and loaded.tied == plan.tied
    assert loaded.history.equals(plan.history)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        plan.save(path)
    assert json.loads(path.read_text())["mode"] == "memory"
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]  # no temporary files left


def test_user_functional_model_every_mode(user_model):
    for mode in MODES:
        plan = cdp.plan_pruning(user_model, mode, target=0.6, seed=0, coupled="tie")
        small = cdp.apply_plan(user_model, plan)
        assert small(np.zeros((1, 16, 16, 3), "float32")).shape == (1, 5)
        assert cdp.profile(small).totals == plan.final
        assert plan.final.of(mode) <= 0.6 * plan.baseline.of(mode)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(mode="speed", target=0.5), ValueError, "unknown mode"),
    (dict(mode="PA", target=0), ValueError, "target must be a number strictly between 0 and 1"),
    (dict(mode="PA", target=1), ValueError, "strictly between 0 and 1"),
    (dict(mode="PA", target=1.5), ValueError, "strictly between 0 and 1"),
    (dict(mode="PA", target="0.3"), ValueError, "strictly between 0 and 1"),
    (dict(mode="PA", target=0.5, step=0), ValueError, "step must be"),
    (dict(mode="PA", target=0.5, step=1.0), ValueError, "step must be"),
    (dict(mode="PA"), ValueError, "exactly one of target"),
    (dict(mode="PA", target=0.5, budget=10), ValueError, "exactly one of target"),
    (dict(mode="PA", budget=-5), ValueError, "budget must be > 0"),
    (dict(mode="PA", budget=1e12), ValueError, "nothing to prune"),
    (dict(mode="PA", target=0.5, coupled="merge"), ValueError, "coupled must be one of"),
    (dict(mode="PA", target=0.5, round_to=0), ValueError, "round_to must be an integer ≥ 1"),
    (dict(mode="PA", target=0.5, seed=-1), ValueError, "seed must be"),
])
def test_bad_input_is_rejected_at_once(cifar_models, kwargs, error, message):
    with pytest.raises(error, match=message):
        cdp.plan_pruning(cifar_models["alexnet"], **kwargs)


def test_numpy_integer_seed_is_stored_as_a_plain_int(cifar_models, tmp_path):
    plan = cdp.plan_pruning(cifar_models["alexnet"], "FA", target=0.5, seed=np.int64(3))
    assert plan.seed == 3 and type(plan.seed) is int
    assert cdp.PruningPlan.load(plan.save(tmp_path / "plan.json")).widths == plan.widths


def test_not_a_keras_model():
    with pytest.raises(TypeError, match="expected a keras.Model"):
        cdp.plan_pruning("vgg16", "PA", target=0.5)


def test_model_without_prunable_conv():
    mlp = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no prunable conv layer"):
        cdp.plan_pruning(mlp, "params", target=0.5)


def test_ignored_layers_stay_at_full_width(cifar_models):
    model = cifar_models["vgg16"]
    plan = cdp.plan_pruning(model, "flops", target=0.3, seed=0, ignored_layers=["conv1", "conv13"])
    assert "conv1" not in plan.widths and "conv13" not in plan.widths
    small = cdp.apply_plan(model, plan)
    assert small.get_layer("conv1").filters == 64 and small.get_layer("conv13").filters == 512
    assert plan.final.macs <= 0.3 * plan.baseline.macs


def test_min_keep_is_a_floor_per_layer(cifar_models):
    model = cifar_models["vgg16"]
    plan = cdp.plan_pruning(model, "params", target=0.2, seed=0, min_keep={"conv8": 0.5})
    assert plan.widths["conv8"] >= 256
    everywhere = cdp.plan_uniform(model, "params", target=0.5, min_keep=0.4)
    assert all(w >= 0.4 * plan.baseline_widths[n] for n, w in everywhere.widths.items())


@pytest.mark.parametrize("kwargs, message", [
    ({"ignored_layers": ["fc1_relu"]}, "not conv layers"),
    ({"ignored_layers": ["nope"]}, "not conv layers"),
    ({"min_keep": 1.5}, "min_keep"),
])
def test_bad_ignored_layers_or_floor(cifar_models, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cdp.plan_pruning(cifar_models["vgg16"], "params", target=0.5, seed=0, **kwargs)
