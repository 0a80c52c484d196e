"""Non-inferiority, equivalence (TOST), Holm, the two-level bootstrap and seeds needed at
80% power, each against a hand computation or a case built to show it."""

import math

import numpy as np
import pytest
from scipy import stats

from grpo_lab.analysis.verdicts import (
    EQUIVALENCE, NON_INFERIORITY, SUPERIORITY, Bootstrap, StudentT, equivalence_verdict, holm, in_units, interval,
    non_inferiority_verdict, p_equivalence, p_non_inferiority, p_superiority, paired_t, seeds_for_power,
    seeds_label, superiority_verdict, two_level_bootstrap, welch_t,
)

ALPHA, POWER, MARGIN = 0.05, 0.8, 0.05
T95_4, T975_4 = 2.13185, 2.77645  # t(0.95, 4), t(0.975, 4)


def verdicts(differences, margin=MARGIN):
    """Superiority, non-inferiority and equivalence verdicts of paired differences A - B."""
    t = paired_t(differences)
    sd, gain = float(np.std(differences, ddof=1)), float(np.mean(differences))
    need = {h: seeds_for_power(sd, gain, h, margin) for h in (SUPERIORITY, NON_INFERIORITY, EQUIVALENCE)}
    return (superiority_verdict(t.mean, p_superiority(t), "higher", ALPHA, need[SUPERIORITY], POWER),
            non_inferiority_verdict(p_non_inferiority(t, margin), ALPHA, margin, need[NON_INFERIORITY], POWER, True),
            equivalence_verdict(p_equivalence(t, margin), ALPHA, margin, need[EQUIVALENCE], POWER, True))


def test_a_non_inferior_case():
    # A - B over 5 seeds: -0.03, 0.05, 0.01, 0.07, -0.01. Mean 0.018; squared deviations
    # sum to 0.00688, sd = sqrt(0.00688 / 4) = 0.041473, se = 0.041473 / sqrt(5) = 0.018547.
    d = [-0.03, 0.05, 0.01, 0.07, -0.01]
    t = paired_t(d)
    assert (t.mean, t.se, t.df) == (pytest.approx(0.018), pytest.approx(0.018547, abs=1e-6), 4)
    # 90% interval (its low end = the one-sided 95% bound): 0.018 -+ 2.13185 * 0.018547
    # = [-0.02154, 0.05754]: above -0.05 (non-inferior), not inside +-0.05 (not equivalent);
    # the 95% interval 0.018 -+ 2.77645 * 0.018547 = [-0.0335, 0.0695] holds 0.
    assert interval(t, 0.90) == pytest.approx((0.018 - T95_4 * 0.018547, 0.018 + T95_4 * 0.018547), abs=1e-5)
    assert interval(t, 0.95) == pytest.approx((0.018 - T975_4 * 0.018547, 0.018 + T975_4 * 0.018547), abs=1e-5)
    # p of H0 "A at least 0.05 worse": P(T4 > (0.018 + 0.05) / 0.018547 = 3.666) = 0.0107.
    assert p_non_inferiority(t, MARGIN) == pytest.approx(0.01073, abs=1e-5)
    superiority, non_inferiority, equivalence = verdicts(d)
    assert non_inferiority == "A non-inferior to B within 5 points"
    assert superiority == "cannot tell (about 44 seeds at 80% power)"
    # Equivalence: the upper side fails, (0.05 - 0.018) / 0.018547 = 1.725 -> p = 0.0798.
    assert p_equivalence(t, MARGIN) == pytest.approx(0.07978, abs=1e-5)
    assert equivalence.startswith("cannot tell (about ")


def test_an_equivalent_case():
    # A - B: -0.01, 0.02, 0, -0.02, 0.01: mean 0, sd sqrt(0.001 / 4) = 0.015811, se = 0.0070711.
    # 90% interval 0 -+ 2.13185 * 0.0070711 = -+0.015074, inside -+0.05: equivalent (TOST:
    # both one-sided p = P(T4 > 0.05 / 0.0070711 = 7.071) = 0.00106).
    d = [-0.01, 0.02, 0.0, -0.02, 0.01]
    t = paired_t(d)
    assert interval(t, 0.90) == pytest.approx((-0.015074, 0.015074), abs=1e-6)
    assert p_equivalence(t, MARGIN) == pytest.approx(0.0010553, abs=1e-6)
    superiority, non_inferiority, equivalence = verdicts(d)
    assert equivalence == "equivalent within ±5 points"
    assert non_inferiority == "A non-inferior to B within 5 points"
    assert superiority == "cannot tell (no difference observed)"  # mean exactly 0: no seeds would do


