"""The gradient-noise probe (grpo_lab/trainer/grad_probe.py) on the random-init tiny model:
its gradients are the update's, and a run is the same with and without it."""

import json
import math
import os
import subprocess

import pytest
import torch

from grpo_lab.config.validate import validate_config
from grpo_lab.errors import ConfigError
from grpo_lab.models.inputs import position_ids_from_mask
from grpo_lab.trainer import Trainer
from grpo_lab.trainer.metrics import measures_machine
from tests.conftest import REPO, TINY, accelerate_launch, compose_config
from tests.trainer.test_train_tiny import LENGTH_REWARD

PROBE_KEYS = ["probe/grad_snr", "probe/grad_cosine", "probe/grad_norm_mean", "probe/grad_var_trace",
              "probe/num_batches", "probe/time"]


def _config(out, *overrides):
    return compose_config([*TINY, f"paths.output_dir={out}", *LENGTH_REWARD, *overrides])


def _hand_logp(policy, batch, temperature):
    """log pi(completion token | prefix) by a plain full forward, ``[N, T]``."""
    width = batch.completion_ids.shape[1]
    logits = policy(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                    position_ids=position_ids_from_mask(batch.attention_mask)).logits
    logits = logits[:, -width - 1:-1].float() / temperature
    return torch.log_softmax(logits, dim=-1).gather(-1, batch.completion_ids.unsqueeze(-1)).squeeze(-1)


def _hand_gradient(trainer, loss):
    params = [p for p in trainer.policy.parameters() if p.requires_grad]
    return torch.autograd.grad(loss, params, allow_unused=True)


def _assert_same_gradient(probe_grads, hand_grads):
    assert len(probe_grads) == len(hand_grads)
    total = sum(float(g.norm() ** 2) for g in hand_grads if g is not None)
    assert total > 0  # the reward gives the random model a signal
    for got, want in zip(probe_grads, hand_grads):
        want = torch.zeros_like(got) if want is None else want
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-6)


def test_grpo_probe_gradient_is_the_hand_written_policy_gradient(tmp_path):
    trainer = Trainer(_config(tmp_path / "run", "probe.every=1"))
    with trainer.probe._isolated():
        probe = trainer.probe.batch_gradient(1, 0)
    batch, cfg = probe.batch, trainer.cfg
    # Group-relative advantages by hand: (r - group mean) / (unbiased group std + eps).
    groups = probe.rewards.float().view(-1, cfg.algorithm.group_size)
    advantages = ((groups - groups.mean(1, keepdim=True)) / (groups.std(1, keepdim=True) + cfg.advantage.eps))
    torch.testing.assert_close(probe.advantages.flatten(), advantages.flatten())
    # At the sampling parameters the ratio is 1, so GRPO's clipped loss with seq_mean
    # aggregation has the gradient of -(1/N) sum_i A_i / |o_i| sum_t log pi(o_it).
    mask = batch.completion_mask.float()
    logp = _hand_logp(trainer.policy, batch, cfg.rollout.temperature)
    loss = -(advantages.flatten() * (logp * mask).sum(1) / mask.sum(1)).mean()
    _assert_same_gradient(probe.grads, _hand_gradient(trainer, loss))


