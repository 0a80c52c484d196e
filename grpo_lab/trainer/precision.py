"""What a run computes in which precision, in words: printed at the start of a run and
recorded in its manifest, so two runs' numerics can be told apart at a glance."""

from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator

import torch

from grpo_lab.tracking.manifest import cpu_bf16_flags


def autocast_attention(cfg: Any, device: torch.device) -> str | None:
    """The attention implementation of the passes under autocast, or None for the models'
    own. On a CPU under bf16 autocast: "eager" (plain matmuls). There torch's SDPA kernel
    runs bf16 attention, backward included, about 2x slower: one layer of the default
    run's update (16 x 48 queries over 98 keys, 9 heads over 3) took 38 ms forward and
    backward through SDPA against 18.5 ms eager; in fp32 SDPA is the faster, 15.7 vs
    22.3 ms (AMD EPYC with avx512_bf16, one thread)."""
    return "eager" if device.type == "cpu" and cfg.trainer.mixed_precision == "bf16" else None


@contextlib.contextmanager
def attention_implementation(roots: Iterable[Any], implementation: str | None) -> Iterator[None]:
    """Within the block every transformers model inside ``roots`` (modules or None) attends
    with ``implementation``; after it, as before. None: nothing changes. Switching is a
    config attribute (under a millisecond), so held-out evaluation outside the block keeps
    the model's own kernel."""
    if implementation is None:
        yield
        return
    from transformers import PreTrainedModel

    models = {id(m): m for root in roots if isinstance(root, torch.nn.Module)
              for m in root.modules() if isinstance(m, PreTrainedModel)}
    before = [(m, m.config._attn_implementation) for m in models.values()]
    try:
        for model, _ in before:
            model.set_attn_implementation(implementation)
        yield
    finally:
        for model, own in reversed(before):
            model.set_attn_implementation(own)


def describe_precision(cfg: Any, weights_dtype: torch.dtype, attention: str | None = None) -> dict[str, Any]:
    """``weights``: the training weights' dtype; ``training``: the compute of the training
    passes (and their attention kernel where :func:`autocast_attention` picks one);
    ``sampling``: what the rollouts come from; ``correction``: how the sampler's log-probs
    are corrected for (only when they differ from the trainer's)."""
    weights = str(weights_dtype).removeprefix("torch.")
    mixed = cfg.trainer.mixed_precision
    training = f"{mixed} autocast over {weights} weights" if mixed != "no" else weights
    if attention is not None:
        training += f", {attention} attention"
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
    flags = cpu_bf16_flags()
    return {"weights": weights, "training": training, "sampling": sampling, "correction": correction,
            "cpu_bf16": flags, "auto": _auto_choice(cfg, flags)}


def _auto_choice(cfg: Any, flags: list[str]) -> str | None:
    """What precision=auto chose and why, when the run was launched with it (Hydra's
    choice of the precision group); None otherwise."""
    from grpo_lab.config.auto_precision import auto_choice, gpu_bf16_supported
    from grpo_lab.tracking.run_identity import current_hydra_job

    if current_hydra_job().choices.get("precision") != "auto":
        return None
    return auto_choice(cfg, flags, gpu_bf16_supported())[1]


def precision_line(described: dict[str, Any]) -> str:
    cpu = ", ".join(described["cpu_bf16"]) or "none"
    chosen = f"precision=auto chose {described['auto']}; " if described.get("auto") else ""
    return (f"precision: {chosen}training {described['training']}; sampling from {described['sampling']}; "
            f"sampler correction {described['correction']}; CPU bf16 units: {cpu}")


# Significant bits (the implicit one included) of the 16-bit floats a model can be trained in.
SIGNIFICAND_BITS = {torch.bfloat16: 8, torch.float16: 11}


def lost_update_warning(trainable: Iterable[torch.nn.Parameter], lr: float) -> str | None:
    """A warning when trained weights are 16-bit floats, None otherwise. Rounding to the
    nearest 16-bit value drops any change below half a unit in the last place: a step of
    lr leaves every weight of magnitude >= 2**(bits + 1) * lr where it was (bf16: 512 * lr),
    so at RL's learning rates almost nothing moves. Measured on the embedded model, one
    AdamW step changed 0.4% of bf16 weights at lr 1e-6 (4% at 2e-5), all of fp32's.
    Optimizers step by about lr (Adam: at most about lr), hence the bound."""
    dtypes = {p.dtype for p in trainable if p.requires_grad and p.dtype in SIGNIFICAND_BITS}
    if not dtypes:
        return None
    coarsest = min(dtypes, key=SIGNIFICAND_BITS.__getitem__)
    name = str(coarsest).removeprefix("torch.")
    frozen_above = 2 ** (SIGNIFICAND_BITS[coarsest] + 1) * lr
    return (f"trainer.dtype={name} trains {name} weights in place: a step of lr={lr:g} is rounded away for every "
            f"weight of magnitude >= {frozen_above:.2g}, so most weights never change; trainer.dtype=float32 keeps "
            "float32 master weights (precision=auto adds bf16 autocast on a GPU)")
