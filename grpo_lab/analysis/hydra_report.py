"""The ``report`` Hydra callback: a multirun writes its comparison report when it ends.

Registered in ``conf/train.yaml`` under ``hydra.callbacks.report``; remove it for one
sweep with ``~hydra.callbacks.report``. A report that cannot be made (no job finished a
step, say) is reported in one line and never fails the sweep, whose runs are already
recorded. The report reads every run in the sweep folder: jobs skipped because an
earlier launch into the same folder finished them count like the others
(grpo_lab/trainer/sweep_jobs.py); job folders without records are named in a warning.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("grpo_lab")


def folders_without_records(sweep_dir: Path) -> list[Path]:
    """Job folders (Hydra's ``.hydra/`` in them) whose ``metrics.jsonl`` is absent or
    empty: jobs that failed or stopped before their first step, left out of the report."""
    jobs = sorted({p.parent.parent for p in sweep_dir.rglob(".hydra/config.yaml")},
                  key=lambda p: [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in p.relative_to(sweep_dir).parts])
    return [job for job in jobs if not ((job / "metrics.jsonl").is_file() and (job / "metrics.jsonl").stat().st_size)]


class ReportCallback(Callback):
    def __init__(self, metric: str = "auto", smooth: int = 1) -> None:
        self.metric = metric
        self.smooth = smooth

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        empty = folders_without_records(sweep_dir) if sweep_dir.is_dir() else []
        if empty:
            names = ", ".join(str(p.relative_to(sweep_dir)) for p in empty)
            print(f"grpo-lab: warning: {len(empty)} job folder(s) of {sweep_dir} hold no records and are not in "
                  f"the report: {names}", file=sys.stderr)
        try:
            from grpo_lab.analysis.report import write_report

            report = write_report(sweep_dir, metric=self.metric, smooth=self.smooth)
        except Exception as err:  # noqa: BLE001 - the sweep's runs must stand regardless
            print(f"grpo-lab: no comparison report for {sweep_dir}: {err}", file=sys.stderr)
            return
        print(f"grpo-lab: comparison report: {report}")
