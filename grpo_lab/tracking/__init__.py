"""Where run records go: local files always; W&B unless ``logger.wandb.mode=disabled``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grpo_lab.tracking.base import Tracker, Trackers
from grpo_lab.tracking.local import LocalTracker
from grpo_lab.tracking.wandb_tracker import WandbTracker, resolve_mode


def build_trackers(cfg: Any, output_dir: Path) -> Trackers:
    """The trackers a run writes to, from the ``logger`` config group.

    The local files come first, so a W&B failure can never cost the local record.
    """
    trackers: list[Tracker] = [LocalTracker(output_dir)]
    wandb_cfg = cfg.logger.get("wandb")
    if wandb_cfg is not None and resolve_mode(wandb_cfg.mode) != "disabled":
        trackers.append(WandbTracker(cfg, output_dir))
    return Trackers(trackers)


__all__ = ["LocalTracker", "Tracker", "Trackers", "WandbTracker", "build_trackers"]
