"""Optimizer and learning-rate schedule from ``trainer`` config."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch

from grpo_lab.errors import ConfigError
from grpo_lab.registry import Registry

# fn(trainable params, trainer cfg, lr) -> optimizer.
OptimizerFn = Callable[[list, Any, float], torch.optim.Optimizer]
OPTIMIZERS: Registry[OptimizerFn] = Registry("optimizer", "trainer.optimizer")
SCHEDULES = ("constant", "linear", "cosine")


def _fused(params: list[torch.nn.Parameter]) -> bool:
    # The fused kernel (one pass over all parameters, CPU and CUDA) instead of a Python
    # loop over tensors; same update, several times less optimizer time.
    return all(p.dtype in (torch.float32, torch.float16, torch.bfloat16) for p in params)


@OPTIMIZERS.register("adamw")
def _adamw(params: list, cfg: Any, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, betas=tuple(cfg.adam_betas),
                             weight_decay=cfg.weight_decay, fused=_fused(params))


@OPTIMIZERS.register("adam")
def _adam(params: list, cfg: Any, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, betas=tuple(cfg.adam_betas),
                            weight_decay=cfg.weight_decay, fused=_fused(params))


@OPTIMIZERS.register("sgd")
def _sgd(params: list, cfg: Any, lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, weight_decay=cfg.weight_decay)


def build_optimizer(
    params: Iterable[torch.nn.Parameter], cfg: Any, lr: float | None = None
) -> torch.optim.Optimizer:
    """``cfg.optimizer`` over ``params``; ``lr`` overrides ``cfg.lr`` (e.g. the critic's)."""
    build = OPTIMIZERS.get_entry(cfg.optimizer)
    params = [p for p in params if p.requires_grad]
    return build(params, cfg, cfg.lr if lr is None else lr)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Any, total_updates: int):
    from transformers import (
        get_scheduler,  # heavy; the config check imports this module
    )

    if cfg.lr_schedule not in SCHEDULES:
        raise ConfigError(f"trainer.lr_schedule={cfg.lr_schedule!r}; allowed: {', '.join(SCHEDULES)}")
    name = "constant_with_warmup" if cfg.lr_schedule == "constant" else cfg.lr_schedule
    return get_scheduler(
        name, optimizer, num_warmup_steps=cfg.warmup_steps, num_training_steps=total_updates
    )
