"""What a generation backend is, and the backends by name (``rollout.backend``)."""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import torch

from grpo_lab.registry import Registry
from grpo_lab.rollout.batch import RolloutBatch


@runtime_checkable
class RolloutBackend(Protocol):
    # True: the backend's sampling log-probs are not the training policy's (another
    # engine, other kernels), so the trainer recomputes them before the update.
    samples_off_policy: bool

    def generate(self, model: torch.nn.Module, prompts: Sequence[Any], columns: dict[str, list[Any]],
                 group_size: int, row_seeds: Sequence[int] | None = None) -> RolloutBatch:
        """``group_size`` samples of each prompt, groups contiguous; ``row_seeds``: one
        seed per sample, so each sample is a function of its seed alone."""
        ...

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Called after every policy update (an engine with its own copy reloads it)."""
        ...


# Built-ins by import path: the config check lists them without importing transformers
# or vLLM. Each is a class built as cls(rollout_cfg, tokenizer, device).
ROLLOUT_BACKENDS: Registry[Any] = Registry("rollout backend", "rollout.backend")
ROLLOUT_BACKENDS.add_lazy("hf", "grpo_lab.rollout.hf:HFGenerateBackend")
ROLLOUT_BACKENDS.add_lazy("vllm", "grpo_lab.rollout.vllm_backend:VLLMBackend")


def build_rollout_backend(cfg: Any, tokenizer: Any, device: torch.device) -> RolloutBackend:
    """The backend named by ``cfg.backend`` (``rollout`` config); with
    ``rollout.environment``, multi-turn episodes (grpo_lab/rollout/multi_turn.py)."""
    if cfg.get("environment"):
        from grpo_lab.rollout.multi_turn import MultiTurnRollout

        return MultiTurnRollout(cfg, tokenizer, device)
    return ROLLOUT_BACKENDS.get_entry(cfg.backend)(cfg, tokenizer, device)
