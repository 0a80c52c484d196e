import math

import pytest
import torch

from types import SimpleNamespace

from grpo_lab.algos import aggregate, clipped_surrogate, loss_weights
from grpo_lab.algos.policy_loss import POLICY_LOSSES, cispo_loss, dual_clip_loss, gspo_loss, sapo_loss
from grpo_lab.engine.update import MaskedMeans


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
        ("seq_mean_token_sum", ((1.0 + 3.0) + 5.0) / 2),  # sum per sequence, mean over sequences
    ],
)
def test_loss_aggregations_by_hand(aggregation, expected):
    weights = loss_weights(MASK, aggregation, max_completion_length=4)
    torch.testing.assert_close(aggregate(PER_TOKEN, weights), torch.tensor(expected))


@pytest.mark.parametrize("aggregation", ["seq_mean", "token_mean", "dr_grpo", "seq_mean_token_sum"])
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


@pytest.mark.parametrize("aggregation", sorted(["seq_mean", "token_mean", "dr_grpo", "seq_mean_token_sum"]))
def test_a_batch_of_fully_masked_rows_weighs_nothing(aggregation):
    # Every completion truncated and masked out (algorithm.mask_truncated): weights 0,
    # not NaN.
    weights = loss_weights(torch.zeros(2, 3), aggregation, max_completion_length=3)
    assert torch.equal(weights, torch.zeros(2, 3))


# -- policy losses: dual-clip, GSPO, CISPO, SAPO ---------------------------------------
CFG = SimpleNamespace(epsilon_low=0.2, epsilon_high=0.2, dual_clip_c=3.0, sapo_tau_pos=1.0, sapo_tau_neg=1.05)
ONE = torch.ones(1, 1)


def _token(ratio):
    return torch.tensor([[math.log(ratio)]], requires_grad=True), torch.zeros(1, 1)


def test_dual_clip_caps_negative_advantage_losses():
    # rho = 5, A = -1: the clipped loss is -min(-5, -1.2) = 5; dual clip caps it at c |A| = 3,
    # a constant (no gradient).
    logp, old = _token(5.0)
    loss, metrics = dual_clip_loss(logp, old, -ONE, ONE, CFG)
    torch.testing.assert_close(loss, torch.tensor([[3.0]]))
    assert metrics["clip_ratio/dual_mean"].item()
    loss.sum().backward()
    assert logp.grad.item() == 0.0


def test_dual_clip_leaves_moderate_ratios_and_positive_advantages_alone():
    # rho = 2, A = -1: -min(-2, -1.2) = 2 < 3, as clip. rho = 5, A = +1: -min(5, 1.2) = -1.2.
    logp, old = _token(2.0)
    loss, metrics = dual_clip_loss(logp, old, -ONE, ONE, CFG)
    torch.testing.assert_close(loss, torch.tensor([[2.0]]))
    assert not metrics["clip_ratio/dual_mean"].item()
    logp, old = _token(5.0)
    loss, metrics = dual_clip_loss(logp, old, ONE, ONE, CFG)
    torch.testing.assert_close(loss, torch.tensor([[-1.2]]))
    assert metrics["clip_ratio/high_mean"].item() and not metrics["clip_ratio/dual_mean"].item()


def test_gspo_clips_the_sequence_ratio_and_ignores_padding():
    # Row 0: log-ratios (log 2, 0) -> mean log 2 / 2 -> s = sqrt 2 = 1.414 > 1.2, A = +1:
    # every token -min(1.414, 1.2) = -1.2, clipped high.
    # Row 1: log-ratios (log 0.5, pad) -> s = 0.5 (the pad's 5.0 ignored), A = -1:
    # -min(-0.5, -0.8) = 0.8, clipped low.
    logp = torch.tensor([[math.log(2.0), 0.0], [math.log(0.5), 5.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    loss, metrics = gspo_loss(logp, torch.zeros(2, 2), torch.tensor([[1.0], [-1.0]]), mask, CFG)
    torch.testing.assert_close(loss[0], torch.tensor([-1.2, -1.2]))
    torch.testing.assert_close(loss[1, 0], torch.tensor(0.8))
    assert metrics["clip_ratio/high_mean"][0].all() and metrics["clip_ratio/low_mean"][1, 0]
    # Logged as TRL logs a sequence-level clip: the share of completions, not of tokens
    # (row 0's two tokens would give 2/3 clipped high, row 1's one token 1/3 low).
    assert metrics["clip_ratio/high_mean"].shape == (2, 1)
    means = MaskedMeans()
    means.add(mask, **metrics)
    one_process = SimpleNamespace(sum=list)
    assert means.means(one_process) == {
        "clip_ratio/high_mean": 0.5, "clip_ratio/low_mean": 0.5, "clip_ratio/region_mean": 1.0}


def test_gspo_gradient_uses_the_sequence_ratio_for_every_token():
    # Log-ratios (0.1, -0.1): mean 0, s = 1 (unclipped). Each token's gradient is
    # -A * s = -1 before aggregation (a token-level ratio would give -e^0.1, -e^-0.1).
    old = torch.tensor([[-1.1, -0.9]])
    logp = torch.tensor([[-1.0, -1.0]], requires_grad=True)
    loss, _ = gspo_loss(logp, old, ONE, torch.ones(1, 2), CFG)
    torch.testing.assert_close(loss.detach(), torch.tensor([[-1.0, -1.0]]))
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-1.0, -1.0]]))


