"""Confidence intervals of back-to-back timing ratios: when is a ratio *told apart* from 1, or from another?"""

import math
import statistics
import time

import numpy as np
import pytest
from scipy import stats

from cdp_tutorial.edge import time_back_to_back
from cdp_tutorial.edge.interleave import family_confidence, paired_interval, ratio_interval


def test_ratio_interval_is_the_t_interval_of_the_log_ratios_back_transformed():
    ratios = [0.64, 0.79, 0.83]  # below 1 in every round ...
    logs = [math.log(r) for r in ratios]
    half = stats.t.ppf(0.975, df=2) * statistics.stdev(logs) / math.sqrt(3)
    interval = ratio_interval(ratios)
    assert interval.estimate == pytest.approx(math.exp(statistics.mean(logs)))  # the geometric mean
    assert interval.low == pytest.approx(math.exp(statistics.mean(logs) - half))
    assert interval.high == pytest.approx(math.exp(statistics.mean(logs) + half))
    assert (interval.rounds, interval.confidence) == (3, 0.95)
    assert not interval.excludes(1.0) and interval.high > 1  # ... yet 1 is inside the 95 % interval (t_2 = 4.30)
    # a ratio and its inverse are the same comparison: the interval of 1/r is the reciprocal of r's
    inverse = ratio_interval([1 / r for r in ratios])
    assert inverse.low == pytest.approx(1 / interval.high) and inverse.high == pytest.approx(1 / interval.low)
    # the same consistent shortfall over more rounds is told apart, and a lower confidence narrows the interval
    assert ratio_interval(ratios * 2).below(1.0)
    narrower = ratio_interval(ratios, confidence=0.8)
    assert interval.low < narrower.low < narrower.high < interval.high
    assert interval.describe() == f"0.75 (95 % CI {interval.low:.2f}-{interval.high:.2f}, 3 rounds)"


def test_with_three_rounds_a_ratio_of_one_is_told_apart_5_percent_of_the_time_not_25():
    rng = np.random.default_rng(0)
    trials = rng.lognormal(mean=0.0, sigma=0.15, size=(4000, 3))  # the true ratio is 1; 3 rounds each
    by_interval = np.mean([ratio_interval(r).excludes(1.0) for r in trials])
    by_range = np.mean((trials.max(axis=1) < 1) | (trials.min(axis=1) > 1))  # the old rule: the range excludes 1
    assert 0.035 < by_interval < 0.065  # the interval's promise: a false "told apart" in 5 % of comparisons
    assert 0.22 < by_range < 0.28  # 2 * (1/2)**3 = 25 %


def test_family_confidence_keeps_any_false_told_apart_among_several_at_5_percent():
    rng = np.random.default_rng(1)
    trials = rng.lognormal(mean=0.0, sigma=0.15, size=(4000, 3, 3))  # 3 ratios whose true value is 1; 3 rounds each

    def any_told_apart(confidence):
        return np.mean([any(ratio_interval(r, confidence=confidence).excludes(1.0) for r in family)
                        for family in trials])
    alone = any_told_apart(0.95)
    assert 0.12 < alone < 0.16  # each at 95 %: one of 3 falsely told apart in 1 - 0.95**3 = 14 % of families
    adjusted = any_told_apart(family_confidence(3))
    assert adjusted == pytest.approx(1 - (1 - 0.05 / 3) ** 3, abs=0.012) and adjusted <= 0.06  # the family's 5 %
    assert family_confidence(3) == pytest.approx(1 - 0.05 / 3) and family_confidence(1) == 0.95
    wider = ratio_interval([0.64, 0.79, 0.83], confidence=family_confidence(3))
    assert wider.describe().startswith("0.75 (98.3 % CI") and wider.low < ratio_interval([0.64, 0.79, 0.83]).low
    with pytest.raises(ValueError, match="comparisons"):
        family_confidence(0)
    with pytest.raises(ValueError, match="confidence must be a number strictly between 0 and 1"):
        family_confidence(3, confidence=1.5)


def test_paired_interval_tells_apart_ratios_whose_ranges_overlap():
    # both ratios move together from round to round (the machine's load), while a stays 10 % below b
    b = np.array([0.60, 0.90, 1.20])
    a = b * np.array([0.89, 0.90, 0.91])
    assert a.max() > b.min()  # their ranges overlap ...
    alone_a, alone_b = ratio_interval(a), ratio_interval(b)
    assert alone_a.high > alone_b.low  # ... and so do their own intervals
    quotient = paired_interval(a, b)
    assert quotient.below(1.0) and quotient.estimate == pytest.approx(0.9, abs=0.005)  # round by round they differ
    assert paired_interval(b, a).above(1.0)


def test_intervals_refuse_what_they_cannot_measure():
    with pytest.raises(ValueError, match="at least 2 rounds, got 1: one round has no spread"):
        ratio_interval([0.8])
    with pytest.raises(ValueError, match="finite positive numbers"):
        ratio_interval([0.8, 0.0, 0.9])
    with pytest.raises(ValueError, match="finite positive numbers"):
        ratio_interval([0.8, float("nan")])
    with pytest.raises(ValueError, match="confidence must be a number strictly between 0 and 1, got 95"):
        ratio_interval([0.8, 0.9], confidence=95)
    with pytest.raises(ValueError, match="same rounds, got 3 and 2 rounds"):
        paired_interval([0.8, 0.9, 1.0], [0.8, 0.9])
    with pytest.raises(ValueError, match="finite positive numbers"):
        paired_interval([0.8, 0.9], [0.8, -1.0])


def test_back_to_back_interval_of_real_timed_calls():
    def sleeper(seconds):
        def call(x):
            time.sleep(seconds)
            return x
        return call

    images = np.arange(40.0).reshape(20, 2)
    calls = {"slow": sleeper(0.006), "fast": sleeper(0.001)}
    timing = time_back_to_back(calls, images, rounds=3, per_round=5, warmup=1)
    slower = timing.interval("slow", "fast")
    assert slower.above(1.0) and slower.rounds == 3  # 6 ms of sleep against 1 ms, told apart from 1
    assert slower.estimate == pytest.approx(math.exp(np.log(timing.ratios("slow", "fast")).mean()))
    assert timing.interval("fast", "slow", average="mean").below(1.0)
    once = time_back_to_back(calls, images, rounds=1, per_round=3, warmup=1)
    with pytest.raises(ValueError, match="at least 2 rounds"):
        once.interval("slow", "fast")


def test_a_told_apart_interval_never_prints_an_end_as_one():
    near = ratio_interval([0.973, 0.98, 0.987])
    assert near.below(1.0) and f"{near.high:.2f}" == "1.00"  # an end that rounds to 1 at two digits ...
    printed = near.describe()
    assert "-1.00," not in printed and printed.endswith(f"{near.high:.3f}, 3 rounds)")  # ... gets a third digit
    assert ratio_interval([0.8, 0.9, 1.1]).describe(digits=1).count(".") == 3  # not told apart: as asked
