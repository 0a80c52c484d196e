"""What the programs print while a run is set up: the libraries' own progress bars
(datasets' ``Map`` over the prompts) only when ``trainer.progress_bar=all`` asks for them.

Quiet otherwise, so that an error found after the dataset is built is the one line
printed, and a run's output starts with its own training bar.
"""

from __future__ import annotations

from typing import Any


def quiet_library_bars(progress_bar: Any) -> None:
    """Turns datasets' bars off for this process unless ``progress_bar`` is ``all``."""
    import datasets

    if progress_bar != "all":
        datasets.disable_progress_bars()
