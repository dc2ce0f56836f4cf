r"""The statistics behind the notebooks' verdicts on seeds: t-intervals and many comparisons at once.

With n seeds, the mean of n paired differences :math:`d_i` has the t-interval
:math:`\bar d \pm t_{1-\alpha/2,\,n-1}\, s_d / \sqrt{n}`, and the two-sided p-value of "no difference"
comes from :math:`t = \bar d / (s_d / \sqrt n)` with n - 1 degrees of freedom.

A notebook that asks k such questions at 95 % each claims at least one false difference up to
:math:`1 - 0.95^k` of the time (26 % for k = 6). **Holm's method** keeps that family-wise chance at
5 %: sort the k p-values, compare the i-th smallest with :math:`\alpha / (k - i + 1)`, and stop at the
first that fails; the differences before it hold for the family. It never holds fewer than
Bonferroni's :math:`\alpha / k` for all (Holm, *Scand. J. Statist.* 6, 1979).

Examples
--------
>>> holm([0.001, 0.04, 0.03]).tolist()   # 0.001 < 0.05/3; 0.03 > 0.05/2: stop
[True, False, False]
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["t_half_width", "paired_p_value", "holm"]


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
