"""``precision=auto`` (the default): the bf16 path where it was measured faster without
losing accuracy, fp32 everywhere else.

conf/precision/auto.yaml marks ``rollout.dtype`` and ``trainer.mixed_precision`` as
``auto``; :func:`resolve_auto_precision` replaces the marks with precision=bf16's or
precision=fp32's values before the config is checked, recorded or compared with a saved
run, so every record names what ran. The bf16 path (a bf16 rollout copy with truncated
importance sampling, bf16 autocast over fp32 master weights) is chosen where it was
measured:

- on a CPU with bf16 units (``avx512_bf16`` or ``amx_bf16``): the default run's step in
  0.56x fp32's time (bench/precision.py, AMD EPYC with avx512_bf16), and held-out accuracy
  non-inferior (experiments/results/precision_cpu: bf16 - fp32 +4.75 points, 95% +1.19 to
  +8.32, 9 seeds, answers-v3, rescored 2026-12-05);
- with full fine-tuning of fp32 (or ``auto``) weights, single-turn rollouts from the HF
  backend and no fsdp sharding, the setting of those measurements (multi-turn episodes
  can sample from a copy, but its accuracy there was not measured; fsdp does not take a
  rollout copy; a rollout engine has its own dtype).

On a GPU with bf16 (device ``cuda``, or ``auto`` where CUDA is available) and float32 (or
``auto``) weights: bf16 autocast over fp32 master weights, sampling from the training
model, as verl, OpenRLHF and TRL's ``bf16=True`` over fp32 weights train; the weights
stay float32 because bf16 weights lose most updates at RL's learning rates
(trainer/precision.py, ``lost_update_warning``). The bf16 rollout copy was not measured
on a GPU, so auto does not take it there.

Anywhere else (a CPU without bf16 units, LoRA, ...) the marks become fp32's values: no
rollout copy, no autocast, what the runs did before ``auto`` existed.
"""

from __future__ import annotations

from typing import Any

from grpo_lab.tracking.manifest import cpu_bf16_flags

AUTO = "auto"
BF16_PATH = {"rollout.dtype": "bfloat16", "trainer.mixed_precision": "bf16"}
FP32 = {"rollout.dtype": None, "trainer.mixed_precision": "no"}
GPU_AUTOCAST = {"rollout.dtype": None, "trainer.mixed_precision": "bf16"}


def _runs_on_cpu(device: str) -> bool:
    if device == "cpu":
        return True
    if device != AUTO:
        return False
    import torch

    return not torch.cuda.is_available()


def _runs_on_cuda(device: str) -> bool:
    return device.startswith("cuda") or (device == AUTO and not _runs_on_cpu(device))


def gpu_bf16_supported() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def bf16_excluded_by(cfg: Any) -> str | None:
    """Why the config rules the bf16 path out (a phrase), or None when it allows it."""
    trainer, rollout = cfg.trainer, cfg.rollout
    reasons = {
        f"trainer.device={trainer.device}": not _runs_on_cpu(str(trainer.device)),
        f"trainer.dtype={trainer.dtype}": trainer.dtype not in (AUTO, "float32"),
        f"rollout.backend={rollout.backend}": rollout.backend != "hf",
        f"rollout.environment={rollout.environment}": rollout.environment is not None,
        "trainer.distributed=fsdp": trainer.distributed == "fsdp",
        "model.lora.enabled=true": bool(cfg.model.lora.enabled),
    }
    return next((reason for reason, present in reasons.items() if present), None)


def auto_choice(cfg: Any, cpu_flags: list[str], gpu_bf16: bool = False) -> tuple[dict[str, Any], str]:
    """(the values for the marked keys, why): on a GPU with bf16 (``gpu_bf16``), bf16
    autocast over float32 weights; on a CPU, the bf16 path when it has bf16 units
    (``cpu_flags``) and the config allows it; else fp32's."""
    trainer = cfg.trainer
    if _runs_on_cuda(str(trainer.device)):
        if trainer.dtype not in (AUTO, "float32"):
            return FP32, f"fp32 (trainer.dtype={trainer.dtype})"
        if not gpu_bf16:
            return FP32, "fp32 (a GPU without bf16)"
        return GPU_AUTOCAST, "bf16 autocast over float32 weights (GPU)"
    excluded = bf16_excluded_by(cfg)
    if excluded is not None:
        return FP32, f"fp32 ({excluded})"
    if not cpu_flags:
        return FP32, "fp32 (no CPU bf16 units)"
    return BF16_PATH, f"bf16 (CPU bf16 units: {', '.join(cpu_flags)})"


def resolve_auto_precision(cfg: Any) -> str | None:
    """Replaces every ``auto`` mark of ``rollout.dtype`` and ``trainer.mixed_precision``
    in place; returns what was chosen and why (None when nothing was marked). Keys set
    explicitly keep their values."""
    marked = [key for key in BF16_PATH if _get(cfg, key) == AUTO]
    if not marked:
        return None
    values, why = auto_choice(cfg, cpu_bf16_flags(), gpu_bf16_supported())
    for key in marked:
        section, name = key.split(".")
        cfg[section][name] = values[key]
    return why


def _get(cfg: Any, key: str) -> Any:
    section, name = key.split(".")
    return cfg[section][name]
