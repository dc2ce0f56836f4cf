"""Verdicts on seeds: paired t-tests, and Holm's correction when a notebook asks several questions at once."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from cdp_tutorial import evidence
from cdp_tutorial.stats import holm, paired_p_value, t_half_width


def test_the_paired_p_value_and_half_width_are_the_one_sample_t_tests():
    d = np.array([0.94, 0.97, 0.68])
    assert paired_p_value(d) == pytest.approx(scipy_stats.ttest_1samp(d, 0).pvalue)
    low, high = scipy_stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=scipy_stats.sem(d))
    assert t_half_width(d) == pytest.approx((high - low) / 2)


def test_holm_keeps_the_chance_of_any_false_difference_at_five_percent_where_95_percent_each_does_not():
    rng = np.random.default_rng(0)
    families = rng.normal(size=(4000, 6, 3))  # 6 comparisons of 3 seeds each, nothing differs
    p = np.array([[paired_p_value(d) for d in family] for family in families])
    any_false_each = (p < 0.05).any(axis=1).mean()
    any_false_holm = np.array([holm(row).any() for row in p]).mean()
    assert 0.22 < any_false_each < 0.30  # 1 - 0.95**6 = 26 %
    assert 0.035 < any_false_holm < 0.065


def test_holm_steps_down_and_stops_at_the_first_that_fails():
    assert holm([0.001, 0.04, 0.03]).tolist() == [True, False, False]
    assert holm([0.01, 0.02, 0.04]).tolist() == [True, True, True]  # 0.01 < .05/3, 0.02 < .05/2, 0.04 < .05
    with pytest.raises(ValueError, match="alpha must be in"):
        holm([0.01], alpha=1.5)


def test_a_difference_that_does_not_survive_the_family_says_so():
    rows = [dict(key=f"{me}{s}", method=me, mode="FA", seed=s, test_accuracy=a) for me, s, a in
            [("cdp", 0, 0.800), ("cdp", 1, 0.810), ("cdp", 2, 0.820),
             ("l1", 0, 0.805), ("l1", 1, 0.819), ("l1", 2, 0.827),        # +0.5, +0.9, +0.7: p = 0.026
             ("random", 0, 0.790), ("random", 1, 0.812), ("random", 2, 0.820),
             ("pls", 0, 0.780), ("pls", 1, 0.815), ("pls", 2, 0.826)]]
    alone = evidence.paired_differences(rows, [("L1-FA", "CDP-FA")]).iloc[0]
    together = evidence.paired_differences(rows, [("L1-FA", "CDP-FA"), ("random-FA", "CDP-FA"),
                                                  ("PLS-FA", "CDP-FA")]).iloc[0]
    assert alone.excludes_zero and alone.holds_after_holm
    assert "Holm" not in evidence.verdict(alone)
    assert together.excludes_zero and together.p_value == alone.p_value
    assert not together.holds_after_holm  # 0.026 > 0.05 / 3: one of three questions
    assert "does not hold after Holm's correction (p = 0.026)" in evidence.verdict(together)
