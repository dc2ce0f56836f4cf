r"""Several models timed image by image, back to back, in repeated rounds: comparisons a busy machine can make.

Timing one model after another (:func:`cdp_tutorial.edge.measure` per model) lets a burst of load
from other processes fall on one model and not the next, so a difference between their medians may
be the machine's. :func:`time_back_to_back` instead runs **each image through every model in
turn** (the order rotated from image to image), so a burst hits them alike, and repeats that in
``rounds`` rounds of fresh images. Every call is timed by :func:`cdp_tutorial.edge.time_calls`.

Compare two models by their **paired ratio** in each round (:meth:`BackToBack.ratios`): the median
over the round's images of :math:`t_a(x) / t_b(x)`, both timed on the same image back to back, or,
for quantities defined by averages (a cascade's expected latency), the ratio of the round's mean
times. The spread of a comparison is its **range over the rounds**: two ratios are told apart only
when their ranges do not overlap, and a ratio is told apart from 1 only when its range excludes 1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from cdp_tutorial.checks import check_choice, check_int, check_seed
from cdp_tutorial.edge.measure import LatencyStats, check_warmup, time_calls

__all__ = ["BackToBack", "time_back_to_back"]

AVERAGES = ("median", "mean")


@dataclass(frozen=True)
class BackToBack:
    """Per-image times (ms) of several models timed back to back, round by round.

    Attributes
    ----------
    names : tuple of str
        The models, in the order given.
    rounds : tuple of dict
        One ``{name: array of per-image ms}`` per round; position ``i`` of every array is the same
        image, timed back to back.
    images : tuple of numpy.ndarray
        Each round's image indices (into the ``images`` given), in timing order.
    warmup : int
        Untimed calls of each model before each round.
    """

    names: tuple
    rounds: tuple
    images: tuple
    warmup: int

    def _check_name(self, name):
        if name not in self.names:
            raise ValueError(f"no model named {name!r} was timed; timed: {list(self.names)}")
        return name

    def stats(self, name) -> LatencyStats:
        """All of ``name``'s per-image times, pooled over the rounds (median, IQR, mean ...)."""
        name = self._check_name(name)
        pooled = np.concatenate([r[name] for r in self.rounds])
        return LatencyStats(latencies_ms=tuple(pooled.tolist()), warmup=self.warmup, wall_s=float(pooled.sum()) / 1e3)

    def ratios(self, numerator, denominator, *, average: str = "median") -> np.ndarray:
        """One ratio ``numerator / denominator`` per round.

        ``average="median"``: the median over the round's images of the per-image ratio (each image
        timed back to back on both); ``"mean"``: the round's mean time of one over the other's.

        Examples
        --------
        >>> timing = BackToBack(names=("a", "b"), rounds=({"a": np.array([2., 4.]), "b": np.array([1., 4.])},),
        ...                     images=(np.array([0, 1]),), warmup=1)
        >>> timing.ratios("a", "b").tolist(), timing.ratios("a", "b", average="mean").tolist()
        ([1.5], [1.2])
        """
        numerator, denominator = self._check_name(numerator), self._check_name(denominator)
        average = check_choice(average, "average", AVERAGES)
        if average == "mean":
            return np.array([r[numerator].mean() / r[denominator].mean() for r in self.rounds])
        return np.array([np.median(r[numerator] / r[denominator]) for r in self.rounds])

    def round_means(self, name) -> np.ndarray:
        """``name``'s mean time (ms) in each round."""
        name = self._check_name(name)
        return np.array([r[name].mean() for r in self.rounds])


def time_back_to_back(calls: Mapping[str, Callable], images, *, rounds: int = 3, per_round: int = 30,
                      warmup: int = 5, seed: int = 0) -> BackToBack:
    """Time every model in ``calls`` on the same images, image by image, back to back, in rounds.

    Parameters
    ----------
    calls : mapping of str to callable
        ``{name: call}``; ``call(x)`` runs one batch-1 input ``x = images[i:i + 1]`` to completion
        (return a NumPy value, so the time covers the work).
    images : numpy.ndarray
        The inputs to draw from, shaped ``(N, ...)``, already as the calls take them.
    rounds : int, default 3
        Rounds of fresh images; their spread is the spread of every comparison.
    per_round : int, default 30
        Images per round, drawn without replacement (with replacement if ``images`` has fewer).
    warmup : int, default 5
        Untimed calls of every model before each round (at least 1: the first call traces or allocates).
    seed : int, default 0
        Which images.

    Returns
    -------
    BackToBack

    Raises
    ------
    ValueError
        No calls, a call that is not callable, fewer than one round or image, ``warmup`` below 1.

    Examples
    --------
    >>> timing = time_back_to_back({"sum": np.sum, "sort": np.sort}, np.arange(40.0).reshape(20, 2),
    ...                            rounds=2, per_round=5, warmup=1)
    >>> len(timing.rounds), timing.rounds[0]["sum"].shape, timing.ratios("sort", "sum").shape
    (2, (5,), (2,))
    """
    calls = dict(calls)
    if not calls or not all(callable(c) for c in calls.values()):
        raise ValueError("calls must map at least one name to a callable that runs one input")
    rounds = check_int(rounds, "rounds", minimum=1)
    per_round = check_int(per_round, "per_round", minimum=1)
    warmup = check_warmup(warmup)
    images = np.asarray(images)
    if images.ndim < 1 or len(images) == 0:
        raise ValueError(f"images must hold at least one input along its first axis, got shape {images.shape}")
    names = list(calls)
    rng = np.random.default_rng(check_seed(seed))
    timed, drawn = [], []
    for _ in range(rounds):
        chosen = rng.choice(len(images), per_round, replace=per_round > len(images))
        # image i runs through every model, starting from model i mod K: the order rotates
        order = [(names[(i + k) % len(names)], i) for i in range(per_round) for k in range(len(names))]
        stats = time_calls(lambda call: calls[call[0]](images[chosen[call[1]]][None]), order,
                           warmup=warmup * len(names))
        times = {name: np.empty(per_round) for name in names}
        for (name, i), ms in zip(order, stats.latencies_ms):
            times[name][i] = ms
        timed.append(times)
        drawn.append(chosen)
    return BackToBack(names=tuple(names), rounds=tuple(timed), images=tuple(drawn), warmup=warmup)