def test_gspo_one_token_completion_equals_token_clip():
    # |y| = 1: the sequence ratio is the token ratio, 1.5 -> clipped to 1.2 with A = 1.
    logp, old = _token(1.5)
    loss, _ = gspo_loss(logp, old, ONE, ONE, CFG)
    torch.testing.assert_close(loss, torch.tensor([[-1.2]]))


def test_gspo_refuses_per_token_advantages():
    with pytest.raises(ValueError, match="one advantage per completion"):
        gspo_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1, 2), CFG)


def test_cispo_clips_the_weight_but_keeps_the_gradient():
    # rho = 2 (logp = log 0.5, old = log 0.25), A = 1, eps_high = 0.5: weight 1.5.
    # Loss -1.5 x 1 x log 0.5 = 1.5 log 2 = 1.0397; gradient -1.5 (PPO's clip: 0 here).
    cfg = SimpleNamespace(epsilon_low=1.0, epsilon_high=0.5)
    logp = torch.tensor([[math.log(0.5)]], requires_grad=True)
    loss, metrics = cispo_loss(logp, torch.tensor([[math.log(0.25)]]), ONE, ONE, cfg)
    torch.testing.assert_close(loss.detach(), torch.tensor([[1.5 * math.log(2.0)]]))
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-1.5]]))
    assert metrics["cispo/clipped_high_mean"].item() and metrics["cispo_clip_ratio"].item()
    # A < 0: the weight is capped too, which TRL's cispo_clip_ratio (A > 0 only) leaves out.
    metrics = cispo_loss(logp, torch.tensor([[math.log(0.25)]]), -ONE, ONE, cfg)[1]
    assert metrics["cispo/clipped_high_mean"].item() and not metrics["cispo_clip_ratio"].item()


def test_cispo_without_lower_bound_and_on_policy():
    # eps_low = 1: the floor is 0, so rho = 0.5 keeps weight 0.5; A = -1: gradient +0.5.
    cfg = SimpleNamespace(epsilon_low=1.0, epsilon_high=0.5)
    logp = torch.tensor([[math.log(0.25)]], requires_grad=True)
    loss, metrics = cispo_loss(logp, torch.tensor([[math.log(0.5)]]), -ONE, ONE, cfg)
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[0.5]]))
    assert not metrics["cispo/clipped_low_mean"].item()
    # On-policy (rho = 1) the gradient is the policy gradient -A.
    logp = torch.tensor([[-2.0]], requires_grad=True)
    cispo_loss(logp, logp.detach(), torch.tensor([[2.0]]), ONE, cfg)[0].sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-2.0]]))


def test_sapo_gate_on_policy_is_the_policy_gradient():
    # rho = 1, A = 1, tau = 1: f(1) = sigmoid(0) x 4 = 2 -> loss -2; f'(1) = 0.25 x 4 = 1,
    # so the gradient in logp is -A x f'(1) x rho = -1.
    logp = torch.tensor([[-1.0]], requires_grad=True)
    loss, metrics = sapo_loss(logp, logp.detach(), ONE, ONE, CFG)
    torch.testing.assert_close(loss.detach(), torch.tensor([[-2.0]]))
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-1.0]]))
    assert metrics == {}


def test_sapo_negative_advantage_uses_tau_neg():
    # rho = e, A = -1, tau = 1.05: loss = f(e) = sigmoid(1.05 (e - 1)) x 4 / 1.05
    # = 1 / (1 + exp(-1.8042)) x 3.8095 = 0.85866 x 3.8095 = 3.2711.
    logp = torch.tensor([[1.0]])
    loss, _ = sapo_loss(logp, torch.zeros(1, 1), -ONE, ONE, CFG)
    torch.testing.assert_close(loss, torch.tensor([[3.2711]]), atol=1e-4, rtol=0)


def test_every_registered_loss_is_finite_on_padding_and_one_token_rows():
    # Rows of one real token and rows of padding only: no NaN anywhere.
    logp = torch.tensor([[-0.5, -30.0], [-30.0, -30.0]])
    mask = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    for name in POLICY_LOSSES:
        loss, metrics = POLICY_LOSSES[name](logp, logp - 0.1, torch.tensor([[1.0], [-1.0]]), mask, CFG)
        assert torch.isfinite(loss).all(), name
