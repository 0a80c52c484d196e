"""Fully sharded data parallelism (``trainer.distributed=fsdp``) with PyTorch's FSDP2
(``torch.distributed.fsdp.fully_shard``): each process keeps 1/N of every parameter,
gradient and optimizer state, gathered layer by layer for each forward and backward.

What the trainer needs from it, as small functions:

- :func:`shard_model`: one FSDP unit per transformer block (the model's own
  ``_no_split_modules``) plus the model itself as the root unit;
- :func:`full_weights`: every unit gathered once and kept whole for a while: sampling
  (hundreds of decoding forwards that would otherwise gather each layer every token) and
  held-out evaluation (run by the main process alone, so it must need no collective);
- :func:`gradient_sync`: gradients reduce-scattered only after the last micro-batch;
- :func:`full_module_state` and the optimizer helpers: checkpoints. Weights are written
  whole (``*.safetensors``, as a one-process run writes them; the rollout already holds
  them whole, so this costs no memory beyond sampling's); optimizer states are written
  sharded with ``torch.distributed.checkpoint`` (each process its own shard), and load at
  any world size, one process included (DCP reshards on load).

The loss needs nothing here: FSDP averages gradients over processes as DDP does, so the
globally weighted token loss (engine/update.py) stays the one-process loss.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import torch
from torch.distributed.fsdp import FSDPModule, fully_shard

# trainer.distributed: replicated (DDP) or sharded (FSDP2) over processes.
STRATEGIES = ("ddp", "fsdp")

__all__ = [
    "STRATEGIES",
    "full_module_state",
    "full_weights",
    "load_full_state",
    "gradient_sync",
    "load_optimizer_states",
    "local_bytes",
    "save_optimizer_states",
    "shard_model",
    "units",
]


def _block_classes(module: torch.nn.Module) -> set[str]:
    """The class names of the model's transformer blocks (transformers lists them in
    ``_no_split_modules``, the unit accelerate and TRL shard by)."""
    names: set[str] = set()
    for sub in module.modules():
        names.update(getattr(sub, "_no_split_modules", None) or [])
    return names


def shard_model(module: torch.nn.Module, frozen: bool = False) -> torch.nn.Module:
    """Shards ``module`` in place: one unit per transformer block, the rest (embeddings,
    final norm, LM or value head) in the root unit. A module holding no parameters of its
    own (the trainer's policy + value head pair) has each child sharded as its own root,
    so each model can also run alone (generation, the no-grad passes). ``frozen``: a model
    that never trains (the reference), whose root is freed after each forward too (FSDP
    otherwise keeps a root whole after forward, for the backward that follows)."""
    if isinstance(module, FSDPModule):
        return module
    a_model = getattr(module, "_no_split_modules", None) is not None or any(True for _ in module.parameters(recurse=False))
    if not a_model:
        for child in module.children():
            if any(True for _ in child.parameters()):
                shard_model(child, frozen)
        return module
    blocks = _block_classes(module)
    for sub in module.modules():
        if sub is not module and type(sub).__name__ in blocks:
            fully_shard(sub)
    fully_shard(module, reshard_after_forward=True if frozen else None)
    return module


def units(module: torch.nn.Module) -> tuple[list[FSDPModule], list[FSDPModule]]:
    """The FSDP units inside ``module``: (roots, the units inside a root)."""
    found = [m for m in module.modules() if isinstance(m, FSDPModule)]
    inner = {id(s) for m in found for s in m.modules() if s is not m and isinstance(s, FSDPModule)}
    return [m for m in found if id(m) not in inner], [m for m in found if id(m) in inner]


@contextlib.contextmanager
def full_weights(module: torch.nn.Module) -> Iterator[None]:
    """Every process gathers ``module``'s parameters whole and keeps them so until the
    context ends: forwards inside it (any number, on any process) need no collective.
    Every process must enter it. The roots are gathered first, so they initialize FSDP's
    state as roots even when the first forward of a run comes later."""
    roots, inner = units(module)
    for unit in inner:  # roots keep their weights after forward already
        unit.set_reshard_after_forward(False, recurse=False)
    for unit in roots + inner:
        unit.unshard()
    try:
        yield
    finally:
        for unit in roots + inner:
            unit.reshard()
        for unit in inner:
            unit.set_reshard_after_forward(True, recurse=False)


@contextlib.contextmanager
def gradient_sync(module: torch.nn.Module, sync: bool) -> Iterator[None]:
    """A micro-batch's backward with (``sync``) or without the reduce-scatter of the
    gradients; without it they accumulate whole until the last micro-batch."""
    roots, _ = units(module)
    for unit in roots:
        unit.set_requires_gradient_sync(sync)
    try:
        yield
    finally:
        for unit in roots:
            unit.set_requires_gradient_sync(True)


def full_module_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``module``'s whole state dict on CPU, gathered from the shards (every process must
    call it). A parameter shared under two names (tied embeddings) is kept under one,
    as safetensors' ``save_model`` keeps it; loading fills the other."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    shared = _shared_names(module)
    return {k: v.contiguous() for k, v in state.items() if k not in shared}


def load_full_state(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    """A whole state dict (held by every process, as :func:`full_module_state` wrote it)
    into a sharded ``module``, each process keeping its shard. Returns (missing,
    unexpected) names, a shared parameter's second name not counted as missing."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    shared = _shared_names(module)
    result = set_model_state_dict(module, state, options=StateDictOptions(full_state_dict=True, strict=False))
    return [k for k in result.missing_keys if k not in shared], list(result.unexpected_keys)


def _shared_names(module: torch.nn.Module) -> set[str]:
    """Names of a parameter that another name also holds, all but the one kept (the first
    in sorted order, the name safetensors' ``save_model`` keeps: the files match a
    one-process run's)."""
    names: dict[int, list[str]] = {}
    for name, param in module.named_parameters(remove_duplicate=False):
        names.setdefault(id(param), []).append(name)
    return {name for group in names.values() for name in sorted(group)[1:]}


def _torch_optimizer(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    # accelerate wraps optimizers; the state-dict API wants the torch one.
    return getattr(optimizer, "optimizer", optimizer)


def save_optimizer_states(optimizers: dict[str, tuple[torch.nn.Module, torch.optim.Optimizer]], folder: Path) -> None:
    """Each optimizer's state (keyed by parameter name) written with
    ``torch.distributed.checkpoint``: every process writes its own shard into ``folder``."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    state = {name: get_optimizer_state_dict(module, _torch_optimizer(opt)) for name, (module, opt) in optimizers.items()}
    dcp.save(state, checkpoint_id=str(folder))


def load_optimizer_states(optimizers: dict[str, tuple[torch.nn.Module, torch.optim.Optimizer]], folder: Path) -> None:
    """The states :func:`save_optimizer_states` wrote, into optimizers over sharded or
    whole models at any world size (DCP reshards what it reads)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

    state = {name: get_optimizer_state_dict(module, _torch_optimizer(opt)) for name, (module, opt) in optimizers.items()}
    dcp.load(state, checkpoint_id=str(folder))
    for name, (module, opt) in optimizers.items():
        set_optimizer_state_dict(module, _torch_optimizer(opt), state[name])


def local_bytes(tensors: Iterator[torch.Tensor]) -> int:
    """Bytes this process holds of ``tensors`` (its shard of a sharded one)."""
    from torch.distributed.tensor import DTensor

    total = 0
    for t in tensors:
        local = t.to_local() if isinstance(t, DTensor) else t
        total += local.numel() * local.element_size()
    return total
