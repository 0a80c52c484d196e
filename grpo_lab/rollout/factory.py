"""Picks the generation backend named by ``rollout.backend``."""

from __future__ import annotations

from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from grpo_lab.errors import ConfigError
from grpo_lab.rollout.hf import HFGenerateBackend

BACKENDS = ("hf", "vllm")


def build_rollout_backend(cfg: Any, tokenizer: PreTrainedTokenizerBase, device: torch.device):
    """A backend with ``generate(model, prompts, columns, group_size, row_seeds)``,
    ``sync_weights(model)`` (called after every policy update) and
    ``samples_off_policy`` (True: its sampling log-probs are not the training
    policy's, so the trainer recomputes them before the update)."""
    if cfg.backend == "hf":
        return HFGenerateBackend(cfg, tokenizer, device)
    if cfg.backend == "vllm":
        # Imported here: its module is light, but keeps the GPU-only path out of CPU runs.
        from grpo_lab.rollout.vllm_backend import VLLMBackend

        return VLLMBackend(cfg, tokenizer, device)
    raise ConfigError(f"rollout.backend={cfg.backend!r}; allowed: {', '.join(BACKENDS)}")
