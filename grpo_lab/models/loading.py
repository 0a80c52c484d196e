"""One code path for every model source: resolve to a hub id or local dir, then load."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

from grpo_lab.errors import ConfigError, first_line

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from grpo_lab.models.embedded import materialize_embedded

EMBEDDED_PREFIX = "embedded:"
# A folder with none of these has no tokenizer transformers can load (fast, or slow with
# its vocabulary).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
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


def weights_dtype(trainer_cfg: Any, model_cfg: Any, device: torch.device) -> torch.dtype:
    """The dtype a run keeps its policy's weights in, and scores them in: ``trainer.dtype``,
    whose ``auto`` is float32 (in 16 bits most updates at RL's learning rates round away,
    see precision.lost_update_warning; autocast computes in bf16 over them) except under
    LoRA, whose base is frozen (peft keeps the adapters float32): bf16 on a GPU with it."""
    name = trainer_cfg.dtype
    if name == "auto" and not model_cfg.lora.enabled:
        name = "float32"
    return resolve_dtype(name, device)


@contextmanager
def model_files_error(path: str, what: str) -> Iterator[None]:
    """A model that cannot be loaded as one line naming ``model.path``: a missing folder or
    hub id (OSError), a folder without a tokenizer (transformers' ValueError), torn or
    corrupt weights (safetensors' and torch's own errors)."""
    try:
        yield
    except OSError as err:
        raise ConfigError(
            f"model.path={path!r} is not a local model directory nor a reachable hub id "
            f"({first_line(err)})"
        ) from None
    except Exception as err:  # noqa: BLE001 - each file format raises its own error type
        raise ConfigError(f"model.path={path!r}: its {what} could not be loaded ({first_line(err)})") from None


def load_policy_and_tokenizer(
    cfg: Any, device: torch.device, dtype: torch.dtype, checkpoint_generation_config: bool = False
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """The policy (trainable, on ``device``; LoRA-wrapped when ``model.lora.enabled``)
    and its tokenizer (left padding). The checkpoint's generation settings are dropped
    (``keep_token_ids_only``) unless ``checkpoint_generation_config`` (an export keeps them)."""
    path = resolve_model_path(cfg.path, cfg.cache_dir)
    common = {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code}
    if os.path.isdir(path) and not any(os.path.isfile(os.path.join(path, f)) for f in TOKENIZER_FILES):
        raise ConfigError(f"model.path={cfg.path!r} has no tokenizer: none of {', '.join(TOKENIZER_FILES)} in it")
    with model_files_error(cfg.path, "tokenizer"):
        tokenizer = AutoTokenizer.from_pretrained(path, **common)
    with model_files_error(cfg.path, "config and weights"):
        if cfg.random_init:
            config = AutoConfig.from_pretrained(path, **common, **dict(cfg.config_overrides))
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **common)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.use_cache = True
    if not checkpoint_generation_config:
        keep_token_ids_only(model, cfg.path)
    model = model.to(device)
    if cfg.lora.enabled:
        from grpo_lab.models.lora import apply_lora

        model = apply_lora(model, cfg.lora)
    return model, tokenizer


# The generation settings of a checkpoint that only name tokens; kept.
GENERATION_TOKEN_IDS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")
# Fields of GenerationConfig that change nothing of what is generated.
GENERATION_BOOKKEEPING = ("transformers_version", "_from_model_config", "use_cache", "output_attentions",
                          "output_hidden_states")


def keep_token_ids_only(model: torch.nn.Module, path: str) -> None:
    """Replaces the checkpoint's ``generation_config.json`` by its token ids alone.

    Its other settings (instruct checkpoints ship a ``repetition_penalty``, ``top_p``,
    ``top_k``, ``temperature``) would apply to every ``generate`` call, a repetition
    penalty even to greedy decoding: rollouts would be drawn from another distribution
    than the policy whose log-probs the loss, the ratio and the KL use, and "greedy"
    held-out accuracy would be penalised decoding. Rollouts and evaluation set what they
    use (``rollout.*``, ``eval.*``); what is dropped is said once."""
    from transformers import GenerationConfig

    from grpo_lab.console import say

    original = getattr(model, "generation_config", None)
    if original is None:
        return
    dropped = {k: v for k, v in original.to_diff_dict().items()
               if k not in GENERATION_TOKEN_IDS and k not in GENERATION_BOOKKEEPING}
    model.generation_config = GenerationConfig(**{k: getattr(original, k, None) for k in GENERATION_TOKEN_IDS})
    if dropped:
        settings = ", ".join(f"{k}={v!r}" for k, v in sorted(dropped.items()))
        say(f"model.path={path!r}: its generation_config sets {settings}; not applied (rollouts and held-out "
            "evaluation decode with rollout.* and eval.* only)")
