"""Tests for cdp_tutorial.edgecompress: compound shrinking, the margin cascade and dynamic cropping.

Real Keras models on the committed fixture, kept tiny (VGG-16 and AlexNet at 1/16 width); the one
test that trains (the probes) trains for one epoch on 300 images. The cascade and cropping tests use
freshly initialised real models: what they check holds for any weights.
"""

import doctest
import importlib

import keras
import numpy as np
import pandas as pd
import pytest

import cdp_tutorial as cdp
from cdp_tutorial import edgecompress as ec
from cdp_tutorial.data import load_dataset

TINY = 0.0625  # train width: VGG-16's 64..512 filters become 4..32


@pytest.fixture(scope="module")
def data():
    return load_dataset("fixture", train_size=400, test_size=100, seed=0)


@pytest.fixture(scope="module")
def split(data):
    return ec.holdout_validation(data, 100, seed=0)


@pytest.fixture(scope="module")
def unshrunk_macs():
    """MACs per image of the full-size networks the budgets below are shares of (each build ~1 s: once)."""
    return {name: cdp.profile(cdp.models.build_model(name)).totals.macs for name in ("vgg16", "alexnet")}


@pytest.mark.parametrize("name", ["images", "compound", "cascade", "cropping"])
def test_docstring_examples_run(name):
    module = importlib.import_module(f"cdp_tutorial.edgecompress.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# --------------------------------------------------------------------------- images


def test_holdout_validation_keeps_test_split_and_holds_out_disjoint_balanced_images(data, split):
    fit, validation = split
    assert len(fit.y_train) == 300 and len(validation.y_test) == 100
    np.testing.assert_array_equal(fit.x_test, data.x_test)  # the real test split is untouched
    np.testing.assert_array_equal(fit.x_train, validation.x_train)
    held = {image.tobytes() for image in validation.x_test}
    assert not held & {image.tobytes() for image in fit.x_train}
    assert np.bincount(validation.y_test).tolist() == [10] * 10
    assert fit.mean == validation.mean  # both normalise like the images they train on


def test_at_resolution_resizes_both_splits(data):
    small = ec.at_resolution(data, 24)
    assert small.x_train.shape == (400, 24, 24, 3) and small.x_test.dtype == np.uint8
    assert ec.at_resolution(data, 32) is data
    assert "24x24" in small.description


# --------------------------------------------------------------------------- compound shrinking


@pytest.mark.parametrize("method", ["cdp", "uniform"])
def test_compound_config_meets_the_budget_after_dropping_blocks_and_lowering_resolution(unshrunk_macs, method):
    budget = 0.2 * unshrunk_macs["vgg16"]
    config = ec.compound_config("vgg16", depth=2, resolution=24, budget=budget, width_method=method, seed=0)
    assert config.macs <= budget
    assert config.drop_blocks == ("conv7", "conv10")
    model = config.build(train_width=1.0)
    assert cdp.profile(model).totals.macs == config.macs  # what was promised is what is built
    assert model.input.shape == (None, 24, 24, 3)
    assert "conv7" not in {layer.name for layer in model.layers}
    narrow = config.build(train_width=0.25)
    assert narrow.get_layer("conv1").filters == max(1, round(config.widths["conv1"] * 0.25))


def costs(depth, width, resolution):
    return pd.DataFrame({"dimension": ["none", "depth", "width", "resolution"], "cost": [0, depth, width, resolution]})


def test_search_shrinks_the_cheapest_dimension_first(unshrunk_macs):
    budget = 0.4 * unshrunk_macs["alexnet"]
    grid = dict(depths=[0, 2], resolutions=(32, 24), width_method="uniform")
    cheap_depth_and_resolution = ec.search_compound("alexnet", budget, costs(0.0, 1.0, 0.0), **grid)
    assert (cheap_depth_and_resolution.chosen.depth, cheap_depth_and_resolution.chosen.resolution) == (2, 24)
    costly_depth = ec.search_compound("alexnet", budget, costs(1.0, 0.1, 1.0), **grid)
    assert (costly_depth.chosen.depth, costly_depth.chosen.resolution) == (0, 32)
    assert costly_depth.chosen.macs <= budget
    assert len(costly_depth.candidates) == 4 and costly_depth.candidates.feasible.all()


@pytest.mark.parametrize("budget, message", [
    (1_000, r"budget 1,000 MACs is infeasible for alexnet at every searched depth and resolution"),
    # the pruning error's percentages are of the shrunk shape, not of the model the budget refers to
    (1_000, r"at depth -2, 16 px \(percentages of this shape's [\d,]+ MACs, not of the unshrunk alexnet's "
            r"225,650,688\)"),
    (4e8, r"is not below the unshrunk alexnet's 225,650,688 MACs: nothing to shrink"),
    (-5, r"budget must be > 0"),
])
def test_search_rejects_a_budget_it_cannot_or_need_not_meet(budget, message):
    with pytest.raises(ValueError, match=message):
        ec.search_compound("alexnet", budget, costs(0, 0, 0), depths=[0, 2], resolutions=(32, 16))


def test_search_needs_a_cost_for_every_dimension():
    with pytest.raises(ValueError, match="one row per dimension"):
        ec.search_compound("alexnet", 1e8, costs(0, 0, 0).iloc[:2], depths=[0], resolutions=(32,))


def test_search_refuses_a_negative_cost():
    # A negative cost would make the linear model shrink that dimension as far as the grid goes.
    with pytest.raises(ValueError, match=r"the depth cost .* must be ≥ 0, got -0.2"):
        ec.search_compound("alexnet", 1e8, costs(-0.2, 0, 0), depths=[0], resolutions=(32,))


def test_search_spreads_the_saving_over_dimensions_it_cannot_tell_apart(unshrunk_macs):
    budget = 0.4 * unshrunk_macs["alexnet"]
    search = ec.search_compound("alexnet", budget, costs(0.0, 0.0, 1.0), depths=[0, 1, 2], resolutions=(32, 24),
                                width_method="uniform")
    table = search.candidates
    tied = table[table.predicted_loss == table.predicted_loss.min()]
    assert set(tied.resolution) == {32} and len(tied) == 3  # depth and width cost nothing: a three-way tie
    chosen = tied[(tied.depth == search.chosen.depth) & (tied.resolution == search.chosen.resolution)].iloc[0]
    assert chosen.largest_share == tied.largest_share.min()  # the most even split of the saving wins
    # Dropping both blocks splits 0.92 e-folds as 0.66 depth + 0.26 width; keeping them puts all 0.92 on width.
    assert (search.chosen.depth, search.chosen.resolution) == (2, 32)


@pytest.fixture
def eager_steps():
    """Keras' fit and evaluate run their steps op by op instead of tracing them into graphs, then as before.

    For a few steps on a tiny model, tracing costs more than running: each probe below trains
    3 steps, and tracing its training and test steps took about 2.5 s of its 3.5 s on a 2-core CPU.
    The steps are the same real Keras steps; the graph-mode path is what notebook 08 (the same probes)
    and tests/test_training.py run.
    """
    import tensorflow as tf

    was_eager = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(True)
    try:
        yield
    finally:
        tf.config.run_functions_eagerly(was_eager)


# tf.data's own functions stay graphs whatever the setting, and TensorFlow warns that it is so
@pytest.mark.filterwarnings("ignore:Even though the `tf.config.experimental_run_functions_eagerly`")
def test_measure_contributions_trains_one_probe_per_dimension(eager_steps):
    _, validation = ec.holdout_validation(load_dataset("fixture", train_size=200, test_size=20), 60)
    probes = ec.measure_contributions("alexnet", validation, depth=1, width=0.5, resolution=24, epochs=1,
                                      train_width=TINY, batch_size=64, seed=0)
    table = probes.table.set_index("dimension")
    assert list(table.index) == ["none", "depth", "width", "resolution"]
    assert (table.macs.iloc[1:] < table.macs["none"]).all() and (table.log_macs_saved.iloc[1:] > 0).all()
    assert table.accuracy.between(0, 1).all()
    # The cost is the accuracy lost per e-fold of MACs saved; a probe that gained costs 0 (clipped),
    # and the table keeps the raw change with its paired standard error over the validation images.
    expected = np.maximum(table.accuracy_lost, 0) / table.log_macs_saved.where(table.log_macs_saved > 0, np.inf)
    np.testing.assert_allclose(table.cost, expected)
    assert (table.cost >= 0).all()
    assert table.accuracy_lost_se["none"] == 0 and (table.accuracy_lost_se.iloc[1:] >= 0).all()
    assert (table.accuracy_lost_se.iloc[1:] <= 1 / np.sqrt(60)).all()  # |per-image difference| <= 1
    assert probes.models["resolution"].input.shape == (None, 24, 24, 3)
    assert "conv4" not in {layer.name for layer in probes.models["depth"].layers}
    # the probes feed the search directly (two depths: each candidate costs two full-size builds)
    search = ec.search_compound("alexnet", 0.5 * table.macs["none"], probes, depths=[0, 1], resolutions=(32, 24))
    assert search.chosen.macs <= 0.5 * table.macs["none"]


# --------------------------------------------------------------------------- cascade

# Three images, two classes. The small model is sure of image 0, unsure of 1 and 2; the large one
# is right about 1 but wrong about 2, which the small one had right.
SMALL = [[0.9, 0.1], [0.55, 0.45], [0.4, 0.6]]
LARGE = [[0.8, 0.2], [0.1, 0.9], [0.7, 0.3]]
LABELS = [0, 1, 1]


def test_threshold_zero_is_the_first_model_and_one_runs_every_model():
    first = ec.simulate_cascade([SMALL, LARGE], LABELS, [10, 100], 0.0)
    assert (first.average_macs, first.exit_fractions) == (10.0, (1.0, 0.0))
    assert first.accuracy == pytest.approx(2 / 3)  # the small model's own answers
    every = ec.simulate_cascade([SMALL, LARGE], LABELS, [10, 100], 1.0)
    assert every.average_macs == 110.0 and every.exit_fractions == (0.0, 1.0)
    assert every.accuracy == pytest.approx(2 / 3)  # the large model's own answers


def test_an_unsure_image_goes_on_and_pays_for_both_stages():
    outcome = ec.simulate_cascade([SMALL, LARGE], LABELS, [10, 100], 0.5)  # margins 0.8, 0.1, 0.2
    assert outcome.exit_fractions == pytest.approx((1 / 3, 2 / 3))
    assert outcome.average_macs == pytest.approx((10 + 110 + 110) / 3)
    assert outcome.accuracy == pytest.approx(2 / 3)


def test_expected_latency_charges_every_stage_an_image_passes_through():
    outcome = ec.simulate_cascade([SMALL, LARGE], LABELS, [10, 100], 0.5)
    # Latency obeys the same bookkeeping as MACs: with latencies equal to the MACs, the averages agree.
    assert ec.expected_latency(outcome.exit_fractions, (10, 100)) == pytest.approx(outcome.average_macs)


def test_cascade_curve_and_threshold_choice():
    curve = ec.cascade_curve([SMALL, LARGE], LABELS, [10, 100], thresholds=[0, 0.15, 0.5, 1])
    assert curve.average_macs.is_monotonic_increasing
    assert list(curve.columns) == ["threshold", "accuracy", "average_macs", "exit_1", "exit_2"]
    # Threshold 0.15 sends only image 1 (margin 0.1) on; image 2 (margin 0.2) stays with the small model.
    best = ec.choose_threshold([SMALL, LARGE], LABELS, [10, 100], 1.0, thresholds=[0, 0.15, 0.5, 1])
    assert (best.threshold, best.accuracy) == (0.15, 1.0)
    with pytest.raises(ValueError, match=r"no threshold reaches accuracy 1.000.*the best is 0.667"):
        ec.choose_threshold([SMALL, LARGE], LABELS, [10, 100], 1.0, thresholds=[0, 1])


@pytest.mark.parametrize("call, message", [
    (lambda: ec.simulate_cascade([SMALL, LARGE], LABELS, [10, 100], 1.5),
     r"threshold \(a softmax margin\) must be ≥ 0 and ≤ 1, got 1.5"),
    (lambda: ec.simulate_cascade([SMALL, LARGE], LABELS, [10, 100], -0.1), r"must be ≥ 0 and ≤ 1, got -0.1"),
    (lambda: ec.simulate_cascade([SMALL, np.ones((3, 3)) / 3], LABELS, [10, 100], 0.5),
     r"the cascade's models disagree: .* got shapes \[\(3, 2\), \(3, 3\)\]"),
    (lambda: ec.simulate_cascade([SMALL, LARGE], LABELS, [10], 0.5), r"macs must have one entry per model \(2\)"),
    (lambda: ec.choose_threshold([SMALL], LABELS, [10], 1.2), r"target_accuracy must be ≥ 0 and ≤ 1"),
    (lambda: ec.expected_latency((0.5, 0.4), (1.0, 2.0)), r"exit fractions must sum to 1, got 0.9"),
], ids=["threshold-above-1", "negative-threshold", "classes-disagree", "macs-per-model", "target", "fractions"])
def test_cascade_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.fixture(scope="module")
def model_pair():
    """Two real VGG-16s of different width (seeded initial weights) and their MACs."""
    pair = []
    for width in (TINY / 2, TINY):
        keras.utils.set_random_seed(0)
        model = cdp.models.vgg16(width_multiplier=width)
        pair.append((model, cdp.profile(model).totals.macs))
    return pair


def test_running_the_cascade_agrees_with_simulating_it(split, model_pair):
    fit, _ = split
    models, macs = zip(*model_pair)
    cascade = ec.Cascade(models, macs, fit.mean, fit.std)
    probabilities = [ec.class_probabilities(model, fit) for model in models]
    median_margin = float(np.median(ec.softmax_margin(probabilities[0])))  # sends about half the images on
    for threshold in (0.0, median_margin, 1.0):
        labels, stage = cascade.predict(fit.x_test, threshold)
        simulated = ec.simulate_cascade(probabilities, fit.y_test, macs, threshold)
        assert np.mean(labels == fit.y_test) == pytest.approx(simulated.accuracy)
        assert tuple(np.bincount(stage, minlength=2) / len(stage)) == pytest.approx(simulated.exit_fractions)
    latency = cascade.measure_latency(fit.x_test[:6], median_margin, warmup=1)
    assert latency.n == 6 and latency.warmup == 1  # every image timed, one by one, by edge.time_calls
    assert cascade.measure_latency(fit.x_test[:2], median_margin, warmup=1).n == 2  # its graphs are reused
    assert 0 < latency.q25_ms <= latency.median_ms <= latency.q75_ms < 5000
    with pytest.raises(ValueError, match="warmup must be an integer ≥ 1"):
        cascade.measure_latency(fit.x_test[:2], 0.5, warmup=0)
    run = cascade.runner(median_margin)  # one image, as measure_latency times it: the deciding stage's output
    x = ec.normalise(fit.x_test[:6], fit.mean, fit.std)
    for i, decided_by in enumerate(cascade.predict(fit.x_test[:6], median_margin)[1]):
        expected = models[decided_by](x[i:i + 1], training=False).numpy()
        np.testing.assert_allclose(run(x[i:i + 1]), expected, rtol=1e-4, atol=1e-6)


def test_cascade_refuses_models_that_disagree(split, model_pair):
    fit, _ = split
    model, macs = model_pair[0]
    other_classes = cdp.models.vgg16(width_multiplier=TINY, num_classes=5)
    other_shape = cdp.models.vgg16(width_multiplier=TINY, input_shape=(24, 24, 3))
    with pytest.raises(ValueError, match=r"disagree on classes: \[10, 5\]"):
        ec.Cascade([model, other_classes], [macs, macs], fit.mean, fit.std)
    with pytest.raises(ValueError, match=r"disagree on input shape: \[\(32, 32, 3\), \(24, 24, 3\)\]"):
        ec.Cascade([model, other_shape], [macs, macs], fit.mean, fit.std)
    with pytest.raises(ValueError, match=r"images must have shape \(N, 32, 32, 3\)"):
        ec.Cascade([model], [macs], fit.mean, fit.std).predict(fit.x_test[:, :24, :24], 0.5)


# --------------------------------------------------------------------------- cropping


def test_cam_boxes_bound_the_salient_region_and_are_regulated():
    cam = np.zeros((2, 8, 8), np.float32)
    cam[0, 1:3, 4:8] = 1.0  # salient top-right corner: rows 4..12, cols 16..32 of a 32-px image
    boxes = ec.cam_boxes(cam, 32, min_size=0.5, square=True)
    y0, x0, y1, x1 = boxes[0]
    assert y1 - y0 == pytest.approx(0.5) and x1 - x0 == pytest.approx(0.5)  # grown to the minimum, square
    assert x1 == pytest.approx(1.0) and y0 == pytest.approx(0.0)  # shifted to stay inside the image
    np.testing.assert_array_equal(boxes[1], [0, 0, 1, 1])  # nothing salient: the whole image


def test_crop_images_with_the_whole_box_returns_the_image(data):
    images = data.x_test[:4]
    np.testing.assert_array_equal(ec.crop_images(images, np.tile([0, 0, 1, 1], (4, 1)), 32), images)
    half = ec.crop_images(images, np.tile([0.25, 0.25, 0.75, 0.75], (4, 1)), 16)
    np.testing.assert_array_equal(half, images[:, 8:24, 8:24])  # a 16-px crop at 16 px is exact


def test_grad_cam_and_a_predictor_trained_on_its_boxes(split, model_pair):
    fit, _ = split
    model, _ = model_pair[1]
    cams = ec.grad_cam(model, ec.normalise(fit.x_train, fit.mean, fit.std), "relu7")
    assert cams.shape == (300, 8, 8) and cams.min() >= 0 and cams.max() <= 1
    boxes = ec.cam_boxes(cams, 32)
    keras.utils.set_random_seed(0)
    predictor = ec.foreground_predictor(16, 4)
    history = ec.train_predictor(predictor, fit.x_train, boxes, epochs=8, seed=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    predicted = ec.predict_boxes(predictor, fit.x_train)
    assert predicted.shape == (300, 4) and (predicted[:, 2:] > predicted[:, :2]).all()
    assert ec.box_iou(predicted, boxes).mean() > 0.3
    with pytest.raises(ValueError, match="has no layer 'relu99'"):
        ec.grad_cam(model, fit.x_test[:2].astype(np.float32), "relu99")
    with pytest.raises(ValueError, match="Grad-CAM needs a conv feature map"):
        ec.grad_cam(model, fit.x_test[:2].astype(np.float32), "fc1")


def probabilities_model(kernel_scale: float, activation: str = "softmax", name: str = "head") -> keras.Model:
    """A tiny real classifier on 8x8 images: flatten, a Dense with fixed weights (10 classes)."""
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Flatten()(inputs)
    dense = keras.layers.Dense(10, activation=activation, name="predictions")
    model = keras.Model(inputs, dense(x), name=name)
    rng = np.random.default_rng(0)
    dense.set_weights([kernel_scale * rng.normal(size=(192, 10)).astype(np.float32), np.zeros(10, np.float32)])
    return model


def test_a_saturated_softmax_exits_even_at_threshold_one():
    images = np.random.default_rng(1).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    certain = probabilities_model(1e4, name="certain")  # float32 softmax saturates: top-1 is exactly 1.0
    other = probabilities_model(1e-3, name="other")
    cascade = ec.Cascade([certain, other], [1, 2], (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    probabilities = ec.predict_probabilities(certain, ec.normalise(images, cascade.mean, cascade.std))
    assert (ec.softmax_margin(probabilities) == 1.0).all()
    _, stage = cascade.predict(images, 1.0)
    assert (stage == 0).all()  # documented: threshold 1 does not run every model on such images


def test_the_cascade_converts_logits_and_refuses_other_outputs(split):
    images = np.random.default_rng(2).integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    softmax_model, logits_model = probabilities_model(0.05), probabilities_model(0.05, activation="linear")
    wide = probabilities_model(0.2, name="wide")
    assert ec.output_activation(softmax_model) == "softmax" and ec.output_activation(logits_model) == "linear"
    x = ec.normalise(images, mean, std)
    np.testing.assert_allclose(ec.predict_probabilities(logits_model, x),
                               ec.predict_probabilities(softmax_model, x), atol=1e-6)
    threshold = float(np.median(ec.softmax_margin(ec.predict_probabilities(softmax_model, x))))
    with_softmax = ec.Cascade([softmax_model, wide], [1, 2], mean, std).predict(images, threshold)
    with_logits = ec.Cascade([logits_model, wide], [1, 2], mean, std).predict(images, threshold)
    np.testing.assert_array_equal(with_softmax[1], with_logits[1])  # the same exits: margins of probabilities
    sigmoid = probabilities_model(0.05, activation="sigmoid", name="sigmoid_head")
    with pytest.raises(ValueError, match=r"stage 0 \(sigmoid_head\) ends in 'sigmoid'"):
        ec.Cascade([sigmoid, wide], [1, 2], mean, std)
    with pytest.raises(ValueError, match="class probabilities need a softmax output or linear logits"):
        ec.predict_probabilities(sigmoid, x)
    with pytest.raises(ValueError, match=r"probabilities\[0\] are not class probabilities"):
        ec.simulate_cascade([ec.model_outputs(logits_model, x), ec.predict_probabilities(wide, x)],
                            np.zeros(20, int), [1, 2], 0.5)


def test_grad_cam_differentiates_the_score_before_the_softmax(split, model_pair):
    fit, _ = split
    model, _ = model_pair[1]
    x = ec.normalise(fit.x_test[:16], fit.mean, fit.std)
    head = model.get_layer("predictions")
    probe = keras.Model(model.inputs, [model.get_layer("relu7").output, head.input])

    def reference(score_of):  # Grad-CAM by hand, for one way of scoring the predicted class
        import tensorflow as tf
        with tf.GradientTape() as tape:
            features, hidden = probe(tf.constant(x), training=False)
            scores = score_of(tf.matmul(hidden, head.kernel) + head.bias)
            chosen = tf.gather(scores, tf.argmax(scores, axis=1), axis=1, batch_dims=1)
        weights = tf.reduce_mean(tape.gradient(chosen, features), axis=(1, 2), keepdims=True)
        cams = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1)).numpy()
        low, high = cams.min(axis=(1, 2), keepdims=True), cams.max(axis=(1, 2), keepdims=True)
        return (cams - low) / np.where(high > low, high - low, 1)

    cams = ec.grad_cam(model, x, "relu7")
    np.testing.assert_allclose(cams, reference(lambda logits: logits), atol=1e-4)
    # Differentiating the probability instead gives other maps: the test tells the two apart.
    assert not np.allclose(cams, reference(keras.ops.softmax), atol=1e-2)
    logits_only = probabilities_model(0.05, activation="linear")
    with pytest.raises(ValueError, match="does not end in a softmax"):
        ec.grad_cam(logits_only, np.zeros((1, 8, 8, 3), np.float32), "image")


@pytest.mark.parametrize("threshold", [1.0, 1.5, -0.1])
def test_cam_boxes_threshold_must_leave_something_salient(threshold):
    cam = np.zeros((1, 8, 8), np.float32)
    cam[0, 2:4, 2:4] = 1.0
    with pytest.raises(ValueError, match=r"threshold \(share of each map's range\) must be ≥ 0 and < 1"):
        ec.cam_boxes(cam, 32, threshold=threshold)
