"""Training runs started as a user starts them (``grpo-lab-train`` in a process of its
own), for tests that signal, kill or race them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import REPO, TRAIN_CMD

ENV = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled"}


def start_run(args: list[str], cwd: Path, hang_at: int | None = None) -> subprocess.Popen:
    """``grpo-lab-train <args>``; with ``hang_at``, a run whose reward is
    ``tests.helpers:length_reward_hanging_mid_run`` stops inside that step's reward and
    creates ``<cwd>/hanging`` (see tests/helpers.py)."""
    env = dict(ENV)
    if hang_at is not None:
        env.update(GRPO_LAB_TEST_HANG_AT=str(hang_at), GRPO_LAB_TEST_HANG_FILE=str(cwd / "hanging"))
    return subprocess.Popen([*TRAIN_CMD, *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
