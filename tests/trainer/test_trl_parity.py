"""The README's "Coming from TRL" table, row by row, on the tiny model: one update with
TRL's setting (TRL's own ``GRPOTrainer._compute_loss`` and backward) and one with the
grpo-lab keys the table maps it to (the real config, composed and validated, then
``policy_update``) give the same loss and the same gradient.

One fixed batch serves every row: 2 prompts x 2 completions of different lengths (so
per-sequence and per-token means differ), off-policy old log-probs (so ratios leave 1
and clip), and a reference that differs from the policy (so the KL term has a value and
a gradient). Each row also checks in TRL's own metrics that the part of the loss it maps
is active (a clip row that clips nothing would prove nothing) and that every metric
both sides log under TRL's name (KL, entropy, clip ratios) has TRL's value, and the rows whose
mapping is easy to get wrong show that the wrong reading gives another gradient.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from grpo_lab.config.validate import validate_config
from grpo_lab.engine.distributed import Parallel
from grpo_lab.engine.forward import TrainForward, prefix_group_size
from grpo_lab.engine.kl_term import KLTerm
from grpo_lab.engine.update import UpdateBatch, UpdateSettings, policy_update
from grpo_lab.models.loading import load_policy_and_tokenizer
from tests.conftest import compose_config

trl = pytest.importorskip("trl")

PROMPT_LEN, WIDTH = 5, 6  # completion width = TRL max_completion_length = rollout.max_new_tokens
LENGTHS = [6, 3, 5, 2]
TEMPERATURE = 0.9
# Both sides in float32: gradients agree to ~1e-6 relative, the differences the wrong
# readings make are 1e-3 and more. A loss can be a small sum of terms of size ~1 that
# cancel (GSPO's below is ~1e-3): an absolute tolerance of float32 rounding there.
RTOL, LOSS_ATOL = 2e-5, 1e-6

# Our side: the tiny model, one micro-batch and one optimizer step over the 4 rows (as
# TRL's per_device_train_batch_size=4 below), no gradient clipping (TRL clips in its
# training step, outside the loss).
BASE = [
    "model=tiny", "trainer.num_threads=1", "algorithm.group_size=2", "trainer.batch_size=2",
    "trainer.micro_batch_size=4", f"rollout.max_new_tokens={WIDTH}", f"rollout.temperature={TEMPERATURE}",
    "trainer.max_grad_norm=0",
]


@pytest.fixture(scope="module")
def policy():
    """The tiny model with its output layer scaled by 10: a random init's next-token
    distributions are near uniform (entropy ~ log V = 10.8), where the entropy has almost
    no gradient; scaled, they are peaked like a trained model's (entropy ~2.6 here)."""
    torch.manual_seed(0)
    cfg = compose_config(BASE)
    model, tokenizer = load_policy_and_tokenizer(cfg.model, torch.device("cpu"), torch.float32)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(10.0)
    return model, tokenizer


@pytest.fixture(scope="module")
def batch(policy):
    """Prompt and completion ids (each prompt twice, as a group), masks, advantages, and
    old / reference log-probs: the policy's own, moved by noise of sd 0.5 per token."""
    model, _ = policy
    g = torch.Generator().manual_seed(1)
    prompts = torch.randint(100, 40000, (2, PROMPT_LEN), generator=g).repeat_interleave(2, dim=0)
    completions = torch.randint(100, 40000, (4, WIDTH), generator=g)
    mask = (torch.arange(WIDTH)[None] < torch.tensor(LENGTHS)[:, None]).long()
    input_ids = torch.cat([prompts, completions], dim=1)
    attention_mask = torch.cat([torch.ones_like(prompts), mask], dim=1)
    with torch.no_grad():
        logp, _, _ = TrainForward(model)(input_ids, attention_mask, completions, TEMPERATURE)
    return {
        "prompt_ids": prompts, "completion_ids": completions, "completion_mask": mask,
        "input_ids": input_ids, "attention_mask": attention_mask,
        "advantages": torch.tensor([0.9, -0.9, 1.2, -0.6]),
        "old_logp": logp + 0.5 * torch.randn(logp.shape, generator=g),
        "ref_logp": logp + 0.5 * torch.randn(logp.shape, generator=g),
    }


