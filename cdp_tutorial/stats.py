r"""The statistics behind the notebooks' verdicts on seeds: t-intervals and many comparisons at once.

With n seeds, the mean of n paired differences :math:`d_i` has the t-interval
:math:`\bar d \pm t_{1-\alpha/2,\,n-1}\, s_d / \sqrt{n}`, and the two-sided p-value of "no difference"
comes from :math:`t = \bar d / (s_d / \sqrt n)` with n - 1 degrees of freedom.

A notebook that asks k such questions at 95 % each claims at least one false difference, when nothing
differs, about :math:`1 - 0.95^k` of the time if the tests are independent (26 % for k = 6) and at most
:math:`0.05\,k` whatever their dependence (30 %). **Holm's method** keeps that family-wise chance at
5 %: sort the k p-values, compare the i-th smallest with :math:`\alpha / (k - i + 1)` (its threshold,
:func:`holm_thresholds`), and stop at the first that fails; the differences before it hold for the
family. It never holds fewer than Bonferroni's :math:`\alpha / k` for all (Holm, *Scand. J. Statist.* 6,
1979). With few seeds that is a high bar (:func:`holm_bar`).

Examples
--------
>>> holm([0.001, 0.04, 0.03]).tolist()   # 0.001 < 0.05/3; 0.03 > 0.05/2: stop
[True, False, False]
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["t_half_width", "paired_p_value", "paired_summary", "holm", "holm_thresholds", "holm_bar"]


def t_half_width(values, confidence: float = 0.95) -> float:
    """Half the width of the t-interval of the mean of ``values`` (NaN for fewer than two).

    >>> round(t_half_width([1.0, 2.0, 3.0]), 3)   # t(0.975, 2) = 4.303, s = 1, n = 3
    2.484
    """
    from scipy import stats

    values = np.asarray(values, dtype=float)
    n = len(values)
    return math.nan if n < 2 else float(stats.t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) / math.sqrt(n))


def paired_p_value(differences) -> float:
    """Two-sided p-value of the one-sample t-test that the mean of ``differences`` is 0 (NaN for n < 2).

    Differences that are all equal and non-zero give 0 (no spread); all zero give 1.

    >>> round(paired_p_value([1.0, 2.0, 3.0]), 3)
    0.074
    """
    from scipy import stats

    d = np.asarray(differences, dtype=float)
    if len(d) < 2:
        return math.nan
    spread = d.std(ddof=1)
    if spread == 0:
        return 1.0 if d.mean() == 0 else 0.0
    t = d.mean() / (spread / math.sqrt(len(d)))
    return float(2 * stats.t.sf(abs(t), len(d) - 1))


def holm(p_values, alpha: float = 0.05) -> np.ndarray:
    """Which of ``p_values`` hold at family-wise level ``alpha`` (Holm's step-down method).

    NaN p-values (a comparison without an interval) do not count in the family and never hold.

    Raises
    ------
    ValueError
        ``alpha`` not in (0, 1).

    >>> holm([0.01, float("nan"), 0.02]).tolist()   # a family of 2: 0.01 < 0.025, 0.02 < 0.05
    [True, False, True]
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    p = np.asarray(p_values, dtype=float)
    holds = np.zeros(len(p), dtype=bool)
    family = [i for i in np.argsort(p, kind="stable") if not math.isnan(p[i])]
    for rank, i in enumerate(family):
        if p[i] > alpha / (len(family) - rank):
            break
        holds[i] = True
    return holds


def holm_thresholds(p_values, alpha: float = 0.05) -> np.ndarray:
    """The threshold Holm's step-down method compares each p-value with: alpha / (k - rank + 1).

    k counts the p-values that are not NaN (the family); the smallest gets alpha / k, the next
    alpha / (k - 1), ..., the largest alpha. A p-value holds if it and every smaller one are below their
    thresholds (:func:`holm`). NaN p-values get NaN.

    >>> holm_thresholds([0.02, 0.001, float("nan"), 0.04]).round(4).tolist()
    [0.025, 0.0167, nan, 0.05]
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    p = np.asarray(p_values, dtype=float)
    thresholds = np.full(len(p), math.nan)
    family = [i for i in np.argsort(p, kind="stable") if not math.isnan(p[i])]
    for rank, i in enumerate(family):
        thresholds[i] = alpha / (len(family) - rank)
    return thresholds


def holm_bar(n: int, family_size: int, rank: int = 1, alpha: float = 0.05) -> float:
    """How large a mean difference must be, in standard deviations of its n per-seed differences, to pass
    Holm's step at ``rank`` (1: the smallest p) in a family of ``family_size``: t / sqrt(n), at the
    two-sided level alpha / (family_size - rank + 1) and n - 1 degrees of freedom.

    With ``family_size = 1`` it is the bar of one 95 % interval on its own.

    Raises
    ------
    ValueError
        n < 2, or rank not in 1..family_size.

    >>> round(holm_bar(3, 1), 2), round(holm_bar(3, 6), 2), round(holm_bar(3, 6, rank=2), 2)
    (2.48, 6.28, 5.73)
    """
    from scipy import stats

    if n < 2 or not 1 <= rank <= family_size:
        raise ValueError(f"need n >= 2 and 1 <= rank <= family_size, got n={n!r}, rank={rank!r}, "
                         f"family_size={family_size!r}")
    level = alpha / (family_size - rank + 1)
    return float(stats.t.ppf(1 - level / 2, n - 1) / math.sqrt(n))


def paired_summary(differences, confidence: float = 0.95) -> dict:
    """Mean, std, t-interval, sign agreement and p-value of per-seed differences, as one dict.

    ``same_sign``: n >= 2 and every difference has the mean's sign, none zero; ``excludes_zero``: the
    interval lies on one side of 0 (False for n < 2); NaN mean, std, interval and p where n is too small.

    >>> summary = paired_summary([1.0, 2.0, 3.0])
    >>> print(f"{summary['ci_low']:.3f} to {summary['ci_high']:.3f}, p = {summary['p_value']:.3f}",
    ...       summary["same_sign"], summary["excludes_zero"])
    -0.484 to 4.484, p = 0.074 True False
    """
    d = np.asarray(differences, dtype=float)
    mean = float(d.mean()) if len(d) else math.nan
    half = t_half_width(d, confidence)
    return {"mean": mean, "std": float(d.std(ddof=1)) if len(d) > 1 else math.nan,
            "ci_low": mean - half, "ci_high": mean + half,
            "same_sign": bool(len(d) > 1 and (np.all(d > 0) or np.all(d < 0))),
            "excludes_zero": bool(len(d) > 1 and (mean - half > 0 or mean + half < 0)),
            "p_value": paired_p_value(d)}
