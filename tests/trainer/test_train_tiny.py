"""Short runs of the real trainer on the random-init tiny model."""

import json
import math

import pytest
import torch

from grpo_lab.trainer import Trainer, train

REQUIRED_METRICS = [
    "reward", "reward_std", "frac_reward_zero_std", "kl", "entropy",
    "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean",
    "completions/mean_length", "completions/max_length", "loss/policy", "grad_norm",
    "learning_rate", "time/step", "time/optimizer", "tokens_per_second", "memory/peak_mb",
]
# A user's TRL-style reward with signal even for a random model (correctness is 0 there).
LENGTH_REWARD = [
    "reward=correctness",
    "+reward.weights.length=1.0",
    "+reward.functions.length=tests.helpers:completion_length_reward",
]


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("advantage", ["group_std", "group_mean", "batch_std"])
def test_two_steps_per_advantage_variant(tiny_config, advantage):
    cfg = tiny_config(f"advantage={advantage}", "kl=k3")
    summary = train(cfg)
    run = tiny_config().paths.output_dir
    records = read_metrics(__import__("pathlib").Path(run))
    assert [r["step"] for r in records] == [1, 2]
    for record in records:
        for key in REQUIRED_METRICS + ["rewards/correctness_lenient/mean", "rewards/format/mean"]:
            assert key in record, key
            assert record[key] is not None and math.isfinite(record[key]), key
        assert 0 < record["time/optimizer"] < record["time/update"]  # a part of the update
    assert summary["steps"] == 2
    saved = json.loads((__import__("pathlib").Path(run) / "summary.json").read_text())
    assert saved["reward_last_fifth"] == pytest.approx(records[-1]["reward"])


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
def test_kl_moves_off_zero_once_the_policy_has_changed(tiny_config, tmp_path, estimator):
    cfg = tiny_config(f"kl={estimator}", "trainer.lr=1e-2", *LENGTH_REWARD)
    train(cfg)
    records = read_metrics(tmp_path / "run")
    assert records[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # policy == reference at step 1
    assert abs(records[1]["kl"]) > 1e-6
    assert records[0]["grad_norm"] > 0


def test_no_reference_model_without_kl(tiny_config):
    trainer = Trainer(tiny_config("kl=none"))
    assert trainer.reference is None
    assert Trainer(tiny_config("kl=k3")).reference is not None


@pytest.mark.parametrize("aggregation", ["seq_mean", "token_mean", "dr_grpo"])
def test_each_loss_aggregation_updates_the_policy(tiny_config, aggregation):
    trainer = Trainer(tiny_config(f"algorithm.loss_aggregation={aggregation}", *LENGTH_REWARD))
    before = [p.detach().clone() for p in trainer.policy.parameters()]
    metrics = trainer.step(1)
    assert metrics["grad_norm"] > 0
    assert any(not torch.equal(b, p) for b, p in zip(before, trainer.policy.parameters()))


def test_several_iterations_and_minibatches_use_old_logprobs(tiny_config, tmp_path):
    cfg = tiny_config("algorithm.num_iterations=2", "algorithm.num_minibatches=2", "trainer.lr=1e-2", *LENGTH_REWARD)
    train(cfg)
    records = read_metrics(tmp_path / "run")
    # Later updates see a moved policy, so the ratio leaves 1 and clipping engages.
    assert max(r["clip_ratio/region_mean"] for r in records) > 0


def test_micro_batching_leaves_the_update_unchanged(tiny_config):
    def one_step(micro):
        trainer = Trainer(tiny_config(f"trainer.micro_batch_size={micro}", "trainer.optimizer=sgd", "trainer.lr=1.0",
                                      "trainer.max_grad_norm=0", *LENGTH_REWARD))
        metrics = trainer.step(1)
        return metrics, [p.detach() for p in trainer.policy.parameters()]

    full, full_params = one_step(8)
    split, split_params = one_step(3)
    assert split["loss/policy"] == pytest.approx(full["loss/policy"], rel=1e-4, abs=1e-6)
    for a, b in zip(full_params, split_params):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_samples_and_config_are_recorded(tiny_config, tmp_path):
    train(tiny_config("logger.sample_every=1", "logger.num_samples=3"))
    run = tmp_path / "run"
    samples = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6 and {"prompt", "completion", "reward", "advantage"} <= samples[0].keys()
    assert "model:" in (run / "config.yaml").read_text()


def test_kl_bias_correction_reaches_the_update_and_nothing_else(tiny_config):
    """On-policy (one iteration) the corrected KL has the same value and a different
    gradient: the first step's loss and KL agree, the updated weights do not."""

    def one_step(*overrides):
        trainer = Trainer(tiny_config("kl=k3", "kl.coef=0.5", "trainer.lr=1e-2", *LENGTH_REWARD, *overrides))
        trainer.step(1)  # the policy leaves the reference
        metrics = trainer.step(2)
        return metrics, [p.detach().clone() for p in trainer.policy.parameters()]

    plain, plain_weights = one_step()
    corrected, corrected_weights = one_step("kl.bias_correction=true")
    assert plain["kl"] > 0
    for key in ("kl", "loss/policy", "reward", "completions/mean_length"):
        assert corrected[key] == pytest.approx(plain[key], rel=1e-5), key
    assert any(not torch.allclose(a, b) for a, b in zip(plain_weights, corrected_weights))
