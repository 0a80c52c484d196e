"""Whether one step's sampling can fit in memory, checked once the model is loaded.

The ``hf`` backend samples every completion of a step at once (``trainer.batch_size x
algorithm.group_size`` rows), so its memory grows with the group, unlike the training
passes, which ``trainer.micro_batch_size`` bounds. A group far too large for the machine
used to be ended by the OOM killer with no message; now the run is refused in one line
before the first step when a lower bound of what sampling needs exceeds the memory that
is free:

- the KV cache of every completion at ``rollout.max_new_tokens`` tokens (the prompt's
  tokens left out, so the figure is a lower bound): per token, keys and values of every
  layer, ``2 x layers x kv_heads x head_dim`` numbers;
- one step's next-token logits of every completion in float32 (``generate`` copies them
  to float32 before the sampling processors).

Nothing is refused when the model's config does not name its shape (no estimate is
made), nor for ``rollout=vllm``, whose engine schedules the rows within its own memory
share.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from grpo_lab.errors import ConfigError

_GIB = 2.0**30


def kv_bytes_per_token(model_config: Any, element_size: int) -> int | None:
    """Bytes of KV cache per token of one sequence; None when the config does not say."""
    text = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
    layers = getattr(text, "num_hidden_layers", None)
    heads = getattr(text, "num_attention_heads", None)
    if not isinstance(layers, int) or not isinstance(heads, int) or heads < 1:
        return None
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None)
    if not isinstance(head_dim, int):
        hidden = getattr(text, "hidden_size", None)
        if not isinstance(hidden, int):
            return None
        head_dim = hidden // heads
    return 2 * layers * kv_heads * head_dim * element_size


def sampling_bytes(model_config: Any, element_size: int, completions: int, new_tokens: int) -> int | None:
    """A lower bound of the memory that sampling ``completions`` rows of ``new_tokens``
    tokens takes (module docstring); None when the model's shape is unknown."""
    per_token = kv_bytes_per_token(model_config, element_size)
    vocab = getattr(model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config,
                    "vocab_size", None)
    if per_token is None or not isinstance(vocab, int):
        return None
    return completions * new_tokens * per_token + completions * vocab * 4


def available_bytes(device: torch.device) -> int | None:
    """Memory free for new tensors on ``device``: free GPU memory plus what torch's cache
    holds unused; on CPU, the kernel's MemAvailable. None when unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_sampling_fits(model: torch.nn.Module, cfg: Any, local_prompts: int, device: torch.device,
                        available: int | None = None) -> None:
    """Refuses (ConfigError) a step whose sampling cannot fit: see the module docstring.
    ``local_prompts``: this process's prompts of a step; ``available``: the free bytes
    (measured when None)."""
    if cfg.rollout.backend != "hf":
        return
    params = next(model.parameters(), None)
    element = params.element_size() if params is not None else 4
    if cfg.trainer.mixed_precision != "no":  # autocast may keep the cache in 16 bits
        element = min(element, 2)
    completions = local_prompts * cfg.algorithm.group_size
    config = getattr(model, "config", None)
    needed = None if config is None else sampling_bytes(config, element, completions, cfg.rollout.max_new_tokens)
    if needed is None:
        return
    free = available_bytes(device) if available is None else available
    if free is None or needed <= free:
        return
    raise ConfigError(
        f"algorithm.group_size={cfg.algorithm.group_size}: {completions} completions a step "
        f"(trainer.batch_size x algorithm.group_size) of up to {cfg.rollout.max_new_tokens} tokens need at least "
        f"{needed / _GIB:.1f} GiB to sample (KV cache and logits), more than the {free / _GIB:.1f} GiB free on "
        f"{device}; lower algorithm.group_size, trainer.batch_size or rollout.max_new_tokens"
    )
