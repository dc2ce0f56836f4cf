"""Tests for cdp_tutorial.training: real Keras training on a few hundred fixture images, no mocks.

A tiny CNN (one conv, BatchNorm, dropout, softmax) keeps every run under a second or two; the
dropout layer makes sure a resumed run also restores the random state Keras does not save.
"""

import contextlib
import doctest
import io
import json
import math
import time

import keras
import numpy as np
import pytest

from cdp_tutorial import training
from cdp_tutorial.data import load_dataset
from cdp_tutorial.training import (RECIPES, Recipe, TrainResult, WarmupCosine, epoch_seed, get_recipe, train)

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")


@pytest.fixture(scope="module")
def data():
    return load_dataset("fixture", train_size=256, test_size=128)


def tiny_cnn(num_classes=10, input_shape=(32, 32, 3), seed=0):
    """The same initial weights *and* dropout RNG state for the same seed."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.3)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


class StopAfter(keras.callbacks.Callback):
    """Raise KeyboardInterrupt at the end of epoch ``n`` -- a real Ctrl-C between epochs."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.n:
            raise KeyboardInterrupt


class StopInFirstBatch(keras.callbacks.Callback):
    """Ctrl-C before any epoch is complete."""

    def on_train_batch_end(self, batch, logs=None):
        raise KeyboardInterrupt


class CountEpochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.begun = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.begun += 1


def files_in(folder):
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- a plain run


@pytest.fixture(scope="module")
def two_epochs(data):
    """One 2-epoch run with the paper recipe, shared by the tests that only read it."""
    model = tiny_cnn()
    return model, train(model, data, "paper", epochs=2, batch_size=64, seed=0, verbose=0)


def test_train_fills_every_field(two_epochs, data):
    model, result = two_epochs
    assert result.epochs == 2 and result.resumed_from_epoch == 0
    assert set(result.history) == set(HISTORY_KEYS)
    assert all(len(values) == 2 for values in result.history.values())
    for key in ("accuracy", "val_accuracy"):
        assert all(0.0 <= v <= 1.0 for v in result.history[key])
    assert 0.0 <= result.test_accuracy <= 1.0 and result.test_loss > 0
    assert result.test_accuracy == pytest.approx(result.history["val_accuracy"][-1])
    assert result.history["learning_rate"] == pytest.approx([1e-3, 1e-3])
    assert result.images_per_second > 0
    assert len(result.epoch_times_s) == len(result.train_times_s) == 2
    assert all(0 < t <= e for t, e in zip(result.train_times_s, result.epoch_times_s))
    assert result.wall_time_s == pytest.approx(sum(result.epoch_times_s))
    assert result.params == model.count_params()
    assert model.loss.get_config()["from_logits"] is False  # a softmax output: probabilities
    config = result.config
    assert config["recipe"]["name"] == "paper" and config["epochs"] == 2
    assert config["batch_size"] == 64 and config["seed"] == 0
    assert config["dataset"] == "fixture" and config["dataset_description"] == data.description
    assert (config["train_size"], config["test_size"]) == (256, 128)
    assert set(result.versions) == {"python", "tensorflow", "keras", "numpy", "cdp_tutorial"}
    assert "test accuracy" in result.summary() and "not CIFAR" in result.summary()


def test_result_survives_a_json_round_trip(two_epochs):
    _, result = two_epochs
    text = json.dumps(result.to_dict())
    assert TrainResult.from_dict(json.loads(text)) == result


def test_from_dict_names_missing_keys():
    with pytest.raises(ValueError, match="missing.*test_accuracy"):
        TrainResult.from_dict({"epochs": 3})


def test_training_leaves_op_determinism_as_it_found_it(two_epochs):
    from tensorflow.python.framework import config as tf_config

    assert not tf_config.is_op_determinism_enabled()


# --------------------------------------------------------------------------- repeatability


def test_same_seed_and_weights_repeat_the_history_and_another_seed_does_not(two_epochs, data):
    _, first = two_epochs
    again = train(tiny_cnn(), data, "paper", epochs=2, batch_size=64, seed=0, verbose=0)
    assert again.history == first.history  # exactly, number for number
    assert again.test_accuracy == first.test_accuracy
    other = train(tiny_cnn(), data, "paper", epochs=1, batch_size=64, seed=1, verbose=0)
    assert other.history["loss"][0] != first.history["loss"][0]  # same weights, another data order


def test_each_epoch_has_its_own_seed():
    seeds = {epoch_seed(s, e) for s in range(4) for e in range(50)}
    assert len(seeds) == 200
    assert epoch_seed(3, 7) == epoch_seed(3, 7)


# --------------------------------------------------------------------------- resume