def test_a_cannot_tell_case_quotes_the_seeds_at_80_percent_power():
    # A - B: -0.10, 0.08, 0.02, -0.12, 0.06: mean -0.012, sd 0.092304, se 0.041280. The 90%
    # interval -0.012 -+ 2.13185 * 0.041280 = [-0.1000, 0.0760] reaches past -0.05 and +0.05.
    d = [-0.10, 0.08, 0.02, -0.12, 0.06]
    superiority, non_inferiority, equivalence = verdicts(d)
    # Non-inferiority needs (t(0.95, n-1) + t(0.8, n-1)) * 0.092304 / sqrt(n) <= -0.012 + 0.05
    # = 0.038: n = 38: (1.68709 + 0.85144) * 0.092304 / 6.1644 = 0.038011 > 0.038; n = 39:
    # (1.68595 + 0.85118) * 0.092304 / 6.2450 = 0.037500 -> 39.
    assert non_inferiority == "cannot tell (about 39 seeds at 80% power)"
    assert equivalence == "cannot tell (about 39 seeds at 80% power)"  # delta - |g| = 0.038 too
    assert superiority.startswith("cannot tell (about ") and superiority.endswith(" seeds at 80% power)")
    # Observed more than the margin worse: more seeds of the same would never show non-inferiority.
    worse = [-0.08, -0.06, -0.07, -0.09, -0.05]
    assert verdicts(worse)[1] == "cannot tell (A observed more than 5 points worse)"
    assert verdicts(worse)[0] == "B better than A"
    assert verdicts(worse)[2] == "cannot tell (observed difference beyond ±5 points)"


def test_lower_is_better_turns_the_non_inferiority_bound_around():
    # Lengths: A - B = +3 tokens on average, margin 5 tokens, lower is better: A is at most
    # 5 tokens worse when the *upper* one-sided bound 3 + t * se stays below +5.
    t = StudentT(3.0, 0.5, 4)
    assert p_non_inferiority(t, 5.0, "lower") == pytest.approx(t.p_less(5.0))
    assert p_non_inferiority(t, 5.0, "lower") < ALPHA < p_non_inferiority(StudentT(-3.0, 2.0, 4), 0.5, "higher")
    assert superiority_verdict(3.0, 0.001, "lower", ALPHA, 3.0, POWER) == "B better than A"
    with pytest.raises(ValueError, match="direction='up'"):
        p_non_inferiority(t, 5.0, "up")


def test_holm_against_a_hand_computation():
    # p = 0.01, 0.04, 0.03, 0.005 (m = 4). Sorted: 0.005 * 4 = 0.02; 0.01 * 3 = 0.03;
    # 0.03 * 2 = 0.06; 0.04 * 1 = 0.04 -> max(0.06, 0.04) = 0.06 (step-down keeps the order).
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # At alpha 0.05 the two smallest stand, the others do not (unadjusted, all four would).
    assert (holm([0.01, 0.04, 0.03, 0.005]) < 0.05).tolist() == [True, False, False, True]
    # algo_zoo_cpu's three "supported" pairs (p = 0.024, 0.0075, 0.019) among 15 pairs:
    # 0.0075 * 15 = 0.1125 > 0.05, so none survives the family of 15.
    family = [0.024, 0.0075, 0.019] + [0.2 + 0.05 * i for i in range(12)]
    adjusted = holm(family)
    assert adjusted[1] == pytest.approx(0.1125) and adjusted[2] == pytest.approx(0.266) and not (adjusted < 0.05).any()
    # One pair: no correction; a pair without a test counts as p = 1 and stays NaN.
    assert holm([0.03]) == pytest.approx([0.03])
    assert holm([0.01, math.nan]) == pytest.approx([0.02, math.nan], nan_ok=True)
    with pytest.raises(ValueError, match="p_values"):
        holm([0.5, 1.5])


