import pytest
import torch

from grpo_lab.algos import ADVANTAGE_ESTIMATORS, group_advantages
from grpo_lab.config.schema import AdvantageConfig

# The brief's "What is 2 + 3?" group: "5" -> 1, "6" -> 0, "2 + 3 = 5" -> 2.
BRIEF = torch.tensor([1.0, 0.0, 2.0])


def test_group_mean_brief_example():
    assert group_advantages(BRIEF, 3, "group_mean").tolist() == [0.0, -1.0, 1.0]


def test_group_std_brief_example():
    # Unbiased std of (1, 0, 2) is exactly 1.
    adv = group_advantages(BRIEF, 3, "group_std", eps=0.0)
    torch.testing.assert_close(adv, torch.tensor([0.0, -1.0, 1.0]))


def test_group_std_scales_each_group_by_its_own_std():
    rewards = torch.tensor([0.0, 2.0, 0.0, 4.0])  # groups (0, 2) and (0, 4)
    adv = group_advantages(rewards, 2, "group_std", eps=0.0)
    s = 2**0.5  # unbiased std of (0, 2) is sqrt(2); of (0, 4) is 2 sqrt(2)
    torch.testing.assert_close(adv, torch.tensor([-1 / s, 1 / s, -1 / s, 1 / s]))


def test_batch_std_keeps_relative_scale_of_groups():
    rewards = torch.tensor([0.0, 2.0, 0.0, 4.0])
    std = torch.tensor([0.0, 2.0, 0.0, 4.0]).std()  # over the whole batch
    adv = group_advantages(rewards, 2, "batch_std", eps=0.0)
    torch.testing.assert_close(adv, torch.tensor([-1.0, 1.0, -2.0, 2.0]) / std)


@pytest.mark.parametrize("name", sorted(ADVANTAGE_ESTIMATORS))
def test_equal_rewards_give_zero_advantages_not_nan(name):
    adv = group_advantages(torch.tensor([1.5, 1.5, 1.5, 1.5]), 4, name)
    assert torch.equal(adv, torch.zeros(4))


# Estimators with a group baseline. REINFORCE++ has none (its baseline is the batch
# mean): its advantages neither sum to 0 per group nor vanish in a tied group.
GROUP_BASELINED = sorted(set(ADVANTAGE_ESTIMATORS) - {"reinforce_plus_plus"})


@pytest.mark.parametrize("name", GROUP_BASELINED)
def test_advantages_sum_to_zero_within_each_group(name):
    rewards = torch.tensor([3.0, 1.0, 0.5, 0.0, 2.0, 2.5])
    adv = group_advantages(rewards, 3, name).view(2, 3)
    torch.testing.assert_close(adv.sum(dim=1), torch.zeros(2), atol=1e-5, rtol=0)


def test_eps_is_added_to_the_std():
    adv = group_advantages(BRIEF, 3, "group_std", eps=1.0)
    torch.testing.assert_close(adv, torch.tensor([0.0, -0.5, 0.5]))


def test_unknown_normalization_names_allowed_values():
    with pytest.raises(ValueError, match="group_mean"):
        group_advantages(BRIEF, 3, "z_score")


def test_rewards_not_divisible_by_group_size():
    with pytest.raises(ValueError, match="groups of 2"):
        group_advantages(BRIEF, 2, "group_mean")


@pytest.mark.parametrize("eps", [1e-6, 1e-8])
@pytest.mark.parametrize("name", GROUP_BASELINED)
def test_tied_group_gets_exactly_zero(name, eps):
    # Eight rewards of 0.7: the float32 mean is 0.7 plus rounding, and (r - mean) / (std + eps)
    # used to turn that into advantages of about 0.06. A second group with signal (0, 1)
    # keeps the batch std of batch_std away from 0.
    rewards = torch.tensor([0.7] * 8 + [0.0, 1.0] * 4)
    adv = group_advantages(rewards, 8, name, eps=eps)
    assert adv[:8].tolist() == [0.0] * 8
    assert adv[8:].abs().min() > 0.1
    # A batch in which every group is tied has no signal at all.
    assert group_advantages(torch.full((8,), 0.7), 4, name, eps=eps).tolist() == [0.0] * 8


# -- RLOO, REINFORCE++, REINFORCE++-baseline -------------------------------------------

