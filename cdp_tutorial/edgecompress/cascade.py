r"""Cascaded dynamic inference: a bigger model only for the inputs a smaller one is unsure about.

Models of increasing complexity run in order. Stage :math:`i` decides an input when its softmax
*margin*, top-1 minus top-2 probability,

.. math:: m_i(x) = p_i^{(1)}(x) - p_i^{(2)}(x) \in [0, 1],

is at least the threshold :math:`\tau`; otherwise the input goes on to stage :math:`i+1` (the last
stage decides everything that reaches it). An input that exits at stage :math:`j` has cost
:math:`\sum_{i \le j} M_i` MACs (the earlier stages ran too), so the average cost is

.. math:: \bar M(\tau) = \sum_j f_j(\tau) \sum_{i \le j} M_i,

with :math:`f_j` the fraction of inputs that exit at stage :math:`j`. :math:`\tau = 0` is the first
model alone. :math:`\tau = 1` sends on every input whose margin is below 1, which is *almost*
every input: a softmax saturated in float32 (top probability rounded to exactly 1.0) has margin
exactly 1.0 and still exits at its stage. The margin is a difference of probabilities, so every
stage must output class probabilities: models ending in logits are converted with a softmax, any
other output is refused.

EdgeCompress's abstract describes cascading models of different complexity from its compression
framework and choosing per input image; its public code (github.com/ntuliuteam/edge-compress,
``core/dynamic.py``) uses this top-1 minus top-2 margin and also adds the stages' logits; here each
stage's answer stands alone. Cascading complexity-driven pruned models is this tutorial's extension.

Curves and thresholds are computed from every model's probabilities on a fixed image set
(:func:`simulate_cascade`, :func:`cascade_curve`, :func:`choose_threshold`: numpy only, instant);
:class:`Cascade` runs the real thing, stage by stage on the remaining images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from cdp_tutorial.checks import check_number
from cdp_tutorial.edge.measure import LatencyStats, check_warmup, time_calls
from cdp_tutorial.edgecompress.images import normalise, output_activation, predict_probabilities, softmax

__all__ = ["Cascade", "CascadeOutcome", "cascade_curve", "choose_threshold", "expected_latency", "simulate_cascade",
           "softmax_margin"]


def softmax_margin(probabilities) -> np.ndarray:
    """Top-1 minus top-2 probability of every row, in [0, 1].

    Examples
    --------
    >>> softmax_margin([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2]]).round(2).tolist()
    [0.5, 0.0]
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probabilities must have shape (images, classes >= 2), got {p.shape}")
    top2 = np.sort(p, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


PROBABILITY_TOLERANCE = 1e-3  # float32 softmax rows sum to 1 within ~1e-6; logits miss by far more


def check_threshold(threshold) -> float:
    """A margin threshold: a number in [0, 1]."""
    return check_number(threshold, "threshold (a softmax margin)", minimum=0, maximum=1)


@dataclass(frozen=True)
class CascadeOutcome:
    """Accuracy and cost of a cascade at one threshold.

    Attributes
    ----------
    threshold : float
    accuracy : float
        Fraction of correct final answers.
    average_macs : float
        MACs per image, averaged over the images (the stages each image ran through).
    exit_fractions : tuple of float
        Fraction of images decided at each stage (sums to 1).
    """

    threshold: float
    accuracy: float
    average_macs: float
    exit_fractions: tuple

    def to_dict(self) -> dict:
        row = {"threshold": self.threshold, "accuracy": self.accuracy, "average_macs": self.average_macs}
        row.update({f"exit_{i + 1}": f for i, f in enumerate(self.exit_fractions)})
        return row


def _check_stages(probabilities, labels, macs):
    if isinstance(probabilities, np.ndarray) or not isinstance(probabilities, Sequence) or not probabilities:
        raise ValueError("probabilities must be a non-empty list with one (images, classes) array per model")
    arrays = [np.asarray(p, dtype=np.float64) for p in probabilities]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 2:
        raise ValueError(f"the cascade's models disagree: each must give (images, classes) probabilities for "
                         f"the same images and classes, got shapes {[a.shape for a in arrays]}")
    for i, a in enumerate(arrays):
        if a.size and (a.min() < 0 or a.max() > 1 or np.abs(a.sum(axis=1) - 1).max() > PROBABILITY_TOLERANCE):
            raise ValueError(f"probabilities[{i}] are not class probabilities (each row in [0, 1], summing to "
                             f"1): rows sum to {a.sum(axis=1).min():.3g}..{a.sum(axis=1).max():.3g}, values "
                             f"{a.min():.3g}..{a.max():.3g}; pass softmax outputs (logits: apply a softmax, "
                             "e.g. with predict_probabilities)")
    labels = np.asarray(labels)
    if labels.shape != (arrays[0].shape[0],):
        raise ValueError(f"labels must have one entry per image ({arrays[0].shape[0]}), got shape {labels.shape}")
    if len(macs) != len(arrays):
        raise ValueError(f"macs must have one entry per model ({len(arrays)}), got {len(macs)}")
    macs = [check_number(m, f"macs[{i}]", minimum=0, include_minimum=False) for i, m in enumerate(macs)]
    return arrays, labels, macs


def simulate_cascade(probabilities, labels, macs, threshold) -> CascadeOutcome:
    """Accuracy and average MACs of the cascade at one threshold, from each model's probabilities.

    Parameters
    ----------
    probabilities : list of array, shape (images, classes)
        Every model's class probabilities (softmax outputs) on the same images, cheapest model
        first; logits are refused.
    labels : array of int, shape (images,)
    macs : list of number
        Every model's MACs per image.
    threshold : float
        Margin in [0, 1] a stage needs to decide an image (at 1, only images a stage is certain of
        to float32 precision exit there).

    Returns
    -------
    CascadeOutcome

    Raises
    ------
    ValueError
        Models with different numbers of images or classes, rows that are not probabilities, a
        threshold outside [0, 1], bad macs.

    Examples
    --------
    >>> small = [[0.9, 0.1], [0.55, 0.45]]   # sure of image 0, unsure of image 1
    >>> large = [[0.8, 0.2], [0.1, 0.9]]
    >>> outcome = simulate_cascade([small, large], labels=[0, 1], macs=[10, 100], threshold=0.5)
    >>> outcome.accuracy, outcome.average_macs, outcome.exit_fractions
    (1.0, 60.0, (0.5, 0.5))
    """
    arrays, labels, macs = _check_stages(probabilities, labels, macs)
    threshold = check_threshold(threshold)
    n = len(labels)
    answer = np.full(n, -1)
    cost = np.zeros(n)
    exits = []
    undecided = np.ones(n, dtype=bool)
    for i, p in enumerate(arrays):
        cost[undecided] += macs[i]
        last = i == len(arrays) - 1
        decide = undecided & (True if last else softmax_margin(p) >= threshold)
        answer[decide] = p[decide].argmax(axis=1)
        exits.append(decide.sum() / n)
        undecided &= ~decide
    return CascadeOutcome(threshold=threshold, accuracy=float((answer == labels).mean()),
                          average_macs=float(cost.mean()), exit_fractions=tuple(float(f) for f in exits))


def cascade_curve(probabilities, labels, macs, thresholds=None) -> pd.DataFrame:
    """:func:`simulate_cascade` over many thresholds: the accuracy vs average-MACs curve.

    ``thresholds`` defaults to 0, 0.05, ..., 1. Returns one row per threshold: ``threshold,
    accuracy, average_macs, exit_1 ... exit_n``.
    """
    thresholds = np.linspace(0, 1, 21) if thresholds is None else thresholds
    return pd.DataFrame([simulate_cascade(probabilities, labels, macs, t).to_dict() for t in thresholds])


def choose_threshold(probabilities, labels, macs, target_accuracy, thresholds=None) -> CascadeOutcome:
    """The cheapest threshold whose accuracy on these (validation) images reaches ``target_accuracy``.

    Choose on a validation split, then report the chosen threshold on the test split.

    Raises
    ------
    ValueError
        ``target_accuracy`` outside [0, 1], or no threshold reaches it (the message gives the best).

    Examples
    --------
    >>> small = [[0.9, 0.1], [0.55, 0.45]]
    >>> large = [[0.8, 0.2], [0.1, 0.9]]
    >>> choose_threshold([small, large], [0, 1], [10, 100], target_accuracy=1.0).average_macs
    60.0
    """
    target = check_number(target_accuracy, "target_accuracy", minimum=0, maximum=1)
    curve = cascade_curve(probabilities, labels, macs, thresholds)
    good = curve[curve.accuracy >= target]
    if good.empty:
        raise ValueError(f"no threshold reaches accuracy {target:.3f} on these images; the best is "
                         f"{curve.accuracy.max():.3f} (threshold {curve.threshold[curve.accuracy.idxmax()]:g})")
    best = good.sort_values(["average_macs", "threshold"]).iloc[0]
    return simulate_cascade(probabilities, labels, macs, float(best.threshold))


def expected_latency(exit_fractions, stage_latencies) -> float:
    r"""Average latency of a cascade from its exit fractions and each stage's measured latency.

    .. math:: \bar t = \sum_j f_j \sum_{i \le j} t_i

    (the margin test between stages is negligible next to a model). Use it with per-model
    latencies measured on the target device (``cdp_tutorial.edge.measure`` on LiteRT files).

    Examples
    --------
    >>> expected_latency((0.5, 0.5), (2.0, 10.0))
    7.0
    """
    fractions = [check_number(f, "exit fraction", minimum=0, maximum=1) for f in exit_fractions]
    latencies = [check_number(t, "stage latency", minimum=0) for t in stage_latencies]
    if len(fractions) != len(latencies):
        raise ValueError(f"one exit fraction per stage latency, got {len(fractions)} and {len(latencies)}")
    if abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"exit fractions must sum to 1, got {sum(fractions):g}")
    return float(np.dot(fractions, np.cumsum(latencies)))


