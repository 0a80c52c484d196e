"""Model inputs shared by rollouts and training passes: positions and KV caches."""

from __future__ import annotations

import inspect

import torch


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding, as ``generate`` assigns them."""
    return (attention_mask.cumsum(dim=1) - 1).clamp(min=0)


def cache_kwargs(model: torch.nn.Module, cache: object) -> dict[str, object]:
    # The KV-cache argument was renamed from `past_key_values` to `cache` in transformers 5;
    # a peft wrapper forwards **kwargs, so ask the model it wraps.
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    name = "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"
    return {name: cache}


def output_cache(output: object) -> object:
    """The KV cache a forward pass returned (``cache`` in transformers 5, else ``past_key_values``)."""
    return output.cache if "cache" in output else output.past_key_values
