"""Where run records go: local files always; other trackers plug in through Tracker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grpo_lab.tracking.base import Tracker, Trackers
from grpo_lab.tracking.local import LocalTracker


def build_trackers(cfg: Any, output_dir: Path) -> Trackers:
    """The trackers a run writes to, from the ``logger`` config group."""
    return Trackers([LocalTracker(output_dir)])


__all__ = ["LocalTracker", "Tracker", "Trackers", "build_trackers"]
