"""Image-set plumbing for EdgeCompress: a held-out validation split and lower input resolutions.

Compound shrinking picks its mix and the cascade picks its threshold on data the final models are
*not* tested on, so both use :func:`holdout_validation`; the resolution dimension trains and tests
on :func:`at_resolution` copies of a dataset.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from cdp_tutorial.checks import check_int, check_seed
from cdp_tutorial.data import Dataset, channel_mean_std, stratified_indices

__all__ = ["at_resolution", "class_probabilities", "holdout_validation", "model_outputs", "normalise",
           "resize_images", "with_images"]


def holdout_validation(data: Dataset, size: int, *, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Split ``size`` class-balanced images off the training split as a validation set.

    Parameters
    ----------
    data : Dataset
        From :func:`cdp_tutorial.data.load_dataset`.
    size : int
        Validation images, ``1 <= size < len(data.y_train)``.
    seed : int, default 0
        Seed of the choice.

    Returns
    -------
    fit, validation : Dataset
        ``fit`` trains on the rest and keeps ``data``'s test split; ``validation`` trains on the
        same rest and *tests on the held-out images*, so ``train(model, validation, ...)`` reports
        validation accuracy (what a search may look at) and ``train(model, fit, ...)`` test accuracy.

    Raises
    ------
    ValueError
        ``size`` outside ``[1, len(data.y_train) - 1]``.

    Examples
    --------
    >>> from cdp_tutorial.data import load_dataset
    >>> fit, validation = holdout_validation(load_dataset("fixture"), 500)
    >>> len(fit.y_train), len(fit.y_test), len(validation.y_test)
    (1500, 500, 500)
    """
    size = check_int(size, "size", minimum=1, maximum=len(data.y_train) - 1)
    seed = check_seed(seed)
    held = stratified_indices(data.y_train, size, seed=seed)
    rest = np.setdiff1d(np.arange(len(data.y_train)), held)
    mean, std = channel_mean_std(data.x_train[rest])
    common = {"x_train": data.x_train[rest], "y_train": data.y_train[rest], "mean": mean, "std": std}
    fit = dataclasses.replace(data, **common, description=(
        f"{data.description}; training on {len(rest):,} images, {size:,} held out for validation"))
    validation = dataclasses.replace(data, **common, x_test=data.x_train[held], y_test=data.y_train[held],
                                     description=f"{data.description}; validation: {size:,} held-out "
                                                 "training images")
    return fit, validation


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 NHWC images to ``size`` x ``size`` (area-averaging when shrinking), as uint8.

    Examples
    --------
    >>> resize_images(np.zeros((2, 32, 32, 3), np.uint8), 24).shape
    (2, 24, 24, 3)
    """
    size = check_int(size, "size", minimum=1)
    resized = tf.image.resize(images, (size, size), method="area" if size < images.shape[1] else "bilinear")
    return np.clip(np.rint(resized.numpy()), 0, 255).astype(np.uint8)


def with_images(data: Dataset, x_train: np.ndarray, x_test: np.ndarray, what: str) -> Dataset:
    """A copy of ``data`` with other images (same labels), its statistics and label updated."""
    mean, std = channel_mean_std(x_train)
    return dataclasses.replace(data, x_train=x_train, x_test=x_test, mean=mean, std=std,
                               description=f"{data.description}; {what}")


def at_resolution(data: Dataset, size: int) -> Dataset:
    """``data`` with every image resized to ``size`` x ``size`` (the *resolution* dimension).

    Examples
    --------
    >>> from cdp_tutorial.data import load_dataset
    >>> at_resolution(load_dataset("fixture", train_size=20, test_size=10), 24).x_test.shape
    (10, 24, 24, 3)
    """
    size = check_int(size, "size", minimum=1)
    if data.x_train.shape[1] == size and data.x_train.shape[2] == size:
        return data
    return with_images(data, resize_images(data.x_train, size), resize_images(data.x_test, size),
                       f"resized to {size}x{size}")


def normalise(images: np.ndarray, mean, std) -> np.ndarray:
    """uint8 images as the trained models see them: ``(x / 255 - mean) / std``, float32.

    ``mean`` and ``std`` are those of the dataset the model was trained on (``Dataset.mean``/``.std``),
    exactly what :func:`cdp_tutorial.data.make_epochs` applies during training.
    """
    mean = np.asarray(mean, dtype=np.float32)
    std = np.asarray(std, dtype=np.float32)
    std = np.where(std > 0, std, 1.0)  # a constant channel would divide by zero (as in training)
    return ((np.asarray(images, dtype=np.float32) / 255.0 - mean) / std).astype(np.float32)


def class_probabilities(model, data: Dataset, split: str = "test", *, batch_size: int = 256) -> np.ndarray:
    """Softmax outputs of ``model`` on one split of ``data`` (normalised as in training), ``(N, classes)``."""
    images = {"train": data.x_train, "test": data.x_test}[split]
    return model_outputs(model, normalise(images, data.mean, data.std), batch_size=batch_size)


def model_outputs(model, inputs: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """``model(inputs, training=False)`` batch by batch, as one numpy array.

    Direct calls instead of ``model.predict``: ``predict`` traces a new graph for every model and
    every batch shape, which for many small models costs more than it saves (and TensorFlow warns).
    """
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if len(inputs) == 0:
        return np.zeros((0, *model.outputs[0].shape[1:]), np.float32)
    return np.concatenate([np.asarray(model(inputs[i:i + batch_size], training=False))
                           for i in range(0, len(inputs), batch_size)])
