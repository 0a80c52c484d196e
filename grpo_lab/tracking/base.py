"""The seam every tracker (local files, W&B, ...) implements."""

from __future__ import annotations

from typing import Any, Protocol, Sequence


class Tracker(Protocol):
    def log_config(self, config: dict[str, Any], manifest: dict[str, Any] | None = None) -> None:
        """The resolved config, and what produced the run (tracking/manifest.py)."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...

    def log_samples(self, samples: Sequence[dict[str, Any]], step: int) -> None: ...

    # Optional: one record per held-out problem of an evaluation at ``step``
    # (grpo_lab/eval/evaluator.py); trackers without it skip them.
    # def log_problems(self, problems: Sequence[dict[str, Any]], step: int) -> None: ...

    def finish(self, summary: dict[str, Any], failed: bool = False) -> None: ...


class Trackers:
    """Fans every call out to several trackers."""

    def __init__(self, trackers: Sequence[Tracker]):
        self.trackers = list(trackers)

    def log_config(self, config: dict[str, Any], manifest: dict[str, Any] | None = None) -> None:
        for t in self.trackers:
            t.log_config(config, manifest)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for t in self.trackers:
            t.log_metrics(metrics, step)

    def log_samples(self, samples: Sequence[dict[str, Any]], step: int) -> None:
        for t in self.trackers:
            t.log_samples(samples, step)

    def log_problems(self, problems: Sequence[dict[str, Any]], step: int) -> None:
        for t in self.trackers:
            if hasattr(t, "log_problems"):
                t.log_problems(problems, step)

    def finish(self, summary: dict[str, Any], failed: bool = False) -> None:
        """Finishes every tracker even if one of them raises (then re-raises the first
        error): a W&B hiccup must not leave the local summary unwritten, or vice versa."""
        first_error: BaseException | None = None
        for t in self.trackers:
            try:
                t.finish(summary, failed)
            except BaseException as err:  # noqa: BLE001 - re-raised below
                first_error = first_error or err
        if first_error is not None:
            raise first_error
