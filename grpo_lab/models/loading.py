"""One code path for every model source: resolve to a hub id or local dir, then load."""

from __future__ import annotations

from grpo_lab.errors import ConfigError

from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from grpo_lab.models.embedded import materialize_embedded

EMBEDDED_PREFIX = "embedded:"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_model_path(path: str, cache_dir: str) -> str:
    """``embedded:<name>`` -> its converted local dir; anything else is returned as is."""
    if path.startswith(EMBEDDED_PREFIX):
        return str(materialize_embedded(path[len(EMBEDDED_PREFIX):], cache_dir))
    return path


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return DTYPES[name]
    except KeyError:
        raise ConfigError(
            f"trainer.dtype={name!r}; allowed: auto, {', '.join(DTYPES)}"
        ) from None


def load_policy_and_tokenizer(
    cfg: Any, device: torch.device, dtype: torch.dtype
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """The policy (trainable, on ``device``; LoRA-wrapped when ``model.lora.enabled``)
    and its tokenizer (left padding)."""
    path = resolve_model_path(cfg.path, cfg.cache_dir)
    common = {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **common)
        if cfg.random_init:
            config = AutoConfig.from_pretrained(path, **common, **dict(cfg.config_overrides))
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **common)
    except OSError as err:
        raise ConfigError(
            f"model.path={cfg.path!r} is not a local model directory nor a reachable hub id "
            f"({str(err).splitlines()[0]})"
        ) from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.use_cache = True
    model = model.to(device)
    if cfg.lora.enabled:
        from grpo_lab.models.lora import apply_lora

        model = apply_lora(model, cfg.lora)
    return model, tokenizer