def test_rloo_brief_example():
    # r_i - mean of the others: 1 - (0 + 2)/2 = 0; 0 - (1 + 2)/2 = -1.5; 2 - (1 + 0)/2 = 1.5.
    assert group_advantages(BRIEF, 3, "rloo").tolist() == [0.0, -1.5, 1.5]


def test_rloo_one_right_of_four():
    # 1 - 0 = 1; 0 - (1 + 0 + 0)/3 = -1/3 for each wrong one.
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), 4, "rloo")
    torch.testing.assert_close(adv, torch.tensor([1.0, -1 / 3, -1 / 3, -1 / 3]))


def test_rloo_groups_of_two_and_ties():
    # G = 2: r_i - r_other: (3, 1) -> (2, -2); a tied pair (0.7, 0.7) -> exactly 0.
    adv = group_advantages(torch.tensor([3.0, 1.0, 0.7, 0.7]), 2, "rloo")
    assert adv.tolist() == [2.0, -2.0, 0.0, 0.0]


def test_rloo_needs_two_per_group():
    with pytest.raises(ValueError, match="at least 2"):
        group_advantages(BRIEF, 1, "rloo")


def test_reinforce_plus_plus_whitens_the_batch_without_group_baseline():
    # Rewards (1, 0 | 0, 0), one weight per completion: mean 0.25, deviations
    # (0.75, -0.25, -0.25, -0.25), sum of squares 0.75, unbiased var 0.75 / 3 = 0.25,
    # std 0.5 -> (1.5, -0.5, -0.5, -0.5). The tied group (0, 0) is pushed down: it is
    # below the batch mean.
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), 2, "reinforce_plus_plus", eps=0.0)
    torch.testing.assert_close(adv, torch.tensor([1.5, -0.5, -0.5, -0.5]))


def test_reinforce_plus_plus_counts_each_token():
    # Rewards (1, 0, 1, 0) with lengths (1, 3, 1, 3): 8 tokens, mean 2/8 = 0.25,
    # deviations (0.75, -0.25, 0.75, -0.25); token-weighted squares
    # 0.5625 + 3 x 0.0625 + 0.5625 + 3 x 0.0625 = 1.5; var 1.5 / 8 x 8 / 7 = 1.5 / 7.
    adv = group_advantages(torch.tensor([1.0, 0.0, 1.0, 0.0]), 2, "reinforce_plus_plus", eps=0.0,
                           lengths=torch.tensor([1.0, 3.0, 1.0, 3.0]))
    torch.testing.assert_close(adv, torch.tensor([0.75, -0.25, 0.75, -0.25]) / (1.5 / 7) ** 0.5)


def test_reinforce_plus_plus_baseline_by_hand():
    # Rewards (1, 0 | 0, 0): minus group means -> (0.5, -0.5, 0, 0); per completion the
    # batch mean is 0, unbiased var (0.25 + 0.25) / 3 = 1/6 -> (0.5, -0.5, 0, 0) x sqrt(6).
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), 2, "reinforce_plus_plus_baseline", eps=0.0)
    torch.testing.assert_close(adv, torch.tensor([0.5, -0.5, 0.0, 0.0]) * 6**0.5)


def test_reinforce_plus_plus_baseline_token_weighted_shifts_tied_groups():
    # Centered (0.5, -0.5, 0, 0) with lengths (3, 1, 2, 2), 8 tokens: mean
    # (1.5 - 0.5) / 8 = 0.125; deviations (0.375, -0.625, -0.125, -0.125); squares
    # 3 x 0.140625 + 0.390625 + 2 x 2 x 0.015625 = 0.875; var 0.875 / 7 = 0.125, std
    # 1 / (2 sqrt 2). The tied group gets -0.125 x 2 sqrt 2, as verl's masked whitening.
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), 2, "reinforce_plus_plus_baseline", eps=0.0,
                           lengths=torch.tensor([3.0, 1.0, 2.0, 2.0]))
    torch.testing.assert_close(adv, torch.tensor([0.375, -0.625, -0.125, -0.125]) * 2 * 2**0.5)


@pytest.mark.parametrize("name", ["reinforce_plus_plus", "reinforce_plus_plus_baseline"])
def test_whitening_a_single_token_batch_gives_zero(name):
    # One completion of one token: no spread to whiten by (n - 1 = 0).
    adv = group_advantages(torch.tensor([1.0, 0.0]), 2, name, lengths=torch.tensor([1.0, 0.0]))
    assert adv.tolist() == [0.0, 0.0]