class Cascade:
    """Keras models of increasing complexity, run as a cascade on real images.

    Parameters
    ----------
    models : sequence of keras.Model
        Cheapest first; all with the same input shape and the same number of classes, each ending
        in a softmax or in linear logits (converted with a softmax: the margin compares
        probabilities).
    macs : sequence of number
        MACs per image of each model (e.g. ``cdp_tutorial.profile(model).totals.macs``).
    mean, std : sequence of float
        Normalisation the models were trained with (``Dataset.mean``, ``Dataset.std``).

    Raises
    ------
    ValueError
        Fewer than one model, models that disagree on input shape or classes, a model whose output
        is neither a softmax nor logits, bad ``macs``.

    Notes
    -----
    A stage decides an image when its margin is at least the threshold. At threshold 1 every
    image goes on to the last stage *unless* a stage is certain of it in float32 (margin exactly
    1.0): threshold 1 is not "every model on every image".
    """

    def __init__(self, models, macs, mean, std):
        models = list(models)
        if not models or not all(isinstance(m, keras.Model) for m in models):
            raise ValueError("models must be a non-empty sequence of keras.Model")
        inputs = [tuple(m.inputs[0].shape[1:]) for m in models]
        classes = [m.outputs[0].shape[-1] for m in models]
        if len(set(inputs)) != 1:
            raise ValueError(f"the cascade's models disagree on input shape: {inputs}; every stage must "
                             "take the same images")
        if len(set(classes)) != 1:
            raise ValueError(f"the cascade's models disagree on classes: {classes} outputs")
        for i, model in enumerate(models):
            if output_activation(model) not in ("softmax", "linear"):
                raise ValueError(f"stage {i} ({model.name}) ends in {output_activation(model)!r}: a cascade "
                                 "stage must output a softmax or linear logits")
        if len(macs) != len(models):
            raise ValueError(f"macs must have one entry per model ({len(models)}), got {len(macs)}")
        self.models = models
        self.macs = [check_number(m, f"macs[{i}]", minimum=0, include_minimum=False) for i, m in enumerate(macs)]
        self.mean, self.std = tuple(mean), tuple(std)
        self.input_shape = inputs[0]
        self._graphs = None  # one compiled graph per stage, built on first timing and reused

    def _prepare(self, images) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or tuple(images.shape[1:]) != self.input_shape:
            raise ValueError(f"images must have shape (N, {', '.join(map(str, self.input_shape))}), "
                             f"got {images.shape}")
        return normalise(images, self.mean, self.std)

    def predict(self, images, threshold) -> tuple[np.ndarray, np.ndarray]:
        """Classify uint8 images; each stage runs only on the images still undecided.

        Returns
        -------
        labels, exit_stage : numpy.ndarray
            Predicted class and the (0-based) stage that decided, per image.
        """
        threshold = check_threshold(threshold)
        x = self._prepare(images)
        labels = np.full(len(x), -1)
        stage = np.full(len(x), -1)
        undecided = np.arange(len(x))
        for i, model in enumerate(self.models):
            if undecided.size == 0:
                break
            p = predict_probabilities(model, x[undecided])
            last = i == len(self.models) - 1
            decide = np.ones(len(undecided), dtype=bool) if last else softmax_margin(p) >= threshold
            labels[undecided[decide]] = p[decide].argmax(axis=1)
            stage[undecided[decide]] = i
            undecided = undecided[~decide]
        return labels, stage

    def runner(self, threshold):
        """One batch-1 call of the cascade, as :meth:`measure_latency` times it.

        Returns ``run(x)``: ``x`` is one *normalised* image shaped ``(1, H, W, C)``
        (:func:`~cdp_tutorial.edgecompress.images.normalise` with the cascade's ``mean`` and
        ``std``); the stages run one compiled graph each, in order, until one decides (margin at
        least ``threshold``) or the last one answers; ``run`` returns that stage's output as a NumPy
        array. Every stage is traced here, so no call of ``run`` traces. Hand ``run`` to
        :func:`cdp_tutorial.edge.time_back_to_back` to time the cascade and its stages on the same
        images back to back.

        Raises
        ------
        ValueError
            A threshold outside [0, 1].
        """
        threshold = check_threshold(threshold)
        if self._graphs is None:
            self._graphs = [tf.function(lambda one, model=model: model(one, training=False))
                            for model in self.models]
        graphs = self._graphs
        logits = [output_activation(model) == "linear" for model in self.models]
        last = len(self.models) - 1

        def run(one):
            for i, graph in enumerate(graphs):
                p = graph(one).numpy()
                if i == last or softmax_margin(softmax(p) if logits[i] else p)[0] >= threshold:
                    return p

        example = np.zeros((1, *self.input_shape), np.float32)
        for graph in graphs:  # trace (or reuse) every stage, even one the warm-up images never reach
            graph(example)
        return run

    def measure_latency(self, images, threshold, *, warmup: int = 5) -> LatencyStats:
        """Batch-1 latency of the cascade, image by image, timed by the package's one timer.

        Each image runs through the stages one call at a time (:meth:`runner`), as on a device
        serving single requests, and stops at the stage that decides it.
        :func:`cdp_tutorial.edge.time_calls` times every image, after ``warmup`` untimed ones. To
        compare the cascade with a model alone, time them back to back on the same images
        (:meth:`runner` and :func:`cdp_tutorial.edge.time_back_to_back`): timed one after the other,
        load from other processes can fall on one and not the other.

        Returns
        -------
        cdp_tutorial.edge.LatencyStats
            Per-image latencies (ms) with their median and interquartile range. An image that
            exits early is cheaper than one that goes on, so the times fall into groups, one per
            exit stage: compare a cascade's *mean* with the mean formula of :func:`expected_latency`.

        Raises
        ------
        ValueError
            A threshold outside [0, 1], ``warmup`` below 1, images of the wrong shape.
        """
        threshold = check_threshold(threshold)
        warmup = check_warmup(warmup)
        x = self._prepare(images).astype(np.float32)
        run = self.runner(threshold)
        return time_calls(run, [x[i:i + 1] for i in range(len(x))], warmup=warmup)