def test_ppo_probe_gradient_uses_the_critics_token_advantages(tmp_path):
    trainer = Trainer(_config(tmp_path / "run", "algorithm=ppo", "probe.every=1"))
    with trainer.probe._isolated():
        probe = trainer.probe.batch_gradient(1, 0)
    batch = probe.batch
    mask = batch.completion_mask.float()
    # Per-token GAE advantages, whitened over the batch's real tokens.
    assert probe.advantages.shape == mask.shape
    real = probe.advantages[mask.bool()]
    assert float(real.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(real.std()) == pytest.approx(1.0, abs=0.05)
    # token_mean aggregation: the gradient of -sum_{i,t} A_it log pi(o_it) / (real tokens);
    # only the policy loss (no value loss), whatever PPO's epochs and mini-batches.
    logp = _hand_logp(trainer.policy, batch, trainer.cfg.rollout.temperature)
    loss = -(probe.advantages * logp * mask).sum() / mask.sum()
    _assert_same_gradient(probe.grads, _hand_gradient(trainer, loss))


def test_probe_batches_are_fresh_reproducible_and_leave_the_trainer_alone(tmp_path):
    trainer = Trainer(_config(tmp_path / "run", "probe.every=1", "probe.num_batches=3"))
    position = trainer.sampler.position
    rng = torch.get_rng_state()
    with trainer.probe._isolated():
        first, second = (trainer.probe.batch_gradient(1, k) for k in (0, 1))
        again = trainer.probe.batch_gradient(1, 0)
    assert first.batch.completion_texts != second.batch.completion_texts  # independent draws
    assert again.batch.completion_texts == first.batch.completion_texts  # a function of (seed, step, k)
    for a, b in zip(again.grads, first.grads):
        torch.testing.assert_close(a, b)
    assert trainer.sampler.position == position  # the run's prompt stream did not move
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(p.grad is None for p in trainer.policy.parameters())
    assert trainer.policy.training
    metrics = trainer.probe.measure(1)
    assert set(PROBE_KEYS) <= set(metrics)
    assert metrics["probe/num_batches"] == 3
    assert metrics["probe/grad_var_trace"] > 0 and metrics["probe/grad_norm_mean"] > 0
    assert -1.0 <= metrics["probe/grad_cosine"] <= 1.0
    assert math.isfinite(metrics["probe/grad_snr"])


def _records(out):
    """metrics.jsonl less what measures the machine and the probe's keys; the probe's
    own step-0 record left out; and samples.jsonl."""
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    probe_only = [r for r in metrics if r["step"] == 0 and any(k.startswith("probe/") for k in r)]
    kept = [{k: v for k, v in r.items() if not measures_machine(k) and not k.startswith("probe/")}
            for r in metrics if r not in probe_only]
    return kept, (out / "samples.jsonl").read_text(), metrics


RUN = ["trainer.max_steps=3", "logger.sample_every=1"]
ARMS = {
    # KL in the loss: the reference model's log-probs go into the probe's gradient.
    # Attention dropout draws from torch's global generator in every training forward,
    # the probe's included: its stream must be put back.
    "grpo": ["kl=k3", "+model.config_overrides.attention_dropout=0.1"],
    # KL in the reward with an adaptive coefficient the probe must not move; a critic.
    "ppo": ["algorithm=ppo", "kl=k1", "kl.placement=reward", "kl.target=0.05"],
}


@pytest.mark.parametrize("arm", sorted(ARMS))
def test_a_run_is_the_same_with_and_without_the_probe(tmp_path, arm):
    runs = {}
    for name, probe in (("off", []), ("on", ["probe.every=2", "probe.at_start=true", "probe.num_batches=2"])):
        trainer = Trainer(_config(tmp_path / name, *RUN, *ARMS[arm], *probe))
        trainer.train()
        modules = {"policy": trainer.policy, **trainer.algorithm.modules()}
        weights = {f"{m}.{k}": v.clone() for m, module in modules.items() for k, v in module.state_dict().items()}
        runs[name] = (*_records(tmp_path / name), weights, trainer.kl.coef)
    off, on = runs["off"], runs["on"]
    assert on[0] == off[0]  # every record the run writes, timings aside
    assert on[1] == off[1]  # samples.jsonl
    assert on[3].keys() == off[3].keys()
    assert all(torch.equal(on[3][k], off[3][k]) for k in off[3])  # final weights
    assert on[4] == off[4]  # the KL coefficient
    probed = {r["step"]: r for r in on[2] if "probe/grad_snr" in r}
    assert sorted(probed) == [0, 2]
    assert not any(k.startswith("probe/") for r in off[2] for k in r)
    for record in probed.values():
        assert set(PROBE_KEYS) <= set(record)
        assert record["probe/num_batches"] == 2
        assert record["probe/grad_var_trace"] > 0
    # The probe's samples and seconds stay out of the budget axes.
    budget = [{k: v for k, v in r.items() if k.startswith("budget/") and k != "budget/wall_s"}
              for r in on[2] if r["step"] > 0]
    assert budget == [{k: v for k, v in r.items() if k.startswith("budget/") and k != "budget/wall_s"}
                      for r in off[2]]
    assert probed[0]["budget/samples"] == 0 and probed[0]["budget/wall_s"] == 0


@pytest.mark.slow
def test_two_processes_probe_the_global_batch_gradient(tmp_path):
    """Each process differentiates its share of the loss; the probe's gradient is their
    mean, the whole batch's: the same figures as one process (2 CPU processes, gloo)."""
    overrides = ["trainer.max_steps=1", "probe.steps=[1]", "probe.num_batches=3", "logger=local",
                 "trainer.micro_batch_size=3", "advantage=batch_std", "algorithm.loss_aggregation=token_mean"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled"}
    launched = subprocess.run(
        accelerate_launch(2, "grpo_lab.cli", *TINY, *LENGTH_REWARD, *overrides, f"paths.output_dir={tmp_path / 'two'}"),
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    Trainer(_config(tmp_path / "one", *overrides)).train()
    two, one = (_records(tmp_path / name)[2][-1] for name in ("two", "one"))
    for key in ("probe/grad_norm_mean", "probe/grad_var_trace", "probe/grad_snr", "probe/grad_cosine"):
        assert two[key] == pytest.approx(one[key], rel=1e-4), key
    assert two["probe/num_batches"] == one["probe/num_batches"] == 3


def test_probe_settings_are_checked_in_one_line():
    def refused(*overrides):
        with pytest.raises(ConfigError) as err:
            validate_config(compose_config([*TINY, "paths.output_dir=unused", *overrides]))
        assert "\n" not in str(err.value)
        return str(err.value)

    assert "probe.num_batches=1" in refused("probe.num_batches=1")
    assert "probe.every" in refused("probe.every=-1")
    assert "probe.steps" in refused("probe.steps=[0]")
    assert "probe.steps" in refused("probe.steps=[3]")  # beyond trainer.max_steps=2
    assert "fp16" in refused("probe.every=1", "trainer.mixed_precision=fp16")
    validate_config(compose_config([*TINY, "paths.output_dir=unused", "probe.steps=[1,2]", "probe.num_batches=2"]))


def _frame(rows):
    """A tidy frame (analysis/frame.py) from (run, variant, step, metric, value) rows."""
    import pandas as pd

    return pd.DataFrame([{"run": r, "variant": v, "seed": int(r[-1]), "step": s, "metric": m, "value": x}
                         for r, v, s, m, x in rows])


VARIABILITY_ROWS = [
    # A: gradient norms 1, 3 (mean 2, std sqrt 2) and 2, 2 (std 0); probe SNR 0.5 then 1.5.
    ("a0", "A", 1, "grad_norm", 1.0), ("a0", "A", 2, "grad_norm", 3.0),
    ("a1", "A", 1, "grad_norm", 2.0), ("a1", "A", 2, "grad_norm", 2.0),
    ("a0", "A", 1, "probe/grad_snr", 0.5), ("a0", "A", 2, "probe/grad_snr", 1.5),
    ("a1", "A", 2, "probe/grad_snr", 3.0), ("a0", "A", 2, "probe/grad_cosine", 0.2),
    # B: ten times A's first run: the same coefficient of variation, ten times the std.
    ("b0", "B", 1, "grad_norm", 10.0), ("b0", "B", 2, "grad_norm", 30.0),
]


def test_variability_table_separates_scale_from_variation_and_adds_the_probe():
    from grpo_lab.analysis.stats import variability_table

    table = variability_table(_frame(VARIABILITY_ROWS)).set_index("variant")
    assert table.loc["A", "grad_norm_mean_before_clipping"] == pytest.approx(2.0)
    assert table.loc["A", "grad_norm_std_before_clipping"] == pytest.approx(math.sqrt(2) / 2)
    assert table.loc["A", "grad_norm_cv_before_clipping"] == pytest.approx(math.sqrt(2) / 2 / 2)
    assert table.loc["B", "grad_norm_std_before_clipping"] == pytest.approx(10 * math.sqrt(2))
    assert table.loc["B", "grad_norm_cv_before_clipping"] == pytest.approx(math.sqrt(2) / 2)
    # Per run the mean over its probe points, then the mean over runs: (1 + 3) / 2.
    assert table.loc["A", "probe_grad_snr"] == pytest.approx(2.0)
    assert table.loc["A", "probe_grad_cosine"] == pytest.approx(0.2)
    assert math.isnan(table.loc["B", "probe_grad_snr"])


def test_report_variability_section_says_what_each_row_measures():
    from grpo_lab.analysis.report import NO_PROBE_NOTE, PROBE_NOTE, _variability_section

    text = "\n".join(_variability_section(_frame(VARIABILITY_ROWS), alpha=0.05))
    assert "before clipping" in text and "std / mean" in text
    assert PROBE_NOTE in text and "probe_grad_snr" in text
    assert "Paired over seeds, coefficient of variation" in text
    unprobed = [r for r in VARIABILITY_ROWS if not r[3].startswith("probe/")]
    text = "\n".join(_variability_section(_frame(unprobed), alpha=0.05))
    assert NO_PROBE_NOTE in text and "probe_grad_snr" not in text
