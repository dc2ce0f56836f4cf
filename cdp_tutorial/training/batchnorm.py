"""Batch-norm statistics after pruning: re-estimate them before the pruned model is evaluated or fine-tuned.

Removing filters changes what the next layer sees: its output, and so the mean and variance its
batch-norm layer normalises with, are no longer those the stored moving statistics describe. With
Keras' default momentum (0.99) a fine-tune would take a few hundred steps to forget the stale
statistics, and meanwhile the model evaluates (and starts fine-tuning) badly. Re-estimating them
from a few training batches, with the weights untouched, is the usual remedy (e.g. Li et al., 2020,
"EagleEye", which calls it adaptive batch-norm); :func:`recalibrate_batch_norm` does that.
"""

from __future__ import annotations

import keras

from cdp_tutorial.checks import check_int

__all__ = ["recalibrate_batch_norm"]


def _batch_norm_layers(model) -> list:
    layers = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            layers += _batch_norm_layers(layer)
        elif isinstance(layer, keras.layers.BatchNormalization):
            layers.append(layer)
    return layers


def recalibrate_batch_norm(model, batches, *, steps: int = 20) -> int:
    r"""Replace every batch-norm layer's moving mean and variance by their average over ``steps`` batches.

    Each batch runs forward in training mode (so batch-norm layers update their moving statistics)
    with the layer's momentum set to :math:`k/(k+1)` at step :math:`k`: the moving statistics become
    the plain average of the ``steps`` batches' statistics. No weight changes; the momentum is
    restored afterwards.

    Parameters
    ----------
    model : keras.Model
        A built model; a model without batch-norm layers is left as it is.
    batches : iterable
        Yields ``(images, labels)`` or images, normalised as in training (e.g.
        :func:`cdp_tutorial.data.make_pipeline` on the training split).
    steps : int, default 20
        Batches to average over, at least 1.

    Returns
    -------
    int
        The number of batches used (fewer than ``steps`` if ``batches`` ran out).

    Examples
    --------
    >>> import numpy as np
    >>> inputs = keras.Input((4, 4, 1)); x = keras.layers.BatchNormalization()(inputs)
    >>> model = keras.Model(inputs, x)
    >>> images = [np.full((2, 4, 4, 1), v, dtype="float32") for v in (1.0, 3.0)]
    >>> recalibrate_batch_norm(model, images, steps=2)
    2
    >>> float(model.layers[1].moving_mean.numpy()[0])
    2.0
    """
    steps = check_int(steps, "steps", minimum=1)
    layers = _batch_norm_layers(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    used = 0
    try:
        for batch in batches:
            if used == steps:
                break
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            for layer in layers:
                layer.momentum = used / (used + 1)  # 0 first: the first batch replaces the stale values
            model(images, training=True)
            used += 1
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return used
