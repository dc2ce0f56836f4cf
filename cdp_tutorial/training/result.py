"""What a training run produced: :class:`TrainResult`, and the library versions it records.

A result is plain data (numbers, lists, dicts), so it round-trips through JSON: ``result.json`` in a
run folder (:mod:`cdp_tutorial.training.rundir`) and the experiment store hold exactly
:meth:`TrainResult.to_dict`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cdp_tutorial import __version__

__all__ = ["TrainResult", "library_versions"]


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
        >>> import json
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


def library_versions() -> dict:
    """Python, TensorFlow, Keras, NumPy and cdp_tutorial versions, as a result records them.

    Examples
    --------
    >>> sorted(library_versions())
    ['cdp_tutorial', 'keras', 'numpy', 'python', 'tensorflow']
    """
    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__,
            "cdp_tutorial": __version__}


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """12 hex digits of SHA-256 over the package's Python sources: which code produced a result.

    Stored in every run record beside :func:`library_versions`, so that a result reused later can be
    told apart from one the current code would give (the package version changes only at releases).
    """
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
