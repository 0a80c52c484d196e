"""The ``report`` Hydra callback: a multirun writes its comparison report when it ends.

Registered in ``conf/train.yaml`` under ``hydra.callbacks.report``; remove it for one
sweep with ``~hydra.callbacks.report``. A report that cannot be made (no job finished a
step, say) is reported in one line and never fails the sweep, whose runs are already
recorded.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("grpo_lab")


class ReportCallback(Callback):
    def __init__(self, metric: str = "auto", smooth: int = 1) -> None:
        self.metric = metric
        self.smooth = smooth

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            from grpo_lab.analysis.report import write_report

            report = write_report(sweep_dir, metric=self.metric, smooth=self.smooth)
        except Exception as err:  # noqa: BLE001 - the sweep's runs must stand regardless
            print(f"grpo-lab: no comparison report for {sweep_dir}: {err}", file=sys.stderr)
            return
        print(f"grpo-lab: comparison report: {report}")
