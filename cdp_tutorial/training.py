"""Training: train a network once, from scratch, repeatably, and resume it after an interruption.

Complexity-driven pruning derives a smaller architecture and then *trains it once from scratch*
(Fig. 2b of the paper); this module is that "train once" step. One call does it::

    keras.utils.set_random_seed(0)            # the initial weights: the caller's job
    model = vgg16(widths=plan.widths)         # the derived architecture, from scratch
    result = train(model, data, "paper", epochs=150, run_dir="runs/vgg16-pa-0")

Two recipes (:data:`RECIPES`):

* ``"paper"`` -- the paper's protocol: RMSprop, learning rate 1e-3, batch 128, no augmentation, no
  weight decay (Keras 2.2.4, 150 epochs).
* ``"modern"`` -- what public CIFAR baselines use today: SGD with Nesterov momentum, a cosine schedule,
  weight decay and random crop + flip augmentation.

What :func:`train` guarantees:

* **Repeatable.** The order of the training images and their augmentation in epoch *e* depend on
  ``(seed, e)`` (and on TensorFlow's global seed, which ``keras.utils.set_random_seed`` sets along with
  the initial weights); TensorFlow's op determinism is switched on while training. The same seeds and
  the same initial weights give the same history, number for number.
* **Resumable.** With ``run_dir``, every completed epoch is checkpointed atomically (model, optimizer
  state and history). Calling :func:`train` again with the same ``run_dir`` continues from the last
  completed epoch -- and, because epoch *e* sees the same data either way, ends where an uninterrupted
  run would have. A finished ``run_dir`` returns its stored result without training.
* **Honest numbers.** Test accuracy is measured on the test split, as the paper reports it; the
  result records the recipe, data, seed, timings and library versions it came from.

Files in a ``run_dir``:

==========================  ==================================================================
``config.json``             what this run is (recipe, epochs, batch, seed, data, architecture)
``checkpoint-eNNNN.keras``  model + optimizer after the last completed epoch (only one is kept)
``state.json``              completed epochs, history, timings, the checkpoint's file name
``result.json``             the :class:`TrainResult`, once training has finished
==========================  ==================================================================

Every file is written to a temporary name (``.tmp-*``) and renamed into place, so an interruption
leaves the previous version intact, never half a file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import platform
import re
import time
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cdp_tutorial.data import Dataset, make_epochs, make_pipeline
from cdp_tutorial.files import TMP_PREFIX, write_atomically, write_json_atomically

__all__ = ["RECIPES", "Recipe", "TrainResult", "epoch_seed", "get_recipe", "train"]

CONFIG_FILE = "config.json"
STATE_FILE = "state.json"
RESULT_FILE = "result.json"
_CHECKPOINT_PATTERN = "checkpoint-e*.keras"
# Config entries that make two runs different runs. The dataset's description and the versions are
# recorded but not compared: rewording a label or upgrading numpy does not change what was trained.
_IDENTITY_KEYS = ("recipe", "epochs", "batch_size", "seed", "dataset", "train_size", "test_size",
                  "data_fingerprint", "model_fingerprint")
_IDENTITY_LABELS = {"data_fingerprint": "data (hash of images and labels)",
                    "model_fingerprint": "model architecture (hash)"}
_VERBOSE_CHOICES = ("auto", 0, 1, 2)


# --------------------------------------------------------------------------- recipes


@dataclass(frozen=True)
class Recipe:
    """How to train: optimizer, learning-rate schedule, regularisation, augmentation, batch size.

    Attributes
    ----------
    name : str
        Key in :data:`RECIPES`.
    optimizer : {"rmsprop", "sgd"}
        Optimizer family.
    learning_rate : float
        Learning rate (the peak one, for a schedule) at ``batch_size``.
    batch_size : int
        Default batch size.
    momentum : float
        SGD momentum (ignored by RMSprop, whose ``rho`` stays at Keras' 0.9).
    nesterov : bool
        Nesterov momentum (SGD only).
    schedule : {"constant", "cosine"}
        ``"cosine"``: linear warm-up, then cosine decay to zero at the last step.
    warmup_epochs : float
        Length of the warm-up, capped at a tenth of the whole run so short runs still decay.
    weight_decay : float
        L2 coefficient *as PyTorch recipes state it* (added to the gradient, then through momentum).
        Keras' ``weight_decay`` is decoupled (``w -= lr * wd * w`` each step), so the optimizer gets
        ``weight_decay / (1 - momentum)``: the same shrinkage per step once momentum is in steady state.
    augment : bool
        Random crop (pad 4) and horizontal flip of the training images.
    scale_lr_with_batch : bool
        Linear scaling rule (Goyal et al. 2017): the learning rate is ``learning_rate * b / batch_size``
        for a batch size ``b`` other than the default.
    summary : str
        One line for notebooks and result tables.
    """

    name: str
    optimizer: str
    learning_rate: float
    batch_size: int
    momentum: float = 0.0
    nesterov: bool = False
    schedule: str = "constant"
    warmup_epochs: float = 0.0
    weight_decay: float = 0.0
    augment: bool = False
    scale_lr_with_batch: bool = False
    summary: str = ""

    def __post_init__(self):
        if self.optimizer not in ("rmsprop", "sgd"):
            raise ValueError(f"optimizer must be 'rmsprop' or 'sgd', got {self.optimizer!r}")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be 'constant' or 'cosine', got {self.schedule!r}")
        if not (isinstance(self.batch_size, numbers.Integral) and self.batch_size >= 1):
            raise ValueError(f"batch_size must be a positive int, got {self.batch_size!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")

    def learning_rate_for(self, batch_size: int) -> float:
        """Peak learning rate for ``batch_size`` (linearly scaled if ``scale_lr_with_batch``).

        Examples
        --------
        >>> RECIPES["modern"].learning_rate_for(256)
        0.2
        >>> RECIPES["paper"].learning_rate_for(5)  # the paper keeps 1e-3 at any batch size
        0.001
        """
        if self.scale_lr_with_batch:
            return self.learning_rate * batch_size / self.batch_size
        return self.learning_rate

    def make_optimizer(self, *, batch_size: int, steps_per_epoch: int, epochs: int):
        """Build a fresh Keras optimizer for a run of ``epochs`` x ``steps_per_epoch`` steps.

        Examples
        --------
        >>> opt = RECIPES["paper"].make_optimizer(batch_size=128, steps_per_epoch=391, epochs=150)
        >>> type(opt).__name__, round(float(opt.learning_rate), 6)
        ('RMSprop', 0.001)
        >>> opt = RECIPES["modern"].make_optimizer(batch_size=256, steps_per_epoch=196, epochs=30)
        >>> type(opt).__name__, opt.nesterov, round(opt.weight_decay, 6)  # 5e-4 / (1 - 0.9)
        ('SGD', True, 0.005)
        """
        peak = self.learning_rate_for(batch_size)
        total_steps = max(1, steps_per_epoch * epochs)
        if self.schedule == "cosine":
            warmup = min(round(self.warmup_epochs * steps_per_epoch), total_steps // 10)
            if warmup > 0:
                lr = keras.optimizers.schedules.CosineDecay(
                    initial_learning_rate=0.0, decay_steps=total_steps - warmup,
                    warmup_target=peak, warmup_steps=warmup)
            else:
                lr = keras.optimizers.schedules.CosineDecay(peak, decay_steps=total_steps)
        else:
            lr = peak
        # Keras' decoupled decay, matched to the coupled L2 the reference recipes state (see above).
        decay = self.weight_decay / (1.0 - self.momentum) if self.weight_decay else None
        if self.optimizer == "rmsprop":
            return keras.optimizers.RMSprop(learning_rate=lr, weight_decay=decay)
        return keras.optimizers.SGD(learning_rate=lr, momentum=self.momentum, nesterov=self.nesterov,
                                    weight_decay=decay)

    def to_dict(self) -> dict:
        """Plain dict (JSON-ready)."""
        return dataclasses.asdict(self)


RECIPES: dict[str, Recipe] = {
    # The paper (Zawish et al. 2022): Keras 2.2.4, 150 epochs, batch 128, RMSprop with learning rate
    # 1e-3; nothing is said about augmentation, weight decay or a schedule, so there is none. Keras 3's
    # RMSprop keeps Keras 2's rho=0.9 and epsilon=1e-7, but adds epsilon inside the square root
    # (lr*g/sqrt(v+eps)) where Keras 2.2.4 added it outside (lr*g/(sqrt(v)+eps)): a negligible change.
    "paper": Recipe(
        name="paper", optimizer="rmsprop", learning_rate=1e-3, batch_size=128,
        summary="paper: RMSprop lr 1e-3, batch 128, no augmentation, no weight decay",
    ),
    # Public CIFAR baselines. kuangliu/pytorch-cifar's README reports VGG16 92.64 % on CIFAR-10 with
    # SGD (momentum 0.9, weight decay 5e-4) and random crop (pad 4) + flip; lmbxmu/HRankPlus's README
    # reports a VGG-16-BN baseline of 93.96 % (14.98 M params, 313.73 M FLOPs); da2so/DA2Lite's model
    # zoo reports VGG16 93.17 %. We add Nesterov momentum, cosine decay with a 2-epoch warm-up (no
    # hand-tuned step schedule) and scale the learning rate linearly with the batch size. No label
    # smoothing: those baselines do not use it, and Keras' sparse cross-entropy does not offer it.
    "modern": Recipe(
        name="modern", optimizer="sgd", learning_rate=0.1, batch_size=128, momentum=0.9,
        nesterov=True, schedule="cosine", warmup_epochs=2.0, weight_decay=5e-4, augment=True,
        scale_lr_with_batch=True,
        summary="modern: SGD nesterov 0.9, lr 0.1 x batch/128, cosine, 2-epoch warm-up, "
                "weight decay 5e-4, crop + flip",
    ),
}


def get_recipe(name) -> Recipe:
    """Return the recipe called ``name`` (a :class:`Recipe` is passed through).

    Raises
    ------
    ValueError
        Unknown name; the message lists the known ones.

    Examples
    --------
    >>> get_recipe("paper").optimizer
    'rmsprop'
    >>> get_recipe("Modern").weight_decay
    0.0005
    """
    if isinstance(name, Recipe):
        return name
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {sorted(RECIPES)}")
    return RECIPES[key]


# --------------------------------------------------------------------------- result


@dataclass
class TrainResult:
    """What one training run produced, and what it came from.

    Attributes
    ----------
    test_accuracy, test_loss : float
        On the test split after the last epoch.
    history : dict of str to list of float
        Per epoch: ``loss``, ``accuracy`` (training), ``val_loss``, ``val_accuracy`` (test split) and
        ``learning_rate`` (at the end of the epoch).
    epochs : int
        Epochs trained (fewer than requested only if a callback stopped training early).
    wall_time_s : float
        Sum of ``epoch_times_s``: the time spent training, across resumes, without checkpointing.
    epoch_times_s : list of float
        Wall time of each epoch, training plus validation. The first includes graph tracing.
    train_times_s : list of float
        Training part of each epoch only.
    images_per_second : float
        Training images processed per second of ``train_times_s``.
    params : int
        ``model.count_params()``.
    config : dict
        Recipe, epochs, batch size, seed, dataset name, description and sizes, fingerprints.
    versions : dict
        Python, TensorFlow, Keras, NumPy and cdp_tutorial versions.
    resumed_from_epoch : int
        Completed epochs loaded from a checkpoint (0 for a fresh run).
    """

    test_accuracy: float
    test_loss: float
    history: dict
    epochs: int
    wall_time_s: float
    epoch_times_s: list
    train_times_s: list
    images_per_second: float
    params: int
    config: dict
    versions: dict
    resumed_from_epoch: int = 0

    def to_dict(self) -> dict:
        """Plain dict, JSON-serialisable.

        Examples
        --------
        >>> r = TrainResult(0.5, 1.2, {"loss": [1.3]}, 1, 2.0, [2.0], [1.5], 100.0, 10, {}, {})
        >>> TrainResult.from_dict(json.loads(json.dumps(r.to_dict()))) == r
        True
        """
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> TrainResult:
        """Rebuild a result from :meth:`to_dict` output (unknown keys are ignored)."""
        names = [f.name for f in dataclasses.fields(cls)]
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        missing = [n for n in required if n not in data]
        if missing:
            raise ValueError(f"not a TrainResult: missing {missing}")
        return cls(**{n: data[n] for n in names if n in data})

    def summary(self) -> str:
        """One line for a notebook: accuracy, epochs, time, speed and what data it was.

        Examples
        --------
        >>> r = TrainResult(0.8123, 0.5, {}, 3, 42.0, [14.0] * 3, [12.0] * 3, 250.0, 10, {}, {})
        >>> r.summary()
        'test accuracy 81.23 % (loss 0.5000) after 3 epochs, 42.0 s, 250 images/s'
        """
        text = (f"test accuracy {100 * self.test_accuracy:.2f} % (loss {self.test_loss:.4f}) after "
                f"{self.epochs} epochs, {self.wall_time_s:.1f} s, {self.images_per_second:.0f} images/s")
        description = self.config.get("dataset_description")
        return f"{text} -- {description}" if description else text


# --------------------------------------------------------------------------- train


def train(model, data, recipe="paper", epochs=None, batch_size=None, seed=0, run_dir=None, *,
          verbose="auto", callbacks=(), deterministic=True) -> TrainResult:
    """Compile ``model`` with a recipe and train it on ``data``, validating on the test split.

    The model is trained in place. Its initial weights are the caller's: call
    ``keras.utils.set_random_seed(seed)`` before building it for repeatable ones (this also fixes
    TensorFlow's global seed, which ``tf.data`` combines with each epoch's shuffle seed, and the
    dropout layers' random state).

    Parameters
    ----------
    model : keras.Model
        A single-output classifier; any previous ``compile`` is replaced. A softmax output is
        trained on probabilities, any other output as logits.
    data : cdp_tutorial.data.Dataset
        From :func:`cdp_tutorial.data.load_dataset`.
    recipe : str or Recipe, default "paper"
        ``"paper"`` or ``"modern"`` (see :data:`RECIPES`).
    epochs : int
        Number of epochs, at least 1. Required.
    batch_size : int, optional
        Default: the recipe's (128).
    seed : int, default 0
        Seed of the data order and augmentation: epoch ``e`` uses a seed derived from ``(seed, e)``.
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
        ``model`` is not a ``keras.Model``, ``data`` not a ``Dataset``, or a callback not a Callback.
    ValueError
        Unknown recipe; ``epochs``, ``batch_size`` or ``seed`` out of range; the model's input or
        output does not fit the data; ``run_dir`` holds a different run.

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

    config = _run_config(model, data, recipe, epochs, batch_size, seed, deterministic)
    run = _RunDir(Path(run_dir), config) if run_dir is not None else None
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
    progress = _Progress.fresh() if state is None else _Progress.from_state(state)
    if progress.epochs_done:
        say(f"Resuming from epoch {progress.epochs_done} of {epochs} (checkpoint in {run.path}).")

    recorder = _EpochRecorder(progress, run, epochs=epochs,
                              echo=say if verbose == "auto" else None)
    test_data = make_pipeline(data, "test", batch_size=batch_size, shuffle=False, cache=False)
    with _op_determinism(deterministic):
        if progress.epochs_done < epochs:
            train_data = _training_stream(data, recipe, batch_size, seed,
                                          first_epoch=progress.epochs_done, last_epoch=epochs)
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
        versions=_versions(),
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
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


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

    TensorFlow exports only ``enable_op_determinism``; reading and undoing it uses its internal
    module. If that is unavailable, determinism stays on (safe, possibly slower) after training.
    """
    if not enabled:
        yield
        return
    try:
        from tensorflow.python.framework import config as tf_config
        was_enabled = tf_config.is_op_determinism_enabled()
    except (ImportError, AttributeError):
        tf_config, was_enabled = None, True
    tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if tf_config is not None and not was_enabled:
            tf_config.disable_op_determinism()


# --------------------------------------------------------------------------- progress and run dir


@dataclass
class _Progress:
    """Completed epochs of one run: history, timings and where a resume started."""

    history: dict
    epoch_times_s: list
    train_times_s: list
    resumed_from_epoch: int = 0

    @classmethod
    def fresh(cls) -> _Progress:
        keys = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")
        return cls(history={k: [] for k in keys}, epoch_times_s=[], train_times_s=[])

    @classmethod
    def from_state(cls, state: dict) -> _Progress:
        return cls(history=state["history"], epoch_times_s=state["epoch_times_s"],
                   train_times_s=state["train_times_s"], resumed_from_epoch=state["epochs_done"])

    @property
    def epochs_done(self) -> int:
        return len(self.history["loss"])


class _EpochRecorder(keras.callbacks.Callback):
    """Times each epoch, records its metrics and checkpoints the run after it."""

    def __init__(self, progress: _Progress, run, *, epochs: int, echo=None):
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


class _RunDir:
    """One run's folder: checks it belongs to this run, writes and reads its files atomically."""

    def __init__(self, path: Path, config: dict):
        self.path = path
        if path.exists() and not path.is_dir():
            raise ValueError(f"run_dir {str(path)!r} exists and is not a folder")
        path.mkdir(parents=True, exist_ok=True)
        self._remove_leftovers()
        stored = _read_json(path / CONFIG_FILE)
        if stored is not None and self._has_progress():
            _check_same_run(path, stored, config)
        else:  # nothing completed yet (e.g. stopped in epoch 1): nothing to mix up, start afresh
            write_json_atomically(path / CONFIG_FILE, config)

    def _has_progress(self) -> bool:
        return (self.path / STATE_FILE).is_file() or (self.path / RESULT_FILE).is_file()

    def finished(self) -> bool:
        return (self.path / RESULT_FILE).is_file()

    def load_result(self) -> TrainResult:
        return TrainResult.from_dict(_read_json(self.path / RESULT_FILE))

    def restore_into(self, model) -> dict | None:
        """Load the last checkpoint (weights, optimizer state, dropout RNG) into ``model``.

        Returns the saved state, or None when there is no completed epoch to resume from.
        """
        state = _read_json(self.path / STATE_FILE)
        if state is None:
            return None
        checkpoint = self.path / state["checkpoint"]
        if not checkpoint.is_file():
            raise ValueError(f"{self.path / STATE_FILE} names {checkpoint.name}, which is missing; "
                             "the run_dir was modified by hand. Delete the folder to start over.")
        model.optimizer.build(model.trainable_variables)  # so the optimizer's state is loaded too
        model.load_weights(checkpoint)
        # Keras does not save the dropout layers' RNG state; state.json does, so a resumed run
        # drops the same units an uninterrupted one would.
        for variable, value in zip(_seed_variables(model), state["seed_states"]):
            variable.assign(np.asarray(value, dtype=variable.dtype))
        return state

    def save_checkpoint(self, model, progress: _Progress) -> None:
        """Write the checkpoint, then the state naming it, then drop the older checkpoint.

        Until ``state.json`` is replaced it still names the previous checkpoint, which still exists:
        whenever the process stops, state and checkpoint agree.
        """
        name = f"checkpoint-e{progress.epochs_done:04d}.keras"
        write_atomically(self.path / name, model.save)
        state = {
            "epochs_done": progress.epochs_done,
            "checkpoint": name,
            "history": progress.history,
            "epoch_times_s": progress.epoch_times_s,
            "train_times_s": progress.train_times_s,
            "seed_states": [np.asarray(keras.ops.convert_to_numpy(v)).tolist()
                            for v in _seed_variables(model)],
        }
        write_json_atomically(self.path / STATE_FILE, state)
        for old in self.path.glob(_CHECKPOINT_PATTERN):
            if old.name != name:
                old.unlink()

    def save_result(self, result: TrainResult) -> None:
        write_json_atomically(self.path / RESULT_FILE, result.to_dict())

    def _remove_leftovers(self) -> None:
        """Delete temporary files an interrupted write left behind."""
        for leftover in self.path.glob(f"{TMP_PREFIX}*"):
            leftover.unlink()


def _check_same_run(path: Path, stored: dict, config: dict) -> None:
    differences = []
    for key in _IDENTITY_KEYS:
        old, new = stored.get(key), config.get(key)
        if old == new:
            continue
        label = _IDENTITY_LABELS.get(key, key)
        if isinstance(old, dict) and isinstance(new, dict):  # a recipe: name only what changed
            changed = [k for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
            differences += [f"{label}.{k}: {_short(old.get(k))} (stored) vs {_short(new.get(k))} (now)"
                            for k in changed]
        else:
            differences.append(f"{label}: {_short(old)} (stored) vs {_short(new)} (now)")
    if differences:
        raise ValueError(
            f"run_dir {str(path)!r} holds a different run, so it cannot be resumed or reused:\n  "
            + "\n  ".join(differences)
            + "\nUse another run_dir, or delete this one to start over."
        )


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def _seed_variables(model) -> list:
    """The model's random-number-generator states (dropout and the like), in a stable order."""
    return [v for v in model.non_trainable_variables if v.path.endswith("seed_generator_state")]


# --------------------------------------------------------------------------- files


def _read_json(path: Path):
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# --------------------------------------------------------------------------- checks and records


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
    epochs = _check_int(epochs, "epochs", minimum=1)
    batch_size = (recipe.batch_size if batch_size is None
                  else _check_int(batch_size, "batch_size", minimum=1))
    seed = _check_int(seed, "seed", minimum=0)
    if verbose not in _VERBOSE_CHOICES or isinstance(verbose, bool):
        raise ValueError(f"verbose must be one of {_VERBOSE_CHOICES}, got {verbose!r}")
    callbacks = list(callbacks or ())
    for callback in callbacks:
        if not isinstance(callback, keras.callbacks.Callback):
            raise TypeError(f"callbacks must be keras.callbacks.Callback instances, "
                            f"got {type(callback).__name__}")
    return recipe, epochs, batch_size, seed, callbacks


def _check_int(value, what: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{what} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, got {value}")
    return int(value)


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


def _run_config(model, data, recipe, epochs, batch_size, seed, deterministic) -> dict:
    return {
        "recipe": recipe.to_dict(),
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "deterministic": bool(deterministic),
        "dataset": data.name,
        "dataset_description": data.description,
        "train_size": int(len(data.y_train)),
        "test_size": int(len(data.y_test)),
        "num_classes": int(data.num_classes),
        "data_fingerprint": _data_fingerprint(data),
        "model_name": model.name,
        "model_fingerprint": _model_fingerprint(model),
        "params": int(model.count_params()),
    }


def _data_fingerprint(data) -> str:
    """SHA-256 (first 16 hex digits) of the images and labels: another subset is another run."""
    digest = hashlib.sha256()
    for array in (data.x_train, data.y_train, data.x_test, data.y_test):
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()[:16]


def _model_fingerprint(model) -> str:
    """SHA-256 (first 16 hex digits) of the architecture: layer configs, wiring and weight shapes.

    Layer names are replaced by positions, because Keras numbers automatic names per session
    (``conv2d``, ``conv2d_1``, ...) and the same architecture built twice must match itself.
    """
    names = {layer.name: f"<layer {i}>" for i, layer in enumerate(model.layers)}
    names[model.name] = "<model>"
    try:
        config = model.get_config()
    except (NotImplementedError, TypeError, ValueError):  # subclassed models may not have one
        config = [layer.__class__.__name__ for layer in model.layers]

    def anonymise(node):
        if isinstance(node, dict):
            return {k: anonymise(v) for k, v in node.items() if k != "name"}
        if isinstance(node, (list, tuple)):
            return [anonymise(v) for v in node]
        if isinstance(node, str):
            return names.get(node, node)
        return node

    described = {"class": type(model).__name__, "config": anonymise(config),
                 "weights": [list(v.shape) for v in model.weights]}
    text = json.dumps(described, sort_keys=True, default=repr)
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", text)  # repr of an odd object: no memory addresses
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _versions() -> dict:
    import cdp_tutorial

    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__,
            "cdp_tutorial": getattr(cdp_tutorial, "__version__", "unknown")}