def test_seeds_needed_at_80_percent_power_against_a_hand_computation():
    # Superiority, sd 0.05, gain 0.15 (ratio 3): (t(0.975, n-1) + t(0.8, n-1)) / sqrt(n) <= 3:
    # n = 3: (4.3027 + 1.0607) / 1.7321 = 3.097; n = 4: (3.1824 + 0.9785) / 2 = 2.080 -> 4.
    assert seeds_for_power(0.05, 0.15) == 4
    # Non-inferiority, sd 0.1, gain 0, margin 0.05: (t(0.95) + t(0.8)) * 0.1 / sqrt(n) <= 0.05:
    # n = 26: (1.70814 + 0.85624) * 0.1 / 5.0990 = 0.050292; n = 27: (1.70562 + 0.85567) * 0.1
    # / 5.1962 = 0.049292 -> 27 (normal quantiles alone: (1.6449 + 0.8416)^2 * 4 = 24.7).
    assert seeds_for_power(0.1, 0.0, NON_INFERIORITY, 0.05) == 27
    # Equivalence with no observed difference uses t(1 - beta / 2) = t(0.9): n = 35:
    # (1.69092 + 1.30695) * 0.1 / 5.9161 = 0.050673; n = 36: (1.68957 + 1.30621) / 6 * 0.1
    # = 0.049930 -> 36.
    assert seeds_for_power(0.1, 0.0, EQUIVALENCE, 0.05) == 36
    # No number of seeds: no gain (superiority), a gain outside the margin (the others).
    assert seeds_for_power(0.1, 0.0) == math.inf
    assert seeds_for_power(0.1, -0.06, NON_INFERIORITY, 0.05) == math.inf
    assert seeds_for_power(0.1, 0.06, EQUIVALENCE, 0.05) == math.inf
    assert seeds_for_power(0.0, 0.01) == 2  # no spread: two seeds
    assert math.isnan(seeds_for_power(math.nan, 0.1))
    # The 80% figure is about twice the ~50% one (the n at which the expected interval
    # just excludes 0): the 23 -> 44 on grpo_vs_ppo_cpu.
    assert seeds_for_power(0.1, 0.05) / seeds_for_power(0.1, 0.05, power=0.5 + 1e-9) == pytest.approx(2, abs=0.15)
    with pytest.raises(ValueError, match="margin=None"):
        seeds_for_power(0.1, 0.0, EQUIVALENCE)


def test_equivalence_seeds_count_both_tails_near_a_zero_difference():
    """Near g = 0 both one-sided tests can fail: an observed difference of 1e-12 (a mean of
    float accuracies is rarely exactly 0) needs the g = 0 count, not the one-tail one (the
    one-tail rule gave 8 seeds at sd 0.05, margin 0.05, whose TOST power is 0.63)."""
    exact = seeds_for_power(0.05, 0.0, EQUIVALENCE, 0.05)
    assert exact == 11
    assert seeds_for_power(0.05, 1e-12, EQUIVALENCE, 0.05) == exact
    counts = [seeds_for_power(0.05, g, EQUIVALENCE, 0.05) for g in (0.0, 0.005, 0.01, 0.02, 0.03)]
    assert counts == sorted(counts) and counts[-1] > 2 * exact  # more seeds as |g| nears the margin
    # The TOST itself, simulated at the counts given: power at least 80% (the t approximation
    # is close: within 2 points), and below it one seed fewer.
    rng = np.random.default_rng(0)
    for gain, n in ((0.0, exact), (0.01, counts[2]), (0.02, counts[3])):
        def power(k):
            d = rng.normal(gain, 0.05, (20000, k))
            half = stats.t.ppf(0.95, k - 1) * d.std(axis=1, ddof=1) / math.sqrt(k)
            return np.mean((d.mean(axis=1) - half > -0.05) & (d.mean(axis=1) + half < 0.05))
        assert power(int(n)) > 0.78 and power(int(n) - 1) < 0.8, (gain, n)
    with pytest.raises(ValueError, match="power=1.5"):
        seeds_for_power(0.1, 0.1, power=1.5)


def test_seeds_labels_tell_no_difference_from_merely_many():
    assert seeds_label(44.0, "no difference observed") == "44"
    assert seeds_label(10_001.0, "no difference observed") == "> 10000"
    assert seeds_label(math.inf, "no difference observed") == "no difference observed"
    assert seeds_label(math.nan, "no difference observed") == "–"
    assert in_units(0.05, points=True) == "5 points" and in_units(0.01, points=True) == "1 point"
    assert in_units(2.5, points=False) == "2.5"


def test_welch_for_unmatched_seeds():
    # a: 1, 2, 3 (var 1), b: 2, 4 (var 2): se = sqrt(1/3 + 2/2) = 1.1547; Welch df =
    # (1/3 + 1)^2 / ((1/3)^2 / 2 + 1^2 / 1) = 1.7778 / 1.0556 = 1.684.
    t = welch_t([1, 2, 3], [2, 4])
    assert (t.mean, t.se, t.df) == (pytest.approx(-1.0), pytest.approx(1.1547, abs=1e-4), pytest.approx(1.684, abs=1e-3))


