"""DAPO's overlong reward shaping and truncation mask, by hand."""

import torch

from grpo_lab.algos.overlong import drop_truncated, overlong_penalty


def test_soft_penalty_by_hand():
    # L_max = 10, L_cache = 4: no penalty up to 6 tokens, then (6 - |y|) / 4 down to -1
    # at 10. Lengths 6, 7, 10, 1 -> 0, -0.25, -1, 0; times factor 0.5.
    lengths = torch.tensor([6, 7, 10, 1])
    assert overlong_penalty(lengths, 10, 4, 0.5).tolist() == [0.0, -0.125, -0.5, 0.0]


def test_buffer_as_long_as_the_limit_and_one_token_completions():
    # L_cache = L_max = 10: a one-token completion already pays 1/10.
    torch.testing.assert_close(overlong_penalty(torch.tensor([1, 5]), 10, 10), torch.tensor([-0.1, -0.5]))


def test_no_buffer_no_penalty():
    assert overlong_penalty(torch.tensor([10, 3]), 10, 0).tolist() == [0.0, 0.0]


def test_truncated_rows_leave_the_loss_mask():
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]])
    out = drop_truncated(mask, torch.tensor([False, True, False]))
    assert out.tolist() == [[1, 1, 0], [0, 0, 0], [1, 0, 0]]
    # Every completion truncated: nothing left to train on.
    assert drop_truncated(mask, torch.tensor([True, True, True])).sum() == 0
