import math

import torch

from grpo_lab.algos import selective_log_softmax, token_entropy


def test_selective_log_softmax_matches_log_softmax_gather():
    torch.manual_seed(0)
    logits = torch.randn(5, 7, 50)
    ids = torch.randint(0, 50, (5, 7))
    expected = torch.log_softmax(logits, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(selective_log_softmax(logits, ids, chunk_rows=2), expected)


def test_selective_log_softmax_gradient_matches():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 11, requires_grad=True)
    ids = torch.randint(0, 11, (3, 4))
    selective_log_softmax(logits, ids).sum().backward()
    ours = logits.grad.clone()
    logits.grad = None
    torch.log_softmax(logits, -1).gather(-1, ids.unsqueeze(-1)).sum().backward()
    torch.testing.assert_close(ours, logits.grad)


def test_entropy_of_uniform_is_log_vocab():
    torch.testing.assert_close(token_entropy(torch.zeros(2, 3, 8)), torch.full((2, 3), math.log(8)))