@pytest.fixture(scope="module")
def resumed(data, tmp_path_factory):
    """A 4-epoch run interrupted after epoch 2 and resumed, plus the same run uninterrupted."""
    run_dir = tmp_path_factory.mktemp("runs") / "interrupted"
    first_output, second_output = io.StringIO(), io.StringIO()
    with pytest.raises(KeyboardInterrupt), contextlib.redirect_stdout(first_output):
        train(tiny_cnn(), data, "paper", epochs=4, batch_size=64, run_dir=run_dir,
              callbacks=[StopAfter(2)])
    after_interrupt = files_in(run_dir)
    state_after_interrupt = json.loads((run_dir / "state.json").read_text())
    checkpoint = keras.models.load_model(run_dir / "checkpoint-e0002.keras")  # consistent, loadable
    model = tiny_cnn()
    with contextlib.redirect_stdout(second_output):
        result = train(model, data, "paper", epochs=4, batch_size=64, run_dir=run_dir)
    reference_model = tiny_cnn()
    reference = train(reference_model, data, "paper", epochs=4, batch_size=64, verbose=0)
    return dict(run_dir=run_dir, after_interrupt=after_interrupt, state=state_after_interrupt,
                checkpoint=checkpoint, model=model, result=result,
                reference_model=reference_model, reference=reference,
                outputs=(first_output.getvalue(), second_output.getvalue()))


def test_an_interrupted_run_leaves_a_consistent_checkpoint_and_no_result(resumed):
    assert resumed["after_interrupt"] == ["checkpoint-e0002.keras", "config.json", "state.json"]
    state = resumed["state"]
    assert state["epochs_done"] == 2 and state["checkpoint"] == "checkpoint-e0002.keras"
    assert len(state["history"]["loss"]) == 2
    assert int(resumed["checkpoint"].optimizer.iterations) == 2 * 4  # 2 epochs x 4 batches of 64


def test_progress_is_one_line_per_epoch_and_says_where_a_run_stopped_and_resumed(resumed):
    first, second = (text.splitlines() for text in resumed["outputs"])
    assert [line.split()[:2] for line in first[:2]] == [["epoch", "1/4"], ["epoch", "2/4"]]
    assert first[2].startswith("Interrupted after 2 completed epochs") and len(first) == 3
    assert second[0] == f"Resuming from epoch 2 of 4 (checkpoint in {resumed['run_dir']})."
    assert [line.split()[:2] for line in second[1:]] == [["epoch", "3/4"], ["epoch", "4/4"]]
    assert "val_accuracy" in second[1] and second[1].endswith(" s")


