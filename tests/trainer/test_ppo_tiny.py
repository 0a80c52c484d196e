"""PPO with a critic through the same trainer core, on the random-init tiny model."""

import math

import pytest
import torch

from grpo_lab.trainer import Trainer
from tests.trainer.test_train_tiny import LENGTH_REWARD

CRITIC_METRICS = ["critic/value_loss", "critic/explained_variance", "critic/value_mean",
                  "critic/value_clipfrac", "critic/time_share", "critic/memory_share"]


@pytest.mark.parametrize("algorithm", ["ppo", "ppo_shared"])
@pytest.mark.parametrize("placement", ["loss", "reward"])
def test_two_ppo_steps(tiny_config, algorithm, placement):
    trainer = Trainer(tiny_config(f"algorithm={algorithm}", "kl=k3", f"kl.placement={placement}",
                                  "trainer.lr=1e-3", "algorithm.critic.lr=1e-3", *LENGTH_REWARD))
    head = trainer.algorithm.critic.head if algorithm == "ppo" else trainer.algorithm.critic
    head_before = [p.detach().clone() for p in head.parameters()]
    summary = trainer.train()
    assert summary["steps"] == 2
    last = trainer.history[-1]
    for key in CRITIC_METRICS + ["reward", "kl", "loss/policy", "grad_norm"]:
        assert key in last and math.isfinite(last[key]), key
    if algorithm == "ppo":
        assert last["critic/grad_norm"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(head_before, head.parameters()))
    assert 0 < last["critic/time_share"] < 1


def test_separate_critic_is_as_large_as_the_policy(tiny_config):
    trainer = Trainer(tiny_config("algorithm=ppo"))
    n_policy = sum(p.numel() for p in trainer.policy.get_decoder().parameters())
    n_critic = sum(p.numel() for p in trainer.algorithm.critic.backbone.parameters())
    assert n_critic == n_policy
    # The shared variant adds only a head to the policy optimizer.
    shared = Trainer(tiny_config("algorithm=ppo_shared"))
    assert sum(p.numel() for p in shared.algorithm.value_head.parameters()) == shared.policy.config.hidden_size + 1


def test_critic_warmup_freezes_the_policy(tiny_config):
    trainer = Trainer(tiny_config("algorithm=ppo", "algorithm.critic.warmup_steps=1", *LENGTH_REWARD))
    before = [p.detach().clone() for p in trainer.policy.parameters()]
    metrics = trainer.step(1)
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.policy.parameters()))
    assert "critic/value_loss" in metrics and "loss/policy" not in metrics
    trainer.step(2)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.policy.parameters()))


def test_grpo_with_kl_in_the_reward(tiny_config):
    trainer = Trainer(tiny_config("kl=k1", "kl.placement=reward", "trainer.lr=1e-2", *LENGTH_REWARD))
    trainer.train()
    assert trainer.history[0]["kl"] == pytest.approx(0.0, abs=1e-6)
    assert abs(trainer.history[1]["kl"]) > 0


def test_shared_head_values_come_from_the_old_policy_pass(tiny_config):
    """With the value head on the policy, the no-grad pass that gives the old log-probs
    also gives the values: one pass of the policy over the rollouts, not two."""
    trainer = Trainer(tiny_config("algorithm=ppo_shared", "trainer.share_prompt_prefix=false",
                                  "trainer.max_steps=1", "logger=local"))
    no_grad_passes = []
    trainer.policy.register_forward_pre_hook(
        lambda module, args: no_grad_passes.append(1) if module.training and not torch.is_grad_enabled() else None
    )
    trainer.train()
    assert len(no_grad_passes) == 1  # 8 rollouts, one micro-batch (generation runs in eval mode)
    assert "critic/explained_variance" in trainer.history[0]


def test_ppo_samples_one_completion_per_prompt(tiny_config):
    """arm=ppo_one_sample: a batch of one completion per prompt, advantages from the critic."""
    trainer = Trainer(tiny_config("arm=ppo_one_sample", "trainer.batch_size=3", "trainer.lr=1e-3", *LENGTH_REWARD))
    sizes = []
    generate = trainer.rollout.generate

    def recording(model, prompts, columns, group_size, *args, **kwargs):
        batch = generate(model, prompts, columns, group_size, *args, **kwargs)
        sizes.append((len(prompts), group_size, batch.completion_ids.shape[0]))
        return batch
    trainer.rollout.generate = recording
    summary = trainer.train()
    assert summary["steps"] == 2 and sizes == [(3, 1, 3), (3, 1, 3)]
    last = trainer.history[-1]
    for key in CRITIC_METRICS + ["reward", "loss/policy", "grad_norm"]:
        assert key in last and math.isfinite(last[key]), key
    assert "reward_group_std" not in last and "frac_reward_zero_std" not in last  # no group, no spread within one
    assert last["reward_std"] >= 0  # the batch's spread, as TRL logs it
