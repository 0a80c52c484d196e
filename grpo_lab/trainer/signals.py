"""SIGTERM / SIGINT as a request to stop cleanly after the current step.

Schedulers pre-empt with SIGTERM (SLURM sends it ``signal_delay_s`` before the kill);
a user presses Ctrl-C. Either way the loop finishes the step it is in, writes its
records and a checkpoint, closes the trackers and exits. A second signal stops at once.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

from grpo_lab.console import say
from grpo_lab.errors import StoppedAtOnce

HANDLED = (signal.SIGTERM, signal.SIGINT)


class GracefulStop:
    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum is not None else None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # second signal: the user means it
            raise StoppedAtOnce(signum)
        self.signum = signum
        print(file=sys.stderr)  # off the progress bar's line
        say(f"{signal.Signals(signum).name} received: stopping after this step (checkpoint, records, trackers); "
            "send it again to stop now", level=logging.WARNING)

    def __enter__(self) -> "GracefulStop":
        # Handlers can only be installed from the main thread (not, e.g., in a joblib worker thread).
        if threading.current_thread() is threading.main_thread():
            for sig in HANDLED:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
