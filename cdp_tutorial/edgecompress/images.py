"""Image-set plumbing for EdgeCompress: a validation split, lower resolutions, class probabilities.

Compound shrinking picks its mix and the cascade picks its threshold on data the final models are
*not* tested on, so both use :func:`holdout_validation`; the resolution dimension trains and tests
on :func:`at_resolution` copies of a dataset. The cascade needs class probabilities and Grad-CAM
the scores *before* the softmax: :func:`output_activation` and :func:`softmax_head` read which a
classifier's last layer gives, :func:`predict_probabilities` converts logits and refuses anything
else.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from cdp_tutorial import keras_internals as internals
from cdp_tutorial.checks import check_int, check_seed
from cdp_tutorial.data import Dataset, channel_mean_std, stratified_indices

__all__ = ["at_resolution", "class_probabilities", "holdout_validation", "model_outputs", "normalise",
           "output_activation", "pre_softmax_scores", "predict_probabilities", "resize_images", "softmax",
           "softmax_head", "with_images"]


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
    """Class probabilities of ``model`` on one split of ``data`` (normalised as in training), ``(N, classes)``.

    A model that ends in a softmax gives its outputs; one that ends in logits (a linear layer)
    gets a softmax applied; any other output is refused (see :func:`predict_probabilities`).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images = {"train": data.x_train, "test": data.x_test}[split]
    return predict_probabilities(model, normalise(images, data.mean, data.std), batch_size=batch_size)


def output_activation(model) -> str:
    """How a classifier's output is made: ``"softmax"``, ``"linear"`` (logits) or another activation's name.

    Read from the layer that produces ``model.outputs[0]``: a layer with an ``activation`` (``Dense``,
    ``Conv2D``, ``Activation``) or a ``Softmax`` layer.

    Raises
    ------
    ValueError
        A model whose output layer cannot be read (not a functional Keras graph).

    Examples
    --------
    >>> import keras
    >>> inputs = keras.Input((4,))
    >>> output_activation(keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs)))
    'softmax'
    >>> output_activation(keras.Model(inputs, keras.layers.Dense(3)(inputs)))
    'linear'
    """
    layer, _ = softmax_head(model, require=False)
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear" if isinstance(layer, keras.layers.Dense) else type(layer).__name__
    name = getattr(activation, "__name__", str(activation))
    return "linear" if name in ("linear", "identity") else name


def softmax_head(model, *, require: bool = True):
    """The layer that ends ``model`` and the tensor it reads: where the pre-softmax scores are.

    Returns
    -------
    layer : keras.layers.Layer
        The output layer: a softmax ``Dense`` (whose pre-activation :math:`W h + b` is the class
        score :math:`y^c`), a ``Softmax`` or ``Activation("softmax")`` layer (whose input is).
    head_input : keras.KerasTensor
        The tensor that layer reads.

    Raises
    ------
    ValueError
        ``require`` and the output is not a softmax; or the graph cannot be read.
    """
    try:
        layer, node = internals.producer_of(model.outputs[0])
    except (AttributeError, IndexError, ValueError):
        raise ValueError(f"cannot find the output layer of {getattr(model, 'name', model)!r}: a functional "
                         "or Sequential keras.Model is needed") from None
    if require and output_activation(model) != "softmax":
        raise ValueError(f"{model.name} does not end in a softmax (its output activation is "
                         f"{output_activation(model)!r}): there is no pre-softmax score to read")
    return layer, internals.node_input_tensors(node)[0]


def pre_softmax_scores(layer, head_input):
    """The class scores (logits) a softmax head computes from ``head_input``, before the softmax."""
    if isinstance(layer, keras.layers.Dense):
        scores = keras.ops.matmul(head_input, layer.kernel)
        return scores + layer.bias if layer.use_bias else scores
    return head_input  # a Softmax / Activation("softmax") layer reads the scores themselves


def predict_probabilities(model, inputs: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Class probabilities of ``model`` on prepared ``inputs``: its softmax outputs, or softmax(logits).

    Raises
    ------
    ValueError
        The model's output is neither a softmax nor linear logits (e.g. a sigmoid): not one
        probability distribution per input.
    """
    kind = output_activation(model)
    if kind not in ("softmax", "linear"):
        raise ValueError(f"{model.name} ends in {kind!r}; class probabilities need a softmax output or "
                         "linear logits (a softmax is then applied)")
    outputs = model_outputs(model, inputs, batch_size=batch_size).astype(np.float32)
    return softmax(outputs) if kind == "linear" else outputs


def softmax(logits) -> np.ndarray:
    """Row-wise softmax of ``(N, classes)`` logits (shifted by each row's maximum: no overflow).

    Examples
    --------
    >>> softmax([[0.0, 0.0], [1000.0, 0.0]]).round(3).tolist()
    [[0.5, 0.5], [1.0, 0.0]]
    """
    z = np.asarray(logits, dtype=np.float32)
    shifted = np.exp(z - z.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


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