def test_a_resumed_run_trains_only_the_rest_and_matches_an_uninterrupted_one(resumed):
    result, reference = resumed["result"], resumed["reference"]
    assert result.resumed_from_epoch == 2
    assert result.epochs == 4 and len(result.history["loss"]) == 4
    assert len(result.epoch_times_s) == 4  # 2 stored + 2 trained now
    # Exactly equal: epoch e sees the same batches, and the optimizer state and dropout RNG come back.
    assert result.history == reference.history
    assert result.test_accuracy == reference.test_accuracy
    for a, b in zip(resumed["model"].get_weights(), resumed["reference_model"].get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_finished_run_leaves_only_final_files(resumed):
    assert files_in(resumed["run_dir"]) == ["checkpoint-e0004.keras", "config.json", "result.json",
                                            "state.json"]
    stored = json.loads((resumed["run_dir"] / "result.json").read_text())
    assert TrainResult.from_dict(stored) == resumed["result"]


def test_a_finished_run_dir_returns_the_stored_result_without_training(resumed, data, capsys):
    leftover = resumed["run_dir"] / ".tmp-123-0a1b2c3d-checkpoint-e0005.keras"
    leftover.write_bytes(b"half a file, as a crash mid-write would leave it")
    counter = CountEpochs()
    model = tiny_cnn()
    start = time.perf_counter()
    again = train(model, data, "paper", epochs=4, batch_size=64, run_dir=resumed["run_dir"],
                  callbacks=[counter])
    assert counter.begun == 0  # model.fit never ran an epoch
    assert time.perf_counter() - start < 10
    assert again == resumed["result"]
    assert "already holds a finished run" in capsys.readouterr().out
    assert not leftover.exists()  # temporary files of interrupted writes are cleaned up
    # ... and the model now holds the run's final weights, ready to evaluate or save.
    for a, b in zip(model.get_weights(), resumed["model"].get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("change, message", [
    (dict(epochs=5), "epochs: 4 \\(stored\\) vs 5 \\(now\\)"),
    (dict(seed=1), "seed: 0 \\(stored\\) vs 1 \\(now\\)"),
    (dict(batch_size=32), "batch_size"),
    (dict(recipe="modern"), "recipe.name: \"paper\" \\(stored\\) vs \"modern\" \\(now\\)"),
    (dict(model=lambda: keras.Model(*_wider_cnn())), "model architecture"),
    (dict(model=lambda: tiny_cnn(seed=7)), "initial weights \\(hash\\)"),  # same architecture, other start
])
def test_a_run_dir_holding_another_run_is_refused(resumed, data, change, message):
    args = dict(model=tiny_cnn, recipe="paper", epochs=4, batch_size=64, seed=0)
    args.update(change)
    model = args.pop("model")()
    with pytest.raises(ValueError, match=message):
        train(model, data, **args, run_dir=resumed["run_dir"], verbose=0)


def _wider_cnn():
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return inputs, keras.layers.Dense(10, activation="softmax")(x)


def test_other_data_in_the_same_run_dir_is_refused(resumed):
    other = load_dataset("fixture", train_size=256, test_size=128, seed=1)
    with pytest.raises(ValueError, match="data \\(hash of images and labels\\)"):
        train(tiny_cnn(), other, "paper", epochs=4, batch_size=64, run_dir=resumed["run_dir"])


def test_a_run_dir_without_a_completed_epoch_is_simply_reused(data, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cnn(), data, epochs=3, batch_size=64, run_dir=tmp_path,
              callbacks=[StopInFirstBatch()], verbose=0)
    assert files_in(tmp_path) == ["config.json"]
    # numpy integers (as from np.arange or a pandas table) are accepted and stored as plain ints
    result = train(tiny_cnn(), data, epochs=np.int64(1), batch_size=np.int32(64), seed=np.int64(3),
                   run_dir=tmp_path, verbose=0)
    assert result.epochs == 1 and result.resumed_from_epoch == 0
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["epochs"], config["batch_size"], config["seed"]) == (1, 64, 3)
    assert TrainResult.from_dict(json.loads((tmp_path / "result.json").read_text())) == result


def test_the_same_architecture_built_again_matches_its_run_dir(resumed, data):
    # Keras numbers automatic layer names per session (dense, dense_1, ...); that is no mismatch.
    tiny_cnn()
    again = train(tiny_cnn(), data, "paper", epochs=4, batch_size=64, run_dir=resumed["run_dir"],
                  verbose=0)
    assert again == resumed["result"]


# --------------------------------------------------------------------------- recipes


def test_the_paper_recipe_trains_with_rmsprop_at_a_constant_rate(two_epochs):
    optimizer = two_epochs[0].optimizer
    assert type(optimizer).__name__ == "RMSprop" and optimizer.weight_decay is None
    assert float(optimizer.learning_rate) == pytest.approx(1e-3)


def test_the_modern_recipe_trains_with_nesterov_sgd_weight_decay_and_augmentation(data):
    model = tiny_cnn()
    result = train(model, data, "modern", epochs=1, batch_size=64, verbose=0)
    assert result.epochs == 1 and math.isfinite(result.history["loss"][0])
    assert result.config["recipe"]["augment"] is True
    optimizer = model.optimizer
    assert type(optimizer).__name__ == "SGD" and optimizer.nesterov
    assert optimizer.momentum == pytest.approx(0.9)
    assert optimizer.weight_decay == pytest.approx(5e-4 / (1 - 0.9))
    assert float(optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)  # cosine ends at 0


def test_a_model_without_softmax_is_trained_on_logits(data):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    result = train(model, data, epochs=1, batch_size=128, verbose=0)
    assert model.loss.get_config()["from_logits"] is True
    assert math.isfinite(result.test_loss)


def test_recipes_say_what_they_are():
    paper = get_recipe("paper")
    assert (paper.optimizer, paper.learning_rate, paper.batch_size) == ("rmsprop", 1e-3, 128)
    assert not paper.augment and paper.weight_decay == 0
    modern = get_recipe(" Modern ")
    assert modern.augment and modern.schedule == "cosine" and modern.weight_decay == 5e-4
    assert modern.learning_rate_for(256) == pytest.approx(0.2)
    assert paper.learning_rate_for(5) == 1e-3
    assert get_recipe(paper) is paper


def test_the_modern_schedule_warms_up_then_decays_to_zero():
    optimizer = RECIPES["modern"].make_optimizer(batch_size=128, steps_per_epoch=100, epochs=30)
    values = []
    for step in (0, 100, 200, 1600, 3000):
        optimizer.iterations.assign(step)
        values.append(float(optimizer.learning_rate))
    assert values[0] == 0.0 and values[1] == pytest.approx(0.05)  # half-way through the warm-up
    assert values[2] == pytest.approx(0.1)  # peak after 2 epochs
    assert 0 < values[3] < 0.1 and values[4] == pytest.approx(0.0, abs=1e-9)


def test_warmup_cosine_matches_keras_cosine_decay_and_survives_a_checkpoint(tmp_path):
    ours = WarmupCosine(peak=0.2, warmup_steps=37, decay_steps=463)
    keras_schedule = keras.optimizers.schedules.CosineDecay(0.0, 463, warmup_target=0.2, warmup_steps=37)
    for step in (0, 1, 18, 36, 37, 38, 250, 499, 500, 800):
        assert float(ours(step)) == pytest.approx(float(keras_schedule(step)), abs=1e-6)
    model = tiny_cnn()
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=ours), loss="sparse_categorical_crossentropy")
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras").optimizer
    restored.iterations.assign(100)  # the schedule came back, not a frozen learning rate
    assert float(restored.learning_rate) == pytest.approx(float(ours(100)))
    assert restored.get_config()["learning_rate"]["class_name"] == "WarmupCosine"


