import math

import pytest
import torch

from grpo_lab.algos import aggregate, clipped_surrogate, loss_weights


def _surrogate(ratio, adv, eps_low=0.2, eps_high=0.2):
    logp = torch.tensor([[math.log(ratio)]])
    return clipped_surrogate(logp, torch.zeros(1, 1), torch.tensor([[adv]]), eps_low, eps_high)


def test_ratio_above_range_with_positive_advantage_is_clipped():
    loss, clipped = _surrogate(1.5, 1.0)
    torch.testing.assert_close(loss, torch.tensor([[-1.2]]))
    assert clipped["high"].item() and not clipped["low"].item()


def test_ratio_below_range_with_negative_advantage_is_clipped():
    loss, clipped = _surrogate(0.5, -1.0)
    torch.testing.assert_close(loss, torch.tensor([[0.8]]))
    assert clipped["low"].item() and not clipped["high"].item()


def test_pessimistic_side_is_not_clipped():
    # Ratio fell with a positive advantage: min() keeps the unclipped, smaller value.
    loss, clipped = _surrogate(0.5, 1.0)
    torch.testing.assert_close(loss, torch.tensor([[-0.5]]))
    assert not clipped["low"].item() and not clipped["high"].item()


def test_asymmetric_clip_higher():
    loss, _ = _surrogate(1.5, 1.0, eps_low=0.2, eps_high=0.28)
    torch.testing.assert_close(loss, torch.tensor([[-1.28]]))


def test_gradient_at_ratio_one_is_policy_gradient():
    logp = torch.zeros(1, 3, requires_grad=True)
    loss, _ = clipped_surrogate(logp, logp.detach(), torch.tensor([[2.0]]), 0.2, 0.2)
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, torch.full((1, 3), -2.0))


MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
PER_TOKEN = torch.tensor([[1.0, 3.0, 100.0], [5.0, 100.0, 100.0]])  # 100s are padding


@pytest.mark.parametrize(
    "aggregation, expected",
    [
        ("seq_mean", (2.0 + 5.0) / 2),  # mean per sequence, then over sequences
        ("token_mean", (1.0 + 3.0 + 5.0) / 3),  # every token equal
        ("dr_grpo", (1.0 + 3.0 + 5.0) / (2 * 4)),  # constant: 2 seqs x max length 4
    ],
)
def test_loss_aggregations_by_hand(aggregation, expected):
    weights = loss_weights(MASK, aggregation, max_completion_length=4)
    torch.testing.assert_close(aggregate(PER_TOKEN, weights), torch.tensor(expected))


@pytest.mark.parametrize("aggregation", ["seq_mean", "token_mean", "dr_grpo"])
def test_micro_batches_sum_to_the_full_batch_loss(aggregation):
    torch.manual_seed(0)
    mask = (torch.rand(6, 5) > 0.3).float()
    mask[:, 0] = 1
    values = torch.randn(6, 5)
    weights = loss_weights(mask, aggregation, max_completion_length=5)
    full = aggregate(values, weights)
    parts = sum(aggregate(v, w) for v, w in zip(values.split(2), weights.split(2)))
    torch.testing.assert_close(parts, full)


def test_unknown_aggregation():
    with pytest.raises(ValueError, match="seq_mean"):
        loss_weights(MASK, "sum", 4)
