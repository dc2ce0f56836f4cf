"""Verdicts on seeds: paired t-tests, and Holm's correction when a notebook asks several questions at once."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from cdp_tutorial import evidence
from cdp_tutorial.stats import holm, holm_bar, holm_thresholds, paired_p_value, t_half_width


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
    assert together.family_size == 3 and together.holm_threshold == pytest.approx(0.05 / 3)
    said = evidence.verdict(together)
    assert said.startswith("L1-FA − CDP-FA: +0.7 points")  # the status leads, not "L1-FA is more accurate"
    assert "more accurate" not in said
    assert ("it excludes 0 on its own but not after Holm's correction over the 3 comparisons made together "
            "(p = 0.026; Holm's threshold for it 0.017): not shown for the family, undecided at n = 3") in said


def test_a_difference_that_holds_for_the_family_says_so_with_its_p_value():
    rows = [dict(key=f"{me}{s}", method=me, mode="FA", seed=s, test_accuracy=a) for me, s, a in
            [("cdp", 0, 0.800), ("cdp", 1, 0.810), ("cdp", 2, 0.820),
             ("l1", 0, 0.810), ("l1", 1, 0.8205), ("l1", 2, 0.8295),       # +1.0, +1.05, +0.95: p = 0.0004
             ("random", 0, 0.790), ("random", 1, 0.812), ("random", 2, 0.820)]]
    both = evidence.paired_differences(rows, [("L1-FA", "CDP-FA"), ("random-FA", "CDP-FA")])
    held = both.iloc[0]
    assert held.holds_after_holm and held.holm_threshold == pytest.approx(0.025)  # the smaller p: 0.05 / 2
    said = evidence.verdict(held)
    assert said.startswith("L1-FA is more accurate than CDP-FA by 1.0 points")
    assert f"holds after Holm's correction over the 2 comparisons made together (p = {held.p_value:.3f})" in said


def test_holm_thresholds_and_the_bar_a_difference_must_clear_with_three_seeds():
    assert holm_thresholds([0.011, 0.002, 0.3, 0.5, 0.07, 0.2]).tolist() == pytest.approx(
        [0.05 / 5, 0.05 / 6, 0.05 / 2, 0.05, 0.05 / 4, 0.05 / 3])
    # a mean difference of b standard deviations of its 3 per-seed differences has t = b * sqrt(3)
    for family, rank in [(1, 1), (6, 1), (6, 2)]:
        bar = holm_bar(3, family, rank)
        just_over = paired_p_value(np.array([-1.0, 0.0, 1.0]) + 1.001 * bar)  # std 1, mean just over the bar
        assert just_over < 0.05 / (family - rank + 1) < paired_p_value(np.array([-1.0, 0.0, 1.0]) + 0.999 * bar)
    assert 6.2 < holm_bar(3, 6) < 6.4 and 2.4 < holm_bar(3, 1) < 2.5
    with pytest.raises(ValueError, match="rank"):
        holm_bar(3, 6, rank=7)
