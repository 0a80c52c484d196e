"""What a run computes in which precision, in words: printed at the start of a run and
recorded in its manifest, so two runs' numerics can be told apart at a glance."""

from __future__ import annotations

from typing import Any

import torch

from grpo_lab.tracking.manifest import cpu_bf16_flags


def describe_precision(cfg: Any, weights_dtype: torch.dtype) -> dict[str, Any]:
    """``weights``: the training weights' dtype; ``training``: the compute of the training
    passes; ``sampling``: what the rollouts come from; ``correction``: how the sampler's
    log-probs are corrected for (only when they differ from the trainer's)."""
    weights = str(weights_dtype).removeprefix("torch.")
    mixed = cfg.trainer.mixed_precision
    training = f"{mixed} autocast over {weights} weights" if mixed != "no" else weights
    rollout = cfg.rollout
    if rollout.backend != "hf":
        sampling = f"{rollout.backend} engine (dtype {rollout.vllm.dtype}), weights synced after every update"
    elif rollout.dtype:
        sampling = f"a {rollout.dtype} copy of the policy, re-cast after every update"
    else:
        sampling = "the training model"
    off_policy = rollout.backend != "hf" or bool(rollout.dtype)
    correction = "none needed"
    if off_policy:
        correction = rollout.importance_sampling
        if rollout.importance_sampling != "none":
            bounds = [f"min {rollout.importance_sampling_min}"] if rollout.importance_sampling_min is not None else []
            bounds += [f"max {rollout.importance_sampling_max}"] if rollout.importance_sampling_max is not None else []
            correction += f" ({', '.join(bounds)})" if bounds else ""
    return {"weights": weights, "training": training, "sampling": sampling, "correction": correction,
            "cpu_bf16": cpu_bf16_flags()}


def precision_line(described: dict[str, Any]) -> str:
    cpu = ", ".join(described["cpu_bf16"]) or "none"
    return (f"precision: training {described['training']}; sampling from {described['sampling']}; "
            f"sampler correction {described['correction']}; CPU bf16 units: {cpu}")
