"""Where run records go: local files always; other trackers plug in through Tracker."""

from grpo_lab.tracking.base import Tracker, Trackers
from grpo_lab.tracking.local import LocalTracker

__all__ = ["LocalTracker", "Tracker", "Trackers"]
