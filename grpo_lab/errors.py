"""Errors a user can fix by changing their config or input; the CLIs print them as one line."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator


class ConfigError(ValueError):
    """A config value, reward function, dataset or model path that cannot be used."""


class RewardFunctionError(ValueError):
    """A reward function raised, returned the wrong number of scores, or a NaN/inf score."""


class TrainingDivergedError(RuntimeError):
    """Too many consecutive steps whose loss or gradient was NaN/inf."""


@contextmanager
def exit_on_user_error(program: str, records: str | None = None) -> Iterator[None]:
    """Turns the errors above into one line on stderr and an exit code: 2 for a config or
    input error (nothing was run), 3 for a fault during the run (records kept)."""
    try:
        yield
    except ConfigError as err:
        print(f"{program}: error: {err}", file=sys.stderr)
        sys.exit(2)
    except (RewardFunctionError, TrainingDivergedError) as err:
        where = f" (records so far are in {records})" if records else ""
        print(f"{program}: error: {err}{where}", file=sys.stderr)
        sys.exit(3)