def test_two_level_bootstrap_is_reproducible_and_resamples_both_levels():
    rng = np.random.default_rng(3)
    d = rng.normal(0.05, 0.3, size=(4, 30))
    first, again = two_level_bootstrap(d, 2000), two_level_bootstrap(d, 2000)
    assert np.array_equal(first.replicates, again.replicates) and first.estimate == pytest.approx(d.mean())
    # Without seed-to-seed differences the replicates still spread (problems are resampled) ...
    same_seeds = np.tile(d[0], (4, 1))
    problems_only = two_level_bootstrap(same_seeds, 2000).replicates
    assert problems_only.std() == pytest.approx(d[0].std() / math.sqrt(30), rel=0.1)
    # ... and with one problem the spread is the seeds' alone.
    seeds_only = two_level_bootstrap(d[:, :1], 2000).replicates
    assert seeds_only.std() == pytest.approx(d[:, 0].std() / math.sqrt(4), rel=0.1)
    # Percentile bounds and p-values: (#replicates on the wrong side + 1) / (B + 1).
    b = Bootstrap(0.5, np.arange(1, 100) / 100)  # 0.01 .. 0.99
    assert b.p_greater(0.049) == pytest.approx(5 / 100) and b.p_less(0.95) == pytest.approx(6 / 100)
    assert interval(b, 0.9) == pytest.approx((0.059, 0.941))
    with pytest.raises(ValueError, match="shape"):
        two_level_bootstrap(np.zeros((1, 5)))


def test_problem_level_interval_is_narrower_when_problem_difficulty_is_shared():
    """100 synthetic sweeps: 3 seeds x 200 held-out problems; each problem's difficulty
    (logit ~ N(0, 2.5^2)) is the same for both arms, A adds 0.4 to every logit, and each
    run answers each problem right with its probability. The problem-level interval
    (two-level bootstrap) is narrower on average than the seed-level paired t, and covers
    the true difference (the mean of A's minus B's probabilities) at least as often.
    With difficulty *not* shared (B's logits drawn apart), A - B varies from problem to
    problem and the problem-level interval says so by widening."""
    rng = np.random.default_rng(0)

    def sweep(shared):
        logit = rng.normal(0.0, 2.5, 200)
        p_a = 1 / (1 + np.exp(-(logit + 0.4)))
        p_b = 1 / (1 + np.exp(-(logit if shared else rng.normal(0.0, 2.5, 200))))
        a = (rng.random((3, 200)) < p_a).astype(float)
        b = (rng.random((3, 200)) < p_b).astype(float)
        return a - b, float(np.mean(p_a - p_b))

    results = {}
    for shared in (True, False):
        widths, covered = [], []
        for _ in range(100):
            d, truth = sweep(shared)
            problems = interval(two_level_bootstrap(d, 1000), 0.95)
            seeds = interval(paired_t(d.mean(axis=1)), 0.95)
            widths.append((problems[1] - problems[0], seeds[1] - seeds[0]))
            covered.append((problems[0] <= truth <= problems[1], seeds[0] <= truth <= seeds[1]))
        results[shared] = np.mean(widths, axis=0), np.mean(covered, axis=0)
    (problem_width, seed_width), (problem_cover, seed_cover) = results[True]
    assert problem_width < 0.85 * seed_width
    assert problem_cover >= seed_cover and problem_cover >= 0.95
    unshared_problem_width = results[False][0][0]
    assert unshared_problem_width > 1.3 * problem_width


def test_a_difference_exactly_on_the_margin_is_no_verdict_whatever_the_rounding():
    # 0.45 - 0.50 is -0.04999999999999999 in floats: the null "A is 5 points worse" holds
    # with equality, so neither non-inferiority nor equivalence may be declared, and no
    # number of seeds would change that.
    for a, b in ((0.45, 0.50), (0.35, 0.40)):
        for spread in ((0.0, 0.0, 0.0), (0.0, 0.02, -0.02)):  # no spread; every seed exactly -5 points
            d = [(a + s) - (b + s) for s in spread]
            superiority, non_inferiority, equivalence = verdicts(d)
            assert non_inferiority == "cannot tell (A observed more than 5 points worse)", (a, spread)
            assert equivalence == "cannot tell (observed difference beyond ±5 points)", (a, spread)
            assert paired_t(d).se == 0.0
    assert seeds_for_power(1e-17, -0.05 + 1e-18, NON_INFERIORITY, 0.05) == math.inf
    assert StudentT(0.05 + 1e-18, 0.0, 2).p_greater(0.05) == 1.0
    assert StudentT(0.0501, 0.0, 2).p_greater(0.05) == 0.0


def test_power_below_one_half_is_refused():
    # Below 0.5 the t-quantile sum is not monotone in n: the search would answer 53-881
    # where 2 seeds already suffice.
    with pytest.raises(ValueError, match=r"power=0.3 must lie in \[0.5, 1\)"):
        seeds_for_power(0.1, 0.05, SUPERIORITY, power=0.3)
