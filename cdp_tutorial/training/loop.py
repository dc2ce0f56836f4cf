"""The training loop: :func:`train` compiles a model with a recipe, trains it, and resumes it.

Complexity-driven pruning derives a smaller architecture and then *trains it once from scratch*
(Fig. 2b of the paper); this module is that "train once" step. One call does it::

    keras.utils.set_random_seed(0)            # the initial weights: the caller's job
    model = vgg16(widths=plan.widths)         # the derived architecture, from scratch
    result = train(model, data, "paper", epochs=150, run_dir="runs/vgg16-pa-0")

What :func:`train` guarantees:

* **Repeatable.** The order of the training images and their augmentation in epoch *e* depend only
  on :func:`epoch_seed` ``(seed, e)``: :func:`cdp_tutorial.data.make_epochs` uses stateless random
  ops, so TensorFlow's global seed plays no part in the data. TensorFlow's op determinism is
  switched on while training. The same ``seed`` and the same initial weights (and dropout state,
  both fixed by ``keras.utils.set_random_seed`` before the model is built) give the same history,
  number for number.
* **Resumable.** With ``run_dir``, every completed epoch is checkpointed atomically (model, optimizer
  state, dropout RNG state and history; :mod:`cdp_tutorial.training.rundir`). Calling :func:`train`
  again with the same ``run_dir`` continues from the last completed epoch -- and, because epoch *e*
  sees the same data either way, ends where an uninterrupted run would have. A finished ``run_dir``
  returns its stored result without training.
* **Honest numbers.** Test accuracy is measured on the test split, as the paper reports it; the
  result records the recipe, data, seed, timings and library versions it came from.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cdp_tutorial.checks import check_choice, check_int, check_seed
from cdp_tutorial.data import Dataset, make_epochs, make_pipeline
from cdp_tutorial.keras_internals import disable_op_determinism, op_determinism_enabled
from cdp_tutorial.training.recipes import get_recipe
from cdp_tutorial.training.result import TrainResult, library_versions
from cdp_tutorial.training.rundir import RESULT_FILE, STATE_FILE, Progress, RunDir, run_config

__all__ = ["epoch_seed", "train"]

_VERBOSE_CHOICES = ("auto", 0, 1, 2)


def train(model, data, recipe="paper", epochs=None, batch_size=None, seed=0, run_dir=None, *,
          verbose="auto", callbacks=(), deterministic=True) -> TrainResult:
    """Compile ``model`` with a recipe and train it on ``data``, validating on the test split.

    The model is trained in place. Its initial weights are the caller's: call
    ``keras.utils.set_random_seed(seed)`` before building it for repeatable ones (this also fixes
    the dropout layers' random state). The data order and augmentation depend on ``seed`` alone.

    Parameters
    ----------
    model : keras.Model
        A single-output classifier; any previous ``compile`` is replaced. A softmax output is
        trained on probabilities, any other output as logits.
    data : cdp_tutorial.data.Dataset
        From :func:`cdp_tutorial.data.load_dataset`.
    recipe : str or Recipe, default "paper"
        ``"paper"`` or ``"modern"`` (see :data:`cdp_tutorial.training.RECIPES`).
    epochs : int
        Number of epochs, at least 1. Required.
    batch_size : int, optional
        Default: the recipe's (128).
    seed : int, default 0
        Seed of the data order and augmentation: epoch ``e`` uses :func:`epoch_seed` ``(seed, e)``.
        Numpy integers are accepted and recorded as plain ints.
    run_dir : str or pathlib.Path, optional
        Folder for checkpoints and the result. Training there again resumes an interrupted run, or
        returns a finished run's result (and loads its final weights into ``model``) without training.
    verbose : {"auto", 0, 1, 2}, default "auto"
        ``"auto"``: one line per epoch; 0: silent; 1: Keras' progress bar; 2: Keras' line per epoch.
    callbacks : sequence of keras.callbacks.Callback, optional
        Extra callbacks; they run after the epoch's checkpoint is written.
    deterministic : bool, default True
        Switch TensorFlow's op determinism on while training (restored afterwards). On the 2-core
        CPU machines this package is tested on it cost no measurable CPU time (wall-time differences
        were within the noise of a shared machine); on a GPU, deterministic kernels can be slower --
        pass False there to trade bit-for-bit repeatability for speed.

    Returns
    -------
    TrainResult

    Raises
    ------
    TypeError
        ``model`` is not a ``keras.Model``, ``data`` not a ``Dataset``, a callback not a Callback,
        or ``epochs``, ``batch_size`` or ``seed`` not an integer.
    ValueError
        Unknown recipe or ``verbose``; ``epochs``, ``batch_size`` or ``seed`` out of range; the
        model's input or output does not fit the data; ``run_dir`` holds a different run.

    Examples
    --------
    >>> from cdp_tutorial.data import load_dataset
    >>> from cdp_tutorial.models import vgg16  # doctest: +SKIP
    >>> data = load_dataset("fixture")
    >>> keras.utils.set_random_seed(0)
    >>> model = vgg16(width_multiplier=0.25)  # doctest: +SKIP
    >>> result = train(model, data, "paper", epochs=3, run_dir="runs/vgg16-quarter")  # doctest: +SKIP
    epoch 1/3  loss ...
    >>> print(result.summary())  # doctest: +SKIP
    test accuracy ... after 3 epochs, ... -- fixture: 2,000/500 Fashion-MNIST images ... (not CIFAR)

    Run the same cell again: it returns the stored result at once, or resumes if it was interrupted.
    """
    # Check everything before any work, so a typo fails in a second, not after an epoch.
    recipe, epochs, batch_size, seed, callbacks = _check_arguments(
        model, data, recipe, epochs, batch_size, seed, verbose, callbacks)
    from_logits = _check_model_fits_data(model, data)

    config = run_config(model, data, recipe, epochs, batch_size, seed, deterministic)
    run = RunDir(Path(run_dir), config) if run_dir is not None else None
    say = print if verbose != 0 else (lambda *args, **kwargs: None)

    steps_per_epoch = math.ceil(len(data.y_train) / batch_size)
    model.compile(
        optimizer=recipe.make_optimizer(batch_size=batch_size, steps_per_epoch=steps_per_epoch,
                                        epochs=epochs),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        metrics=["accuracy"],
    )

    if run is not None and run.finished():
        stored = run.load_result()
        if run.restore_into(model) is None:
            raise ValueError(f"{run.path} has a {RESULT_FILE} but no {STATE_FILE}: it was modified by "
                             "hand. Delete the folder to train again.")
        say(f"{run.path} already holds a finished run ({stored.epochs} epochs, test accuracy "
            f"{100 * stored.test_accuracy:.2f} %): returning the stored result and its final weights "
            "without training. Delete the folder to train again.")
        return stored

    state = run.restore_into(model) if run is not None else None
    progress = Progress.fresh() if state is None else Progress.from_state(state)
    if progress.epochs_done:
        say(f"Resuming from epoch {progress.epochs_done} of {epochs} (checkpoint in {run.path}).")

    recorder = _EpochRecorder(progress, run, epochs=epochs,
                              echo=say if verbose == "auto" else None)
    test_data = make_pipeline(data, "test", batch_size=batch_size, cache=False)
    with _op_determinism(deterministic):
        if progress.epochs_done < epochs:
            train_data = _training_stream(data, recipe, batch_size, seed,
                                          first_epoch=progress.epochs_done, last_epoch=epochs)
            _build_before_fit(model, test_data)
            try:
                model.fit(train_data, epochs=epochs, initial_epoch=progress.epochs_done,
                          steps_per_epoch=steps_per_epoch, validation_data=test_data, shuffle=False,
                          callbacks=[recorder, *callbacks], verbose=0 if verbose == "auto" else verbose)
            except KeyboardInterrupt:
                if run is not None:
                    say(f"Interrupted after {progress.epochs_done} completed epochs, saved in {run.path}; "
                        "call train() again with the same run_dir to resume.")
                raise
        scores = model.evaluate(test_data, verbose=0, return_dict=True)

    trained, train_time = progress.epochs_done, sum(progress.train_times_s)
    result = TrainResult(
        test_accuracy=float(scores["accuracy"]),
        test_loss=float(scores["loss"]),
        history=progress.history,
        epochs=trained,
        wall_time_s=float(sum(progress.epoch_times_s)),
        epoch_times_s=progress.epoch_times_s,
        train_times_s=progress.train_times_s,
        images_per_second=len(data.y_train) * trained / train_time if train_time > 0 else 0.0,
        params=int(model.count_params()),
        config=config,
        versions=library_versions(),
        resumed_from_epoch=progress.resumed_from_epoch,
    )
    if run is not None:
        run.save_result(result)
    return result


# --------------------------------------------------------------------------- data stream


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of the shuffle and augmentation of epoch ``epoch`` (0-based) of a run seeded ``seed``.

    A hash of both numbers, so neighbouring seeds do not share epochs (seed 1's epoch 0 is not
    seed 0's epoch 1).

    Examples
    --------
    >>> epoch_seed(0, 3) == epoch_seed(0, 3), epoch_seed(0, 1) == epoch_seed(1, 0)
    (True, False)
    """
    seed, epoch = check_seed(seed), check_int(epoch, "epoch", minimum=0)
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _build_before_fit(model, test_data) -> None:
    """Create the optimizer's and the metrics' variables before ``fit`` traces the training step.

    Created inside ``fit``'s first trace, they make TensorFlow trace the step a second time, and
    creating variables inside a graph is slow in itself: for VGG-16 on a slow CPU that was about
    8 s per run, a third of a quick-profile run. Evaluating one test batch builds the metrics (and
    traces the evaluation step that validation needs anyway); it changes no weight.
    """
    if not model.optimizer.built:  # a resumed run's optimizer is built already, with its state
        model.optimizer.build(model.trainable_variables)
    model.evaluate(test_data.take(1), verbose=0)


def _training_stream(data, recipe, batch_size, seed, *, first_epoch, last_epoch) -> tf.data.Dataset:
    """Batches of epochs ``first_epoch .. last_epoch - 1``, one after another, as one dataset.

    Epoch ``e`` is shuffled (and augmented) with :func:`epoch_seed` ``(seed, e)``, so it is the same
    batches whether training started at epoch 0 or resumed at ``e``. (A single pipeline that
    reshuffles every epoch could not be fast-forwarded to epoch ``e`` on resume.)
    """
    seeds = [epoch_seed(seed, epoch) for epoch in range(first_epoch, last_epoch)]
    return make_epochs(data, batch_size=batch_size, seeds=seeds, augment=recipe.augment)


@contextmanager
def _op_determinism(enabled: bool):
    """Switch TensorFlow's op determinism on inside the block, and back to what it was after.

    TensorFlow's public API can only switch it on; reading and undoing it go through
    :mod:`cdp_tutorial.keras_internals`.
    """
    if not enabled:
        yield
        return
    was_enabled = op_determinism_enabled()
    tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if not was_enabled:
            disable_op_determinism()


class _EpochRecorder(keras.callbacks.Callback):
    """Times each epoch, records its metrics and checkpoints the run after it."""

    def __init__(self, progress: Progress, run, *, epochs: int, echo=None):
        super().__init__()
        self.progress, self.run, self.epochs, self.echo = progress, run, epochs, echo
        self._start = self._train_end = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._train_end = time.perf_counter(), None

    def on_test_begin(self, logs=None):  # validation starts: the training part of the epoch is over
        if self._start is not None and self._train_end is None:
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        end = time.perf_counter()
        logs = logs or {}
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            self.progress.history[key].append(float(logs.get(key, float("nan"))))
        self.progress.history["learning_rate"].append(
            float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))
        self.progress.epoch_times_s.append(end - self._start)
        self.progress.train_times_s.append((self._train_end or end) - self._start)
        if self.run is not None:
            self.run.save_checkpoint(self.model, self.progress)
        if self.echo is not None:
            h = self.progress.history
            self.echo(f"epoch {epoch + 1}/{self.epochs}  loss {h['loss'][-1]:.4f}  "
                      f"accuracy {h['accuracy'][-1]:.4f}  val_loss {h['val_loss'][-1]:.4f}  "
                      f"val_accuracy {h['val_accuracy'][-1]:.4f}  lr {h['learning_rate'][-1]:.3g}  "
                      f"{self.progress.epoch_times_s[-1]:.1f} s")


