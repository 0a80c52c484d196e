"""What the programs print: grpo-lab's own lines, and the libraries' progress bars.

- ``say``: a ``grpo-lab: ...`` line on the console, also written to the run folder's
  ``cli.log`` (Hydra's job log) with its time, so the log keeps what the run said:
  resumes, set-aside records, errors, the summary. Through the logger
  ``grpo_lab.transcript``, which conf/hydra/job_logging/grpo_lab.yaml sends to that file
  only (the console already has the line); without Hydra it has no handler.
- The libraries' own bars (datasets' ``Map`` over the prompts) only when
  ``trainer.progress_bar=all`` asks for them: quiet otherwise, so that an error found
  after the dataset is built is the one line printed, and a run's output starts with
  its own training bar.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

TRANSCRIPT = logging.getLogger("grpo_lab.transcript")


def say(message: str, stream: TextIO | None = None, program: str = "grpo-lab", level: int = logging.INFO) -> None:
    """Prints ``<program>: <message>`` to ``stream`` (stderr by default) and writes it to
    the run's log."""
    line = f"{program}: {message}"
    print(line, file=stream if stream is not None else sys.stderr, flush=True)
    TRANSCRIPT.log(level, line)


def quiet_library_bars(progress_bar: Any) -> None:
    """Turns datasets' bars off for this process unless ``progress_bar`` is ``all``."""
    import datasets

    if progress_bar != "all":
        datasets.disable_progress_bars()
