import math

import pytest
import torch

from grpo_lab.algos import token_logprobs


def _straightforward(logits, ids, temperature=1.0):
    logp_all = torch.log_softmax(logits.float() / temperature, -1)
    logp = logp_all.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("block_positions", [1, 3, 8, None])
def test_token_logprobs_match_log_softmax_gather(temperature, block_positions):
    torch.manual_seed(0)
    logits = torch.randn(5, 7, 50) * 4
    ids = torch.randint(0, 50, (5, 7))
    logp, entropy = token_logprobs(logits, ids, temperature, with_entropy=True, block_positions=block_positions)
    expected_logp, expected_entropy = _straightforward(logits, ids, temperature)
    torch.testing.assert_close(logp, expected_logp)
    torch.testing.assert_close(entropy, expected_entropy)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_token_logprobs_gradient_matches(temperature):
    torch.manual_seed(0)
    logits = (torch.randn(3, 4, 11) * 3).requires_grad_()
    ids = torch.randint(0, 11, (3, 4))
    weights = torch.randn(3, 4)  # a loss that weighs positions differently
    (token_logprobs(logits, ids, temperature, block_positions=3)[0] * weights).sum().backward()
    ours = logits.grad.clone()
    logits.grad = None
    (_straightforward(logits, ids, temperature)[0] * weights).sum().backward()
    torch.testing.assert_close(ours, logits.grad)


@pytest.mark.parametrize("block_positions", [2, None])
def test_token_logprobs_of_a_strided_view_and_bf16_logits(block_positions):
    torch.manual_seed(0)
    full = torch.randn(2, 6, 20).requires_grad_()
    ids = torch.randint(0, 20, (2, 5))
    logp, _ = token_logprobs(full[:, :-1], ids, block_positions=block_positions)  # as the unshared forward
    logp.sum().backward()
    ours = full.grad.clone()
    full.grad = None
    _straightforward(full[:, :-1], ids)[0].sum().backward()
    torch.testing.assert_close(ours, full.grad)
    low = full.detach().bfloat16().requires_grad_()
    logp, _ = token_logprobs(low[:, :-1], ids)
    logp.sum().backward()
    assert logp.dtype == torch.float32 and low.grad.dtype == torch.bfloat16
    torch.testing.assert_close(logp, _straightforward(low[:, :-1], ids)[0])


def test_entropy_of_uniform_is_log_vocab_and_has_no_gradient():
    logits = torch.zeros(2, 3, 8, requires_grad=True)
    logp, entropy = token_logprobs(logits, torch.zeros(2, 3, dtype=torch.long), with_entropy=True)
    torch.testing.assert_close(entropy, torch.full((2, 3), math.log(8)))
    assert not entropy.requires_grad and logp.requires_grad


def test_entropy_gradient_by_hand():
    # p = (0.75, 0.25) from logits (log 3, 0): H = -(0.75 log 0.75 + 0.25 log 0.25) = 0.562335;
    # dH/dx_j = -p_j (log p_j + H): -0.75 (-0.287682 + 0.562335) = -0.205990 and
    # -0.25 (-1.386294 + 0.562335) = +0.205990.
    logits = torch.tensor([[[math.log(3.0), 0.0]]], requires_grad=True)
    _, entropy = token_logprobs(logits, torch.zeros(1, 1, dtype=torch.long), with_entropy=True, entropy_grad=True)
    torch.testing.assert_close(entropy.detach(), torch.tensor([[0.562335]]))
    entropy.sum().backward()
    torch.testing.assert_close(logits.grad, torch.tensor([[[-0.205990, 0.205990]]]))


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("block_positions", [1, 4, None])
def test_entropy_and_logprob_gradients_together_match_autograd(temperature, block_positions):
    # An entropy bonus backpropagates through both outputs at once.
    torch.manual_seed(0)
    logits = (torch.randn(3, 5, 20) * 3).requires_grad_(True)
    ids = torch.randint(0, 20, (3, 5))
    w_logp, w_h = torch.randn(3, 5), torch.randn(3, 5)
    logp, entropy = token_logprobs(logits, ids, temperature, with_entropy=True,
                                   block_positions=block_positions, entropy_grad=True)
    ((logp * w_logp).sum() + (entropy * w_h).sum()).backward()
    ours = logits.grad.clone()
    logits.grad = None
    expected_logp, expected_entropy = _straightforward(logits, ids, temperature)
    ((expected_logp * w_logp).sum() + (expected_entropy * w_h).sum()).backward()
    torch.testing.assert_close(ours, logits.grad)
