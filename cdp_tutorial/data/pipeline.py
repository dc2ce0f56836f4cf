"""``tf.data`` input pipelines: normalised batches for training and for evaluation.

Two streams, one job each:

* :func:`make_epochs` -- training. Several epochs in a row, each shuffled (and, if asked, augmented
  with random crop + flip) by its own seed with stateless random ops, so epoch *e* is the same
  batches whether a run started at epoch 0 or resumed at *e*. TensorFlow's global seed plays no part.
* :func:`make_pipeline` -- evaluation. One split, in its stored order, never augmented.

Both normalise the same way: ``(x / 255 - mean) / std`` per channel, with the training split's
statistics (``Dataset.mean`` and ``Dataset.std``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from cdp_tutorial.checks import check_choice, check_int, check_seed
from cdp_tutorial.data.datasets import Dataset

__all__ = ["make_epochs", "make_pipeline"]


def make_epochs(dataset: Dataset, *, batch_size: int, seeds, augment: bool = False) -> tf.data.Dataset:
    """Training batches of several epochs in a row; epoch ``i`` is shuffled (and augmented) by ``seeds[i]``.

    What :func:`cdp_tutorial.training.train` feeds ``model.fit``. Epoch ``i``'s order and
    augmentation depend only on ``seeds[i]`` (stateless random ops: not on TensorFlow's global seed,
    not on the epochs before it), so a resumed run can start at any epoch. All epochs share one copy
    of the images and are chained inside tf.data, so no Python runs per batch.

    Parameters
    ----------
    dataset : Dataset
        From :func:`cdp_tutorial.data.load_dataset`; its training split is used.
    batch_size : int
        Images per batch, at least 1; the last batch of an epoch may be smaller.
    seeds : sequence of int
        One non-negative seed per epoch (numpy integers and ``range`` accepted).
    augment : bool, default False
        Random crop (pad 4 black pixels, crop back to 32) and random horizontal flip, the usual
        CIFAR recipe; each image's draw is seeded by its epoch's seed and its index.

    Returns
    -------
    tf.data.Dataset
        ``len(seeds)`` epochs of ``(images, labels)`` batches: float32 ``(B, 32, 32, 3)``, int64
        ``(B,)``. Pass it to ``model.fit(stream, shuffle=False, steps_per_epoch=...)``.

    Raises
    ------
    TypeError
        ``batch_size`` or a seed is not an integer.
    ValueError
        ``batch_size`` below 1, a negative seed, or no seeds at all.

    Examples
    --------
    >>> from cdp_tutorial.data import load_dataset
    >>> ds = load_dataset("fixture", train_size=100, test_size=50)
    >>> sum(int(y.shape[0]) for _, y in make_epochs(ds, batch_size=64, seeds=[1, 2]))
    200
    """
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    seeds = [check_seed(s, f"seeds[{i}]") for i, s in enumerate(seeds)]
    if not seeds:
        raise ValueError("seeds must hold one seed per epoch (at least one)")
    scale, offset = _normalisation(dataset)
    images = tf.constant(dataset.x_train)  # uint8: one copy, shared by every epoch
    labels = tf.constant(dataset.y_train.astype(np.int64))
    count = len(dataset.y_train)

    def one_epoch(seed):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count, dtype=tf.int64), seed=tf.stack([seed, tf.constant(0, tf.int64)]))
        epoch = tf.data.Dataset.from_tensor_slices(order)

        def load(index):
            image = tf.cast(tf.gather(images, index), tf.float32) * scale + offset
            if augment:  # per-image seed (epoch seed, position): repeatable, new every epoch
                image = _crop_and_flip(image, tf.stack([seed, index + 1]), black=offset)
            return image, tf.gather(labels, index)

        return epoch.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)

    epochs = tf.data.Dataset.from_tensor_slices(tf.constant(seeds, tf.int64))
    return epochs.flat_map(one_epoch).prefetch(tf.data.AUTOTUNE)


def make_pipeline(dataset: Dataset, split: str, *, batch_size: int, cache: bool = True) -> tf.data.Dataset:
    """Normalised batches of one split, in its stored order: the evaluation stream.

    uint8 slices -> cast and normalise with ``dataset.mean``/``dataset.std`` -> cache -> batch ->
    prefetch. Nothing is shuffled or augmented here; for training, use :func:`make_epochs`.

    Parameters
    ----------
    dataset : Dataset
        From :func:`cdp_tutorial.data.load_dataset`.
    split : {"train", "test"}
        Which split to feed.
    batch_size : int
        Images per batch, at least 1; the last batch may be smaller.
    cache : bool, default True
        Keep the normalised float32 images in memory after the first pass (4 bytes a value:
        about 120 MB for CIFAR's test split; turn off on small machines).

    Returns
    -------
    tf.data.Dataset
        Yields ``(images, labels)``: float32 ``(B, 32, 32, 3)`` and int64 ``(B,)``, in the split's order.

    Raises
    ------
    TypeError
        ``batch_size`` is not an integer.
    ValueError
        Unknown ``split``, or ``batch_size`` below 1.

    Examples
    --------
    >>> from cdp_tutorial.data import load_dataset
    >>> ds = load_dataset("fixture", train_size=100, test_size=50)
    >>> images, labels = next(iter(make_pipeline(ds, "test", batch_size=32)))
    >>> images.shape, images.dtype, labels.dtype
    (TensorShape([32, 32, 32, 3]), tf.float32, tf.int64)
    """
    check_choice(split, "split", ("train", "test"))
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    images, labels = (dataset.x_train, dataset.y_train) if split == "train" else (dataset.x_test, dataset.y_test)
    scale, offset = _normalisation(dataset)
    pipeline = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int64)))
    pipeline = pipeline.map(lambda x, y: (tf.cast(x, tf.float32) * scale + offset, y),
                            num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        pipeline = pipeline.cache()
    return pipeline.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _normalisation(dataset: Dataset) -> tuple[tf.Tensor, tf.Tensor]:
    """(scale, offset) with ``x * scale + offset == (x / 255 - mean) / std`` for uint8 ``x``."""
    mean = np.asarray(dataset.mean, dtype=np.float64)
    std = np.asarray(dataset.std, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)  # a constant channel would divide by zero
    scale = tf.constant(1.0 / (255.0 * std), tf.float32)
    offset = tf.constant(-mean / std, tf.float32)
    return scale, offset


def _crop_and_flip(image: tf.Tensor, image_seed: tf.Tensor, *, black: tf.Tensor) -> tf.Tensor:
    """Pad 4 pixels with black, crop back to size at a random place, maybe flip: all seeded by ``image_seed``."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(image_seed, num=2))
    # Pad with black (0 before normalisation is ``black`` after it), as torchvision's RandomCrop does.
    padded = tf.pad(image - black, [[4, 4], [4, 4], [0, 0]]) + black
    image = tf.image.stateless_random_crop(padded, tf.shape(image), seed=crop_seed)
    return tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
