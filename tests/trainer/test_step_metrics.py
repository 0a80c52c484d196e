"""Per-step reward statistics under TRL's names mean what TRL's mean."""

import pytest
import torch

from grpo_lab.trainer.metrics import reward_metrics


def test_reward_std_is_the_batch_spread_as_in_trl_and_the_group_spread_has_its_own_name():
    # Four prompts x four completions, binary rewards: an easy prompt, a hard one, two between.
    rewards = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0], dtype=torch.float32)
    metrics = reward_metrics(rewards, {}, group_size=4)
    # TRL (GRPOTrainer._generate_and_score_completions): nanstd(rewards), Bessel's std of all 16.
    assert metrics["reward_std"] == pytest.approx((7 * 9 / 16 / 15) ** 0.5, rel=1e-6)  # 0.5123
    # Within each group: 0, 0, 0.5, 0.5774 (Bessel), their mean.
    assert metrics["reward_group_std"] == pytest.approx((0.5 + (1 / 3) ** 0.5) / 4, rel=1e-6)  # 0.2693
    assert metrics["frac_reward_zero_std"] == 0.5  # two groups give no signal
    assert metrics["reward"] == pytest.approx(7 / 16)


def test_one_completion_per_prompt_has_a_batch_spread_but_no_group_one():
    metrics = reward_metrics(torch.tensor([0.0, 1.0, 1.0]), {}, group_size=1)
    assert metrics["reward_std"] == pytest.approx((1 / 3) ** 0.5)
    assert "reward_group_std" not in metrics and "frac_reward_zero_std" not in metrics


def test_terminated_lengths_are_those_of_the_completions_that_ended_by_themselves():
    from grpo_lab.trainer.metrics import completion_metrics

    metrics = completion_metrics(torch.tensor([3.0, 8.0, 5.0, 8.0]), torch.tensor([0.0, 1.0, 0.0, 1.0]))
    assert metrics["completions/clipped_ratio"] == 0.5
    assert (metrics["completions/mean_terminated_length"], metrics["completions/min_terminated_length"],
            metrics["completions/max_terminated_length"]) == (4.0, 3.0, 5.0)
    assert metrics["completions/mean_length"] == 6.0
    none_ended = completion_metrics(torch.tensor([8.0, 8.0]), torch.tensor([1.0, 1.0]))
    assert none_ended["completions/mean_terminated_length"] == 0.0  # TRL's value for this edge case


def test_clip_extremes_are_trls_most_and_least_clipped_completion():
    from types import SimpleNamespace

    from grpo_lab.engine.update import MaskedExtremes, clip_extremes

    # Per token: row 0 clips one of its two tokens above, row 1 its only real token (the
    # pad after it, clipped or not, does not count); row 1 clips below nothing.
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    tracked = {"clip_ratio/high_mean": torch.tensor([[True, False], [True, True]]),
               "clip_ratio/low_mean": torch.tensor([[False, True], [False, True]])}
    extremes = MaskedExtremes()
    extremes.add(mask, **clip_extremes(tracked, mask))
    one_process = SimpleNamespace(max=list)
    assert extremes.extremes(one_process) == {"clip_ratio/high_max": 1.0, "clip_ratio/low_min": 0.0}
    # A sequence-level clip (GSPO, [B, 1]) is its completions' own share.
    sequence = {"clip_ratio/high_mean": torch.tensor([[False], [True]])}
    row_1_empty = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    extremes = MaskedExtremes()
    extremes.add(row_1_empty, **clip_extremes(sequence, row_1_empty))
    assert extremes.extremes(one_process) == {"clip_ratio/high_max": 0.0}  # row 1 has no real token
