"""The seam every tracker (local files, W&B, ...) implements."""

from __future__ import annotations

from typing import Any, Protocol, Sequence


class Tracker(Protocol):
    def log_config(self, config: dict[str, Any]) -> None: ...

    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...

    def log_samples(self, samples: Sequence[dict[str, Any]], step: int) -> None: ...

    def finish(self, summary: dict[str, Any], failed: bool = False) -> None: ...


class Trackers:
    """Fans every call out to several trackers."""

    def __init__(self, trackers: Sequence[Tracker]):
        self.trackers = list(trackers)

    def log_config(self, config: dict[str, Any]) -> None:
        for t in self.trackers:
            t.log_config(config)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for t in self.trackers:
            t.log_metrics(metrics, step)

    def log_samples(self, samples: Sequence[dict[str, Any]], step: int) -> None:
        for t in self.trackers:
            t.log_samples(samples, step)

    def finish(self, summary: dict[str, Any], failed: bool = False) -> None:
        for t in self.trackers:
            t.finish(summary, failed)