def _check_arguments(model, data, recipe, epochs, batch_size, seed, verbose, callbacks):
    """Validate :func:`train`'s arguments; return ``(recipe, epochs, batch_size, seed, callbacks)``."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a cdp_tutorial.data.Dataset (from load_dataset), "
                        f"got {type(data).__name__}")
    recipe = get_recipe(recipe)
    if epochs is None:
        raise ValueError("epochs is required: an int >= 1, e.g. train(model, data, epochs=3)")
    epochs = check_int(epochs, "epochs", minimum=1)
    batch_size = (recipe.batch_size if batch_size is None
                  else check_int(batch_size, "batch_size", minimum=1))
    seed = check_seed(seed)
    check_choice(verbose, "verbose", _VERBOSE_CHOICES)
    callbacks = list(callbacks or ())
    for callback in callbacks:
        if not isinstance(callback, keras.callbacks.Callback):
            raise TypeError(f"callbacks must be keras.callbacks.Callback instances, "
                            f"got {type(callback).__name__}")
    return recipe, epochs, batch_size, seed, callbacks


def _check_model_fits_data(model, data) -> bool:
    """Raise ValueError unless ``model`` maps the data's images to ``num_classes`` scores.

    Returns whether the output is logits (no softmax at the end).
    """
    image_shape = tuple(data.x_train.shape[1:])
    inputs = getattr(model, "inputs", None)
    if inputs and len(inputs) == 1:
        expected = tuple(inputs[0].shape[1:])
        if len(expected) != len(image_shape) or any(
                e is not None and e != s for e, s in zip(expected, image_shape)):
            raise ValueError(f"model expects inputs of shape {expected}, but the {data.name} images "
                             f"are {image_shape}")
    outputs = getattr(model, "outputs", None)
    if outputs:
        if len(outputs) != 1:
            raise ValueError(f"model must have one output (class scores), it has {len(outputs)}")
        output_shape = tuple(outputs[0].shape)
    else:
        output_shape = tuple(model.compute_output_spec(keras.KerasTensor((1, *image_shape))).shape)
    if output_shape[-1] != data.num_classes:
        raise ValueError(f"model outputs {output_shape[-1]} classes, but {data.name} has "
                         f"{data.num_classes}; build it with num_classes={data.num_classes}")
    last = model.layers[-1] if model.layers else None
    while isinstance(last, keras.Model) and last.layers:  # a nested model: its own last layer
        last = last.layers[-1]
    ends_in_softmax = isinstance(last, keras.layers.Softmax) or getattr(
        getattr(last, "activation", None), "__name__", None) == "softmax"
    return not ends_in_softmax

