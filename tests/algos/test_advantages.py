import pytest
import torch

from grpo_lab.algos import ADVANTAGE_ESTIMATORS, group_advantages

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


@pytest.mark.parametrize("name", sorted(ADVANTAGE_ESTIMATORS))
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
@pytest.mark.parametrize("name", sorted(ADVANTAGE_ESTIMATORS))
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
