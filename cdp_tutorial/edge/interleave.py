r"""Several models timed image by image, back to back, in repeated rounds: comparisons a busy machine can make.

Timing one model after another (:func:`cdp_tutorial.edge.measure` per model) lets a burst of load
from other processes fall on one model and not the next, so a difference between their medians may
be the machine's. :func:`time_back_to_back` instead runs **each image through every model in
turn** (the order rotated from image to image), so a burst hits them alike, and repeats that in
``rounds`` rounds of fresh images. Every call is timed by :func:`cdp_tutorial.edge.time_calls`.

Compare two models by their **paired ratio** in each round (:meth:`BackToBack.ratios`): the median
over the round's images of :math:`t_a(x) / t_b(x)`, both timed on the same image back to back, or,
for quantities defined by averages (a cascade's expected latency), the ratio of the round's mean
times.

**The rule.** The range of a ratio over the rounds describes its spread, nothing more: with 3
rounds, a ratio whose true value is 1 still lies on one side of 1 in every round with chance
:math:`2 \cdot (1/2)^3 = 25\,\%`. A ratio is **told apart** from 1 only when its **95 % confidence
interval** excludes 1 (:func:`ratio_interval`, :meth:`BackToBack.interval`): a Student-t interval on
the rounds' log-ratios, back-transformed, so the estimate is their geometric mean. At 95 % a ratio
whose true value is 1 is wrongly told apart in 5 % of comparisons. Two ratios measured over the same
rounds are told apart when the interval of their per-round quotient excludes 1
(:func:`paired_interval`), not by whether their ranges overlap. The interval needs at least 2 rounds
and is wide with few: with 3 rounds (2 degrees of freedom) it spans the mean log-ratio
:math:`\pm 4.30` standard errors.

**Several comparisons.** The 5 % holds for one comparison. Make :math:`k` of them (three plans against
1, say) and, if nothing differed, at least one would be told apart with chance up to
:math:`1 - 0.95^k` (26 % for :math:`k = 6`). :func:`family_confidence` gives each of the :math:`k`
intervals the confidence :math:`1 - 0.05/k` (Bonferroni), so that the chance of *any* false "told
apart" among them stays at most 5 %.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from cdp_tutorial.checks import check_choice, check_fraction, check_int, check_seed
from cdp_tutorial.edge.measure import LatencyStats, check_warmup, time_calls
from cdp_tutorial.stats import t_half_width  # scipy is imported only when an interval is computed

__all__ = ["BackToBack", "RatioInterval", "family_confidence", "paired_interval", "ratio_interval",
           "time_back_to_back"]

AVERAGES = ("median", "mean")


@dataclass(frozen=True)
class RatioInterval:
    """A ratio measured in several rounds: its geometric-mean estimate and confidence interval.

    Attributes
    ----------
    estimate : float
        The geometric mean of the per-round ratios (the back-transformed mean log-ratio).
    low, high : float
        The interval's ends (the back-transformed ends of the t-interval on the log-ratios).
    rounds : int
        How many per-round ratios it rests on (degrees of freedom: ``rounds - 1``).
    confidence : float
        The interval's confidence level, e.g. 0.95.
    """

    estimate: float
    low: float
    high: float
    rounds: int
    confidence: float

    def excludes(self, value: float = 1.0) -> bool:
        """Whether ``value`` lies outside the interval: the ratio is *told apart* from ``value``."""
        return value < self.low or value > self.high

    def below(self, value: float = 1.0) -> bool:
        """Whether the whole interval lies below ``value`` (its upper end is below it)."""
        return self.high < value

    def above(self, value: float = 1.0) -> bool:
        """Whether the whole interval lies above ``value`` (its lower end is above it)."""
        return self.low > value

    def describe(self, digits: int = 2) -> str:
        """``"0.83 (95 % CI 0.75-0.92, 3 rounds)"``: the estimate, the interval and what it rests on.

        Where the interval excludes 1 but an end would print as 1 (``0.996`` as ``"1.00"``), digits are
        added until it does not, so a printed interval never seems to contradict *told apart*.

        Examples
        --------
        >>> RatioInterval(estimate=0.96, low=0.93, high=0.996, rounds=3, confidence=0.95).describe()
        '0.960 (95 % CI 0.930-0.996, 3 rounds)'
        """
        digits = check_int(digits, "digits", minimum=0)
        one = f"{1:.{digits}f}"
        while self.excludes(1.0) and one in (f"{self.low:.{digits}f}", f"{self.high:.{digits}f}") and digits < 8:
            digits += 1
            one = f"{1:.{digits}f}"
        return (f"{self.estimate:.{digits}f} ({100 * self.confidence:.3g} % CI {self.low:.{digits}f}-"
                f"{self.high:.{digits}f}, {self.rounds} rounds)")


def family_confidence(comparisons: int, *, confidence: float = 0.95) -> float:
    """The confidence each of ``comparisons`` intervals needs for all of them to hold at ``confidence``.

    Bonferroni's correction: with each interval at :math:`1 - (1 - c)/k`, the chance that at least one
    of the :math:`k` excludes a true value is at most :math:`1 - c`, whatever their dependence (the
    comparisons of one timing share rounds, so they are not independent). Tell a ratio apart only
    when its interval at this confidence excludes 1; it is wider than a lone 95 % interval.

    Parameters
    ----------
    comparisons : int
        How many intervals are read together as one family (at least 1; 1 leaves ``confidence`` as is).
    confidence : float, default 0.95
        The family's confidence, strictly between 0 and 1.

    Returns
    -------
    float
        Each interval's confidence, e.g. 0.9833 for 3 comparisons at 0.95.

    Raises
    ------
    ValueError
        ``comparisons`` below 1 or not an integer, or ``confidence`` outside (0, 1).

    Examples
    --------
    >>> round(family_confidence(3), 4)
    0.9833
    >>> ratio_interval([0.64, 0.79, 0.83], confidence=family_confidence(3)).describe()
    '0.75 (98.3 % CI 0.41-1.38, 3 rounds)'
    """
    comparisons = check_int(comparisons, "comparisons", minimum=1)
    confidence = check_fraction(confidence, "confidence")
    return 1 - (1 - confidence) / comparisons


def ratio_interval(ratios, *, confidence: float = 0.95) -> RatioInterval:
    """The confidence interval of a ratio measured once per round (a t-interval on the log-ratios).

    Ratios of times are skewed (a ratio and its inverse are equally far from 1 on a log scale), so
    the interval is taken on :math:`\log r_i`: mean :math:`\pm\, t_{n-1}\, s / \sqrt{n}` over the
    :math:`n` rounds, with :math:`t_{n-1}` Student's quantile at ``(1 + confidence) / 2``, then
    exponentiated. The rounds are assumed independent (fresh images each) and their log-ratios
    roughly normal; with few rounds the interval is wide (3 rounds: :math:`t_2 = 4.30` at 95 %).

    Parameters
    ----------
    ratios : array-like of float
        One positive ratio per round, e.g. :meth:`BackToBack.ratios`.
    confidence : float, default 0.95
        The confidence level, strictly between 0 and 1.

    Returns
    -------
    RatioInterval
        Estimate (geometric mean), low, high, rounds, confidence.

    Raises
    ------
    ValueError
        Fewer than 2 ratios (one round has no spread to build an interval from), a ratio that is not
        a finite positive number, or ``confidence`` outside (0, 1).

    Examples
    --------
    >>> interval = ratio_interval([0.8, 0.9, 0.85])
    >>> round(interval.estimate, 3), round(interval.low, 3), round(interval.high, 3)
    (0.849, 0.733, 0.983)
    >>> interval.excludes(1.0), interval.describe()
    (True, '0.85 (95 % CI 0.73-0.98, 3 rounds)')
    >>> ratio_interval([0.64, 0.79, 0.83]).excludes(1.0)  # below 1 in every round, yet not told apart
    False
    """
    confidence = check_fraction(confidence, "confidence")
    ratios = np.asarray(ratios, dtype=float).ravel()
    if len(ratios) < 2:
        raise ValueError(f"a confidence interval needs ratios from at least 2 rounds, got {len(ratios)}: one round "
                         "has no spread to measure (time with rounds >= 2; 3 gives a wide interval, more a narrower one)")
    if not (np.isfinite(ratios).all() and (ratios > 0).all()):
        raise ValueError(f"ratios must be finite positive numbers (times over times), got {ratios.tolist()}")
    logs = np.log(ratios)
    centre = logs.mean()
    half = t_half_width(logs, confidence)
    return RatioInterval(estimate=float(np.exp(centre)), low=float(np.exp(centre - half)),
                         high=float(np.exp(centre + half)), rounds=len(logs), confidence=confidence)


def paired_interval(ratios_a, ratios_b, *, confidence: float = 0.95) -> RatioInterval:
    """The confidence interval of ``a / b`` for two ratios measured over the same rounds.

    Two ratios from the same rounds share each round's images and load, so compare them round by
    round: the interval of the per-round quotient :math:`a_i / b_i` (:func:`ratio_interval`). It
    excludes 1 when ``a`` and ``b`` are told apart; overlapping ranges or intervals of ``a`` and
    ``b`` alone do not decide that.

    Parameters
    ----------
    ratios_a, ratios_b : array-like of float
        One positive ratio per round each, round ``i`` of both from the same round.
    confidence : float, default 0.95

    Returns
    -------
    RatioInterval
        Of the quotient ``a / b``: below 1 means ``a`` is smaller.

    Raises
    ------
    ValueError
        The two hold different numbers of rounds, or as :func:`ratio_interval`.

    Examples
    --------
    >>> paired_interval([0.80, 0.90, 0.85], [0.90, 1.00, 0.96]).describe()  # a is 11 % below b in every round
    '0.89 (95 % CI 0.87-0.91, 3 rounds)'
    """
    ratios_a, ratios_b = np.asarray(ratios_a, dtype=float).ravel(), np.asarray(ratios_b, dtype=float).ravel()
    if len(ratios_a) != len(ratios_b):
        raise ValueError(f"a paired comparison needs both ratios from the same rounds, got {len(ratios_a)} and "
                         f"{len(ratios_b)} rounds")
    if not (np.isfinite(ratios_b).all() and (ratios_b > 0).all()):
        raise ValueError(f"ratios must be finite positive numbers (times over times), got {ratios_b.tolist()}")
    return ratio_interval(ratios_a / ratios_b, confidence=confidence)


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

    def interval(self, numerator, denominator, *, average: str = "median",
                 confidence: float = 0.95) -> RatioInterval:
        """The confidence interval of ``numerator / denominator`` over the rounds (:func:`ratio_interval`).

        Raises
        ------
        ValueError
            Fewer than 2 rounds were timed, an unknown name or ``average``.

        Examples
        --------
        >>> timing = BackToBack(names=("a", "b"), rounds=tuple({"a": np.array([r]), "b": np.array([1.])}
        ...                                                    for r in (1.9, 2.0, 2.1)),
        ...                     images=(np.array([0]),) * 3, warmup=1)
        >>> timing.interval("a", "b").describe()
        '2.00 (95 % CI 1.76-2.26, 3 rounds)'
        """
        return ratio_interval(self.ratios(numerator, denominator, average=average), confidence=confidence)

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