def test_unknown_recipe_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown recipe 'adam'.*\['modern', 'paper'\]"):
        get_recipe("adam")


def test_a_recipe_is_checked_when_made():
    with pytest.raises(ValueError, match="optimizer must be one of \\['rmsprop', 'sgd'\\], got 'adam'"):
        Recipe(name="x", optimizer="adam", learning_rate=1e-3, batch_size=32)
    with pytest.raises(ValueError, match="momentum must be ≥ 0 and < 1, got 1"):
        Recipe(name="x", optimizer="sgd", learning_rate=0.1, batch_size=32, momentum=1.0)
    with pytest.raises(TypeError, match="batch_size must be an integer ≥ 1"):
        Recipe(name="x", optimizer="sgd", learning_rate=0.1, batch_size=32.0)


def test_a_recipe_made_from_numpy_numbers_is_json_ready():
    recipe = Recipe(name="x", optimizer="sgd", learning_rate=np.float32(0.5), batch_size=np.int64(64))
    assert json.loads(json.dumps(recipe.to_dict()))["batch_size"] == 64
    assert type(recipe.learning_rate) is float and recipe.learning_rate == 0.5


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(model="vgg16"), TypeError, "model must be a keras.Model, got str"),
    (dict(data={"x": 1}), TypeError, "data must be a cdp_tutorial.data.Dataset"),
    (dict(epochs=None), ValueError, "epochs is required"),
    (dict(epochs=0), ValueError, "epochs must be an integer ≥ 1, got 0"),
    (dict(epochs=2.5), TypeError, "epochs must be an integer ≥ 1, got 2.5 \\(float\\)"),
    (dict(batch_size=0), ValueError, "batch_size must be an integer ≥ 1, got 0"),
    (dict(seed=-1), ValueError, "seed must be an integer in \\[0, 4294967295\\], got -1"),
    (dict(seed="0"), TypeError, "seed must be an integer in \\[0, 4294967295\\], got .0. \\(str\\)"),
    (dict(recipe="sgd"), ValueError, "unknown recipe 'sgd'"),
    (dict(verbose=3), ValueError, "verbose must be one of"),
    (dict(verbose=True), ValueError, "verbose must be one of"),
    (dict(callbacks=["print"]), TypeError, "callbacks must be keras.callbacks.Callback"),
    (dict(model=lambda: tiny_cnn(num_classes=7)), ValueError,
     "model outputs 7 classes, but fixture has 10"),
    (dict(model=lambda: tiny_cnn(input_shape=(28, 28, 1))), ValueError,
     r"model expects inputs of shape \(28, 28, 1\), but the fixture images are \(32, 32, 3\)"),
])
def test_bad_input_fails_early_with_a_clear_message(data, kwargs, error, message):
    args = dict(model=tiny_cnn, data=data, recipe="paper", epochs=1)
    args.update(kwargs)
    if callable(args["model"]):
        args["model"] = args["model"]()
    with pytest.raises(error, match=message):
        train(args.pop("model"), args.pop("data"), **args)


def test_a_file_is_no_run_dir(data, tmp_path):
    path = tmp_path / "taken"
    path.write_text("not a folder")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        train(tiny_cnn(), data, epochs=1, run_dir=path)


def test_the_docstring_examples_run():
    from cdp_tutorial.training import loop, recipes, result, rundir

    results = {m.__name__: doctest.testmod(m, optionflags=doctest.ELLIPSIS)
               for m in (training, recipes, result, rundir, loop)}
    assert {name: r.failed for name, r in results.items() if r.failed} == {}
    assert sum(r.attempted for r in results.values()) > 5
