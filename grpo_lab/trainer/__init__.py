"""The shared training loop: rollout -> reward -> advantage -> policy update -> records.

``Trainer`` and ``train`` are imported on first use, so that importing a light module of
this package (checkpoint files, signals, sweep jobs) does not load the whole loop.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Trainer", "train"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from grpo_lab.trainer import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'grpo_lab.trainer' has no attribute {name!r}")
