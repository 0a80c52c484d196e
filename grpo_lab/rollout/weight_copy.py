"""A rollout copy of the policy in another dtype (``rollout.dtype``), as a rollout engine
holds its own: made once, re-cast from the training weights after every update.

Only parameters are cast; buffers (rotary frequencies) stay as the policy has them, as
when transformers loads a model in bf16. The copy never trains: no gradients, eval mode.
"""

from __future__ import annotations

import copy

import torch

ROLLOUT_COPY_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def make_rollout_copy(model: torch.nn.Module, dtype: torch.dtype, attention: str | None = None) -> torch.nn.Module:
    """A detached copy of ``model`` with its parameters in ``dtype``; ``attention``: the
    copy's own attention implementation (transformers' name), None keeps the model's."""
    clone = copy.deepcopy(model)
    for param in clone.parameters():
        param.requires_grad_(False)
        param.data = param.data.to(dtype)
    if attention is not None and hasattr(clone, "set_attn_implementation"):
        clone.set_attn_implementation(attention)
    return clone.eval()


@torch.no_grad()
def refresh_rollout_copy(clone: torch.nn.Module, model: torch.nn.Module) -> None:
    """Casts ``model``'s trainable parameters into ``clone`` (frozen ones never change:
    with LoRA only the adapters are copied)."""
    targets = dict(clone.named_parameters())
    for name, param in model.named_parameters():
        if param.requires_grad:
            targets[name].copy_(param)