def gradients(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def trl_step(policy, batch, tmp_path, **options) -> tuple[float, torch.Tensor, dict[str, float]]:
    """TRL's loss and gradient for the batch under ``GRPOConfig(**options)``, and the
    metrics TRL logged for it."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    model, tokenizer = policy
    args = GRPOConfig(
        output_dir=str(tmp_path / "trl"), per_device_train_batch_size=4, num_generations=2,
        max_completion_length=WIDTH, temperature=TEMPERATURE, use_cpu=True, report_to="none",
        save_strategy="no", disable_tqdm=True, bf16=False, **options,  # TRL's default bf16=True: autocast
    )
    trainer = GRPOTrainer(
        model=copy.deepcopy(model), reward_funcs=lambda completions, **_: [0.0] * len(completions), args=args,
        train_dataset=Dataset.from_dict({"prompt": ["x"] * 4}), processing_class=tokenizer,
    )
    trainer.current_gradient_accumulation_steps = 1  # set by TRL's training loop; one micro-batch here
    mask = batch["completion_mask"]
    loss = trainer._compute_loss(trainer.model, {
        "prompt_ids": batch["prompt_ids"], "prompt_mask": torch.ones_like(batch["prompt_ids"]),
        "completion_ids": batch["completion_ids"], "completion_mask": mask,
        "advantages": batch["advantages"], "old_per_token_logps": batch["old_logp"],
        "ref_per_token_logps": batch["ref_logp"], "num_items_in_batch": mask.sum(),
    })
    loss.backward()
    metrics = {name: values[-1] for name, values in trainer._metrics["train"].items()}
    return float(loss), gradients(trainer.model), metrics


class KeepGradients(torch.optim.Optimizer):
    """An optimizer step that moves nothing and keeps the gradient it was given."""

    def __init__(self, model: torch.nn.Module):
        super().__init__(model.parameters(), {})
        self.model = model
        self.grad: torch.Tensor | None = None

    @torch.no_grad()
    def step(self, closure=None):
        self.grad = gradients(self.model)


def our_step(policy, batch, tmp_path, *overrides: str) -> tuple[float, torch.Tensor, dict[str, float]]:
    """grpo-lab's loss (``loss/policy``) and gradient for the batch under the config
    composed with ``overrides``, as the trainer builds its update."""
    cfg = compose_config([*BASE, f"paths.output_dir={tmp_path / 'ours'}", *overrides])
    validate_config(cfg)
    kl = KLTerm.from_config(cfg.kl)
    model = copy.deepcopy(policy[0])
    optimizer = KeepGradients(model)
    metrics = policy_update(
        TrainForward(model), optimizer, None,
        UpdateBatch(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
            completion_ids=batch["completion_ids"], completion_mask=batch["completion_mask"],
            advantages=batch["advantages"].unsqueeze(1), old_logp=batch["old_logp"],
            ref_logp=batch["ref_logp"],
        ),
        UpdateSettings.from_config(cfg, prefix_group_size(cfg)), kl, torch.Generator().manual_seed(0), Parallel(),
    )
    return metrics["loss/policy"], optimizer.grad, metrics


def relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours - theirs).norm() / theirs.norm())


# (TRL GRPOConfig options, grpo-lab overrides, a TRL metric that must be > 0 for the row
# to be exercised, or None). Each is a row of the README's table.
ROWS = {
    "beta_k3_loss_type_grpo": (
        dict(loss_type="grpo", beta=0.04, use_bias_correction_kl=False),
        ["kl=k3", "kl.coef=0.04", "algorithm.loss_aggregation=seq_mean"], "clip_ratio/region_mean"),
    "use_bias_correction_kl_loss_type_dapo": (
        dict(loss_type="dapo", beta=0.04, use_bias_correction_kl=True),
        ["kl=k3", "kl.coef=0.04", "kl.bias_correction=true", "algorithm.loss_aggregation=token_mean"], "kl"),
    "loss_type_bnpo": (dict(loss_type="bnpo"), ["algorithm.loss_aggregation=token_mean"], "clip_ratio/region_mean"),
    "loss_type_dr_grpo": (dict(loss_type="dr_grpo"), ["algorithm.loss_aggregation=dr_grpo"], "clip_ratio/region_mean"),
    "epsilon_epsilon_high": (
        dict(loss_type="grpo", epsilon=0.1, epsilon_high=0.28),
        ["algorithm.epsilon_low=0.1", "algorithm.epsilon_high=0.28"], "clip_ratio/low_mean"),
    "cispo": (
        dict(loss_type="cispo", epsilon_high=1.3, beta=0.04),
        ["algorithm.policy_loss=cispo", "algorithm.loss_aggregation=token_mean", "algorithm.epsilon_low=1",
         "algorithm.epsilon_high=0.3", "kl=k3", "kl.coef=0.04", "kl.bias_correction=true"], "cispo_clip_ratio"),
    "sapo": (
        dict(loss_type="sapo", sapo_temperature_pos=0.8, sapo_temperature_neg=1.2),
        ["algorithm.policy_loss=sapo", "algorithm.loss_aggregation=seq_mean", "algorithm.sapo_tau_pos=0.8",
         "algorithm.sapo_tau_neg=1.2"], None),  # a soft gate: nothing clips
    "importance_sampling_level_sequence_with_bias_correction_kl": (
        dict(loss_type="grpo", importance_sampling_level="sequence", beta=0.04, use_bias_correction_kl=True),
        ["algorithm.policy_loss=gspo", "kl=k3", "kl.coef=0.04", "kl.bias_correction=true"],
        "clip_ratio/region_mean"),
    "gspo_clip_range": (
        dict(loss_type="grpo", importance_sampling_level="sequence", epsilon=3e-4, epsilon_high=4e-4),
        ["algorithm=gspo"], "clip_ratio/region_mean"),
    "entropy_coef": (
        dict(loss_type="grpo", entropy_coef=0.05),
        ["algorithm.entropy_coef=0.05", "algorithm.entropy_aggregation=token_mean"], "entropy"),
}


# Metrics grpo-lab logs under TRL's names, with TRL's meaning (README, "Per-step metrics").
TRL_NAMED = {"kl", "entropy", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean",
             "clip_ratio/low_min", "clip_ratio/high_max", "cispo_clip_ratio"}


@pytest.mark.parametrize("row", list(ROWS))
def test_trl_setting_and_mapped_setting_give_the_same_loss_and_gradient(policy, batch, tmp_path, row):
    options, overrides, active = ROWS[row]
    trl_loss, trl_grad, trl_metrics = trl_step(policy, batch, tmp_path, **options)
    loss, grad, metrics = our_step(policy, batch, tmp_path, *overrides)
    if active is not None:
        assert trl_metrics[active] > 0
    assert loss == pytest.approx(trl_loss, rel=RTOL, abs=LOSS_ATOL)
    assert relative_error(grad, trl_grad) < RTOL
    # Every metric both log under TRL's name has TRL's value (the KL, the clip ratios).
    shared = sorted(set(trl_metrics) & set(metrics) & TRL_NAMED)
    assert active is None or active in shared
    for name in shared:
        assert metrics[name] == pytest.approx(trl_metrics[name], rel=RTOL, abs=LOSS_ATOL), name


# The readings the table warns against: each gives another gradient on the same batch.
WRONG_READINGS = {
    # TRL's epsilon_high is CISPO's cap itself; read as grpo-lab's epsilon_high it caps at 2.3.
    "cispo_epsilon_high_taken_as_is": ("cispo", ["algorithm.epsilon_high=1.3"]),
    # An entropy bonus aggregated like the policy loss (grpo-lab's default, verl's).
    "entropy_aggregated_as_the_policy_loss": ("entropy_coef", ["algorithm.entropy_aggregation=null"]),
}


@pytest.mark.parametrize("reading", list(WRONG_READINGS))
def test_the_wrong_reading_of_a_row_gives_another_gradient(policy, batch, tmp_path, reading):
    row, changed = WRONG_READINGS[reading]
    options, overrides, _ = ROWS[row]
    _, trl_grad, _ = trl_step(policy, batch, tmp_path, **options)
    _, grad, _ = our_step(policy, batch, tmp_path, *overrides, *changed)
    assert relative_error(grad, trl_grad) > 50 * RTOL
    assert math.isfinite(relative_error(grad, trl_grad))
