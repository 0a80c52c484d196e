"""A rollout copy of the policy in another dtype (``rollout.dtype``), as a rollout engine
holds its own: made once, re-cast from the training weights after every update.

Only parameters are cast; buffers (rotary frequencies) stay as the policy has them, as
when transformers loads a model in bf16. The copy never trains: no gradients, eval mode.
"""

from __future__ import annotations

import copy

import torch

from grpo_lab.rollout.packed_linear import pack_linears, packing_available

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


class RolloutCopy:
    """What samples for a rollout backend: the training model itself (``dtype`` None),
    or a copy of it in ``dtype`` made at the first rollout and re-cast after every
    update (:meth:`sync`). Shared by single-turn and multi-turn sampling."""

    def __init__(self, dtype_name: str | None, device: torch.device):
        self.dtype = ROLLOUT_COPY_DTYPES[dtype_name] if dtype_name else None
        self.device = device
        self.model: torch.nn.Module | None = None  # made at the first rollout
        self.packed = False  # the copy's bf16 linears run on weights packed once per sync (packed_linear.py)

    def sampler(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model that samples: ``model``, or its copy in ``dtype``."""
        if self.dtype is None:
            return model
        if self.model is None:
            # On a CPU, 16-bit decoding is slower through torch's SDPA kernel than through
            # plain matmuls: one rollout of the default run took 7.0 s with sdpa and 5.0 s
            # with eager attention (bf16 copy, one thread, AMD EPYC with avx512_bf16).
            low_precision_cpu = self.device.type == "cpu" and self.dtype != torch.float32
            self.model = make_rollout_copy(model, self.dtype, attention="eager" if low_precision_cpu else None)
            self.packed = packing_available(self.device, self.dtype)
            if self.packed:
                pack_linears(self.model)
        return self.model

    def sync(self, model: torch.nn.Module) -> None:
        """After a policy update: the copy (if made) is re-cast from ``model``'s weights."""
        if self.model is not None:
            refresh_rollout_copy(self.model, model)
            if self.packed:  # the packed weights are the old ones until packed again
                pack_linears(self.model)
