"""Speed-ups of the forward pass leave log-probs, hidden states and gradients unchanged."""

import pytest
import torch

from grpo_lab.engine.forward import completion_forward
from grpo_lab.trainer import Trainer
from tests.trainer.test_train_tiny import LENGTH_REWARD


@pytest.fixture
def tiny_policy_batch(tiny_config):
    trainer = Trainer(tiny_config("rollout.max_new_tokens=8"))
    torch.manual_seed(0)
    prompts, columns = trainer.sampler.next_batch()
    batch = trainer.rollout.generate(trainer.policy, prompts, columns, 4)
    return trainer.policy, batch


def assert_gradients_close(a, b):
    # Two fp32 paths sum the same terms in another order: the round-off scales with the
    # tensor's largest entries (up to about 1e3 here), not with each entry (one of 2e-3
    # differed by 1.3e-5 on an Intel Xeon's kernels, past an absolute 1e-5).
    torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5 * max(1.0, float(b.abs().max())))


def _forward(policy, batch, group_size):
    policy.zero_grad()
    out = completion_forward(policy, batch.input_ids, batch.attention_mask, batch.completion_ids,
                             temperature=0.7, with_entropy=True, with_hidden=True, group_size=group_size)
    (out.logp * batch.completion_mask).sum().backward()
    grads = [p.grad.clone() for p in policy.parameters()]
    return out, grads


def test_shared_prompt_prefix_matches_full_forward(tiny_policy_batch):
    policy, batch = tiny_policy_batch
    full, full_grads = _forward(policy, batch, group_size=1)
    shared, shared_grads = _forward(policy, batch, group_size=4)
    mask = batch.completion_mask.bool()
    torch.testing.assert_close(shared.logp[mask], full.logp[mask], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(shared.entropy[mask], full.entropy[mask], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(shared.hidden[mask], full.hidden[mask], rtol=1e-4, atol=1e-5)
    for a, b in zip(shared_grads, full_grads):
        assert_gradients_close(a, b)


def test_rows_that_are_not_whole_groups_fall_back(tiny_policy_batch):
    policy, batch = tiny_policy_batch
    rows = slice(1, 6)  # cuts through groups
    a = completion_forward(policy, batch.input_ids[rows], batch.attention_mask[rows], batch.completion_ids[rows], group_size=4)
    b = completion_forward(policy, batch.input_ids[rows], batch.attention_mask[rows], batch.completion_ids[rows], group_size=1)
    torch.testing.assert_close(a.logp, b.logp)


def test_training_step_is_the_same_with_and_without_prefix_sharing(tiny_config):
    def one_step(share):
        trainer = Trainer(tiny_config(f"trainer.share_prompt_prefix={share}", "kl=k3", "trainer.optimizer=sgd",
                                      "trainer.lr=1.0", "trainer.max_grad_norm=0", *LENGTH_REWARD))
        metrics = trainer.step(1)
        return metrics, [p.detach() for p in trainer.policy.parameters()]

    on, on_params = one_step(True)
    off, off_params = one_step(False)
    assert on["loss/policy"] == pytest.approx(off["loss/policy"], rel=1e-4, abs=1e-6)
    for a, b in zip(on_params, off_params):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


def test_critic_shared_prompt_prefix_matches_full_forward(tiny_policy_batch):
    from grpo_lab.models.critic import CriticModel

    policy, batch = tiny_policy_batch
    critic = CriticModel.from_policy(policy)
    torch.nn.init.normal_(critic.head.linear.weight)  # a zero head would hide the backbone's gradients

    def values_and_grads(group_size):
        critic.zero_grad()
        values = critic(batch.input_ids, batch.attention_mask, batch.completion_ids.shape[1], group_size)
        (values * batch.completion_mask).sum().backward()
        return values.detach(), [p.grad.clone() for p in critic.parameters()]

    full, full_grads = values_and_grads(1)
    shared, shared_grads = values_and_grads(4)
    mask = batch.completion_mask.bool()
    torch.testing.assert_close(shared[mask], full[mask], rtol=1e-4, atol=1e-5)
    for a, b in zip(shared_grads, full_grads):
        assert_gradients_close(a, b)


def test_ppo_steps_with_a_separate_critic_are_the_same_with_and_without_prefix_sharing(tiny_config):
    # Two steps: the zero-initialized value head predicts 0 whatever the backbone says
    # until its first update. One mini-batch keeps the rows in their groups.
    def two_steps(share):
        trainer = Trainer(tiny_config("algorithm=ppo", "algorithm.num_minibatches=1", "trainer.lr=1e-3",
                                      f"trainer.share_prompt_prefix={share}", *LENGTH_REWARD))
        trainer.step(1)
        metrics = trainer.step(2)
        return metrics, [p.detach() for p in trainer.algorithm.critic.parameters()]

    on, on_params = two_steps(True)
    off, off_params = two_steps(False)
    assert on["critic/value_mean"] != 0.0
    for key in ("critic/value_mean", "critic/value_loss", "loss/policy"):
        assert on[key] == pytest.approx(off[key], rel=1e-4, abs=1e-6), key
    for a, b in zip(on_params, off_params):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)
