"""A NaN or inf loss skips the update instead of poisoning the weights."""

import torch

from grpo_lab.trainer import Trainer
from grpo_lab.methods.base import Advantages


def test_nan_advantages_skip_the_update_and_are_counted(tiny_config):
    trainer = Trainer(tiny_config())
    trainer.algorithm.advantages = lambda batch, rewards, token_kl, hidden: Advantages(
        torch.full((batch.size, 1), float("nan"))
    )
    before = [p.detach().clone() for p in trainer.policy.parameters()]
    metrics = trainer.step(1)
    assert metrics["nonfinite/skipped_updates"] == 1
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.policy.parameters()))
    assert all(p.grad is None for p in trainer.policy.parameters())


def test_finite_steps_count_no_skips(tiny_config):
    metrics = Trainer(tiny_config()).step(1)
    assert metrics["nonfinite/skipped_updates"] == 0
