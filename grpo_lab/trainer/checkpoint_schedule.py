"""When the loop writes a checkpoint: by steps, by wall-clock minutes, and at the end;
and the rule held-out evaluation and the gradient probe share (every N steps, and listed
steps).

A step count alone bounds the loss of a hard kill in steps, whose cost varies by orders
of magnitude between a CPU smoke run and a GPU run on a large model; minutes bound it in
time whatever a step costs. A stop signal adds a save of its own (see the loop).
"""

from __future__ import annotations

import time
from typing import Any, Callable


def every_or_listed(schedule: Any, step: int) -> bool:
    """Whether ``step`` is due under ``schedule.every`` (0: never) or ``schedule.steps``."""
    return bool(schedule.every and step % schedule.every == 0) or step in set(schedule.steps)


class CheckpointSchedule:
    def __init__(self, every_steps: int, every_minutes: float, max_steps: int,
                 clock: Callable[[], float] = time.monotonic):
        self.every_steps = every_steps
        self.every_seconds = every_minutes * 60.0
        self.max_steps = max_steps
        self.clock = clock
        self.last_save = clock()  # the start counts as a save: nothing to lose before it

    @classmethod
    def from_config(cls, trainer: Any) -> "CheckpointSchedule":
        return cls(trainer.checkpoint_every, trainer.checkpoint_every_minutes, trainer.max_steps)

    def due(self, step: int) -> bool:
        """Whether to save after ``step`` (which has just finished)."""
        if step == self.max_steps or (self.every_steps and step % self.every_steps == 0):
            return True
        return bool(self.every_seconds) and self.clock() - self.last_save >= self.every_seconds

    def saved(self) -> None:
        """Call after each save: the minutes count from here."""
        self.last_save = self.clock()
