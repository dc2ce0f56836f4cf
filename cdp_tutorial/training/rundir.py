"""A run's folder: what run it holds, its checkpoints, and resuming from them.

:func:`cdp_tutorial.training.train` with a ``run_dir`` keeps one run per folder:

==========================  ==================================================================
``config.json``             what this run is (recipe, epochs, batch, seed, data, architecture)
``checkpoint-eNNNN.keras``  model + optimizer after the last completed epoch (only one is kept)
``state.json``              completed epochs, history, timings, the checkpoint's file name
``result.json``             the :class:`~cdp_tutorial.training.TrainResult`, once training has finished
==========================  ==================================================================

Every file is written to a temporary name (``.tmp-*``) and renamed into place, so an interruption
leaves the previous version intact, never half a file. A folder whose ``config.json`` describes
another run (other recipe, epochs, batch size, seed, data, architecture or initial weights:
:data:`IDENTITY_KEYS`) is refused, with a message naming each difference, rather than silently mixed
with this one.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from cdp_tutorial.files import TMP_PREFIX, write_atomically, write_json_atomically
from cdp_tutorial.training.result import TrainResult

__all__ = ["CONFIG_FILE", "IDENTITY_KEYS", "RESULT_FILE", "STATE_FILE", "Progress", "RunDir", "run_config",
           "weights_fingerprint"]

CONFIG_FILE = "config.json"
STATE_FILE = "state.json"
RESULT_FILE = "result.json"
_CHECKPOINT_PATTERN = "checkpoint-e*.keras"
# Config entries that make two runs different runs. The dataset's description and the versions are
# recorded but not compared: rewording a label or upgrading numpy does not change what was trained.
IDENTITY_KEYS = ("recipe", "epochs", "batch_size", "seed", "dataset", "train_size", "test_size",
                 "data_fingerprint", "model_fingerprint", "initial_weights")
_IDENTITY_LABELS = {"data_fingerprint": "data (hash of images and labels)",
                    "model_fingerprint": "model architecture (hash)",
                    "initial_weights": "initial weights (hash)"}


@dataclass
class Progress:
    """Completed epochs of one run: history, timings and where a resume started.

    ``history`` holds one list per metric (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``,
    ``learning_rate``), one value per completed epoch; ``epoch_times_s`` and ``train_times_s`` one
    wall time per completed epoch.
    """

    history: dict
    epoch_times_s: list
    train_times_s: list
    resumed_from_epoch: int = 0

    @classmethod
    def fresh(cls) -> Progress:
        """No epoch completed yet."""
        keys = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")
        return cls(history={k: [] for k in keys}, epoch_times_s=[], train_times_s=[])

    @classmethod
    def from_state(cls, state: dict) -> Progress:
        """The progress a ``state.json`` recorded (:meth:`RunDir.restore_into` returns it)."""
        return cls(history=state["history"], epoch_times_s=state["epoch_times_s"],
                   train_times_s=state["train_times_s"], resumed_from_epoch=state["epochs_done"])

    @property
    def epochs_done(self) -> int:
        """Completed epochs."""
        return len(self.history["loss"])


class RunDir:
    """One run's folder: checks it belongs to this run, writes and reads its files atomically.

    Parameters
    ----------
    path : pathlib.Path
        The folder; created if missing. Temporary files an interrupted write left there are deleted.
    config : dict
        This run's :func:`run_config`. Written to ``config.json`` unless the folder already holds
        progress, in which case the stored config must describe the same run.

    Raises
    ------
    ValueError
        ``path`` is a file, or the folder holds a different run.
    """

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
        """Whether the run has finished (its ``result.json`` exists)."""
        return (self.path / RESULT_FILE).is_file()

    def load_result(self) -> TrainResult:
        """The finished run's stored result."""
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

    def save_checkpoint(self, model, progress: Progress) -> None:
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
        """Store the final result: from now on the run is finished."""
        write_json_atomically(self.path / RESULT_FILE, result.to_dict())

    def _remove_leftovers(self) -> None:
        """Delete temporary files an interrupted write left behind."""
        for leftover in self.path.glob(f"{TMP_PREFIX}*"):
            leftover.unlink()


def _check_same_run(path: Path, stored: dict, config: dict) -> None:
    differences = []
    for key in IDENTITY_KEYS:
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


def _read_json(path: Path):
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def run_config(model, data, recipe, epochs, batch_size, seed, deterministic) -> dict:
    """What a run is, as ``config.json`` records it: recipe, sizes, seed, data and model fingerprints.

    Only the :data:`IDENTITY_KEYS` entries decide whether a folder holds the same run; the others
    (dataset description, model name, parameter count) are there for readers.
    """
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
        "initial_weights": weights_fingerprint(model),
        "params": int(model.count_params()),
    }


def weights_fingerprint(model) -> str:
    """16 hex digits of SHA-256 over a model's weights (shapes and values).

    In a run's identity it is the weights training starts from: another seed's initialisation, or
    (for a fine-tune) another pruned model, is another run, even with the same architecture.
    """
    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        digest.update(str(value.shape).encode())
        digest.update(value.data)
    return digest.hexdigest()[:16]


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