# pass@k (Chen et al. 2025). A group of N with N_neg wrong: R = 1 - C(N_neg, k) / C(N, k),
# s = sqrt(R (1 - R)); solved (1 - R) / s; wrong (1 - R - C(N_neg-1, k-1) / C(N-1, k-1)) / s.
PASS_CFG = AdvantageConfig(normalization="pass_at_k", pass_k=2, pass_threshold=1.0)


def test_pass_at_k_one_solved_of_four_k2_by_hand():
    # N = 4, N_neg = 3, k = 2: R = 1 - 3/6 = 0.5, s = 0.5. Solved: 0.5 / 0.5 = 1.
    # Wrong: (0.5 - C(2,1)/C(3,1)) / 0.5 = (0.5 - 2/3) / 0.5 = -1/3. A reward of exactly
    # the threshold counts as solved; 0.8 (format only) does not.
    adv = group_advantages(torch.tensor([0.8, 1.0, 0.0, 0.4]), 4, "pass_at_k", cfg=PASS_CFG)
    torch.testing.assert_close(adv, torch.tensor([-1 / 3, 1.0, -1 / 3, -1 / 3]))


def test_pass_at_k_two_solved_of_four_k2_by_hand():
    # N_neg = 2: R = 1 - C(2,2)/C(4,2) = 5/6, s = sqrt(5/6 x 1/6) = sqrt(5)/6.
    # Solved: (1/6) / (sqrt(5)/6) = 1/sqrt(5); wrong: (1/6 - C(1,1)/C(3,1)) / s = -1/sqrt(5).
    # Group mean/std would give +-0.866: pass@2 pushes a half-solved group less.
    adv = group_advantages(torch.tensor([2.0, 0.0, 1.8, 0.0]), 4, "pass_at_k", cfg=PASS_CFG)
    torch.testing.assert_close(adv, torch.tensor([1.0, -1.0, 1.0, -1.0]) / 5**0.5)


def test_pass_at_k_fewer_wrong_than_k_is_no_signal():
    # One wrong of four, k = 2: every pair holds a solved completion, R = 1, s = 0. The
    # wrong completion is not pushed down (group mean/std would give it -1.5).
    adv = group_advantages(torch.tensor([2.0, 0.0, 1.8, 1.0]), 4, "pass_at_k", cfg=PASS_CFG)
    assert adv.tolist() == [0.0, 0.0, 0.0, 0.0]


def test_pass_at_k_one_of_eight_k4_by_hand():
    # N = 8, N_neg = 7, k = 4: R = 1 - C(7,4)/C(8,4) = 1 - 35/70 = 0.5, s = 0.5.
    # Solved: 1; wrong: (0.5 - C(6,3)/C(7,3)) / 0.5 = (0.5 - 20/35) / 0.5 = -1/7.
    cfg = AdvantageConfig(normalization="pass_at_k", pass_k=4, pass_threshold=1.0)
    adv = group_advantages(torch.tensor([0.0] * 7 + [1.0]), 8, "pass_at_k", cfg=cfg)
    torch.testing.assert_close(adv, torch.tensor([-1 / 7] * 7 + [1.0]))


def test_pass_at_1_is_group_mean_over_population_std():
    # k = 1 and 0/1 rewards (1, 1, 0, 0): p = 0.5, s = 0.5 -> +-1, which is (r - 0.5) / 0.5.
    # Groups of 2 (1, 0): the same, +-1.
    cfg = AdvantageConfig(normalization="pass_at_k", pass_k=1, pass_threshold=1.0)
    adv = group_advantages(torch.tensor([1.0, 1.0, 0.0, 0.0]), 4, "pass_at_k", cfg=cfg)
    assert adv.tolist() == [1.0, 1.0, -1.0, -1.0]
    assert group_advantages(torch.tensor([1.0, 0.0]), 2, "pass_at_k", cfg=cfg).tolist() == [1.0, -1.0]


def test_pass_at_k_without_config_uses_k2_threshold_1():
    adv = group_advantages(torch.tensor([0.8, 1.0, 0.0, 0.4]), 4, "pass_at_k")
    torch.testing.assert_close(adv, torch.tensor([-1 / 3, 1.0, -1 / 3, -1 / 3]))


