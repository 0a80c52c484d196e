"""Errors a user can fix by changing their config or input; the CLIs print them as one line."""

from __future__ import annotations

import logging
import signal
import sys
from contextlib import contextmanager
from typing import Iterator
from grpo_lab.console import say


class ConfigError(ValueError):
    """A config value, reward function, dataset or model path that cannot be used."""


class RewardFunctionError(ValueError):
    """A reward function raised, returned the wrong number of scores, or a NaN/inf score."""


class TrainingDivergedError(RuntimeError):
    """Too many consecutive steps whose loss or gradient was NaN/inf."""


class StoppedAtOnce(KeyboardInterrupt):
    """A second SIGTERM / SIGINT: the run stops in the middle of a step (the first one
    lets the step finish). A KeyboardInterrupt, so cleanup that runs for Ctrl-C runs."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def first_line(err: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none): library
    errors quoted inside a one-line message."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@contextmanager
def exit_on_user_error(program: str, records: str | None = None) -> Iterator[None]:
    """Turns the errors above into one line on stderr and an exit code: 2 for a config or
    input error (nothing was run), 3 for a fault during the run (records kept), 128 +
    the signal for a second stop signal."""
    try:
        yield
    except ConfigError as err:
        # Printed, not said: exit 2 means nothing was run, so the folder's cli.log (maybe
        # a finished run's) is left as it was.
        print(f"{program}: error: {err}", file=sys.stderr, flush=True)
        sys.exit(2)
    except (RewardFunctionError, TrainingDivergedError) as err:
        where = f" (records so far are in {records})" if records else ""
        say(f"error: {err}{where}", program=program, level=logging.ERROR)
        sys.exit(3)
    except StoppedAtOnce as stop:
        name = signal.Signals(stop.signum).name
        where = f" in {records}" if records else ""
        say(f"stopped at once by a second {name}: the step in progress is lost, the records and "
            f"checkpoints of finished steps are kept{where}; trainer.resume=auto continues from the last "
            "checkpoint", program=program, level=logging.WARNING)
        sys.exit(128 + stop.signum)