@pytest.mark.parametrize("k", [0, 4])
def test_pass_at_k_needs_k_below_the_group_size(k):
    cfg = AdvantageConfig(normalization="pass_at_k", pass_k=k, pass_threshold=1.0)
    with pytest.raises(ValueError, match=f"1 <= k < group size, got k={k} with groups of 4"):
        group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), 4, "pass_at_k", cfg=cfg)


# -- eps = 0 and whole-batch ties ------------------------------------------------------

ALL_ESTIMATORS = sorted(ADVANTAGE_ESTIMATORS)


@pytest.mark.parametrize("name", GROUP_BASELINED)
def test_a_tied_group_gives_exactly_zero_at_eps_0(name):
    # (1, 1, 1, 1) ties, (1, 0, 0, 1) does not. At eps = 0 the tied group's std is 0 and
    # (r - mean) / std used to be 0 / 0 = NaN; the run then skipped every update.
    adv = group_advantages(torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0]), 4, name, eps=0.0)
    assert adv[:4].tolist() == [0.0] * 4
    assert torch.isfinite(adv).all() and adv[4:].abs().min() > 0.1


@pytest.mark.parametrize("lengths", [None, torch.tensor([3.0, 1.0, 2.0, 5.0] * 4)])
@pytest.mark.parametrize("eps", [0.0, 1e-8, 1e-6, 1e-4])
@pytest.mark.parametrize("value", [0.7, 1.0])
@pytest.mark.parametrize("name", ALL_ESTIMATORS)
def test_a_batch_whose_rewards_all_tie_gives_exactly_zero(name, value, eps, lengths):
    # Sixteen equal rewards: no completion is better than another. The float mean of 0.7s
    # is 0.7 plus rounding; REINFORCE++'s batch whitening used to blow that up (6e-4 at
    # eps 1e-4, 0.83 at 1e-8); with 1.0s the std is exactly 0 and eps 0 gave NaN (batch_std,
    # reinforce_plus_plus, reinforce_plus_plus_baseline).
    adv = group_advantages(torch.full((16,), value), 4, name, eps=eps, lengths=lengths)
    assert adv.tolist() == [0.0] * 16


def test_reinforce_plus_plus_batch_tie_ignores_completions_without_tokens():
    # A completion of no tokens weighs nothing in the token-weighted whitening; the others
    # tie (0.7 each; the empty one's reward differs), so there is nothing to whiten.
    rewards = torch.tensor([0.7, 0.7, 0.7, 0.0])
    adv = group_advantages(rewards, 2, "reinforce_plus_plus", eps=0.0, lengths=torch.tensor([2.0, 3.0, 4.0, 0.0]))
    assert adv.tolist() == [0.0] * 4


def test_reinforce_plus_plus_at_eps_0_is_plain_whitening():
    # Not a tie: eps = 0 divides by the batch std itself, (1.5, -0.5, -0.5, -0.5) as above.
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0]), 2, "reinforce_plus_plus", eps=0.0)
    torch.testing.assert_close(adv, torch.tensor([1.5, -0.5, -0.5, -0.5]))


@pytest.mark.parametrize("name", ALL_ESTIMATORS)
def test_a_negative_eps_is_refused(name):
    # eps = -1 turned the best completion's advantage negative: the run minimized the reward.
    with pytest.raises(ValueError, match=r"^eps=-1.0 must be >= 0"):
        group_advantages(BRIEF, 3, name, eps=-1.0)


def test_pass_at_k_defaults_without_a_config_are_the_configs_defaults():
    """algos imports nothing from config (it is below it), so the pure function keeps its
    own copy of the two defaults: the same numbers as AdvantageConfig's."""
    from grpo_lab.algos.advantages import (
        DEFAULT_PASS_K,
        DEFAULT_PASS_THRESHOLD,
        pass_at_k_advantages,
    )
    from grpo_lab.config.schema import AdvantageConfig

    assert (DEFAULT_PASS_K, DEFAULT_PASS_THRESHOLD) == (AdvantageConfig().pass_k, AdvantageConfig().pass_threshold)
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    assert torch.equal(pass_at_k_advantages(rewards, 3), pass_at_k_advantages(rewards, 3, AdvantageConfig()))
