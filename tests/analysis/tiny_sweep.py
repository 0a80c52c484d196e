"""One small real sweep on the tiny model, made once per test session.

Two multiruns under one folder, the way a researcher grows a comparison:
- ``adv/``: GRPO, ``advantage=group_std,group_mean`` x ``trainer.seed=0,1`` (its own
  report written by the multirun's ``report`` hook);
- ``ppo/``: ``algorithm=ppo`` x ``trainer.seed=0,1``.
Three steps each, a length reward so a random-init model gets non-zero, varying rewards.
The two multiruns run side by side (TINY uses one torch thread per job): on a small
shared machine that beats running them one after the other. Shared by the analysis tests and the
notebook test (each a session fixture over this).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.conftest import REPO, TINY, TRAIN_CMD

STEPS = 3
COMMON = [
    *[o for o in TINY if not o.startswith("trainer.max_steps=")],
    f"trainer.max_steps={STEPS}",
    "reward=correctness",
    "+reward.weights.length=1.0",
    "+reward.functions.length=tests.helpers:completion_length_reward",
]
SWEEPS = {
    "adv": ["advantage=group_std,group_mean", "trainer.seed=0,1"],
    "ppo": ["algorithm=ppo", "trainer.seed=0,1"],
}
_made: dict[str, Path] = {}


def start_multirun(sweep_dir: Path, log: Path, *overrides: str) -> subprocess.Popen:
    # tests.helpers must be importable by the job; W&B is not what is tested here.
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [*TRAIN_CMD, "-m", *COMMON, *overrides, f"hydra.sweep.dir={sweep_dir}"],
        stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=sweep_dir.parent, env=env,
    )


def tiny_sweep(tmp_path_factory) -> Path:
    """The folder holding ``adv/`` and ``ppo/`` (and each multirun's output in ``<name>.log``);
    made on first use."""
    if "root" not in _made:
        root = tmp_path_factory.mktemp("tiny_sweep")
        procs = {name: start_multirun(root / name, root / f"{name}.log", *overrides)
                 for name, overrides in SWEEPS.items()}
        for name, proc in procs.items():
            assert proc.wait(timeout=900) == 0, (root / f"{name}.log").read_text()[-3000:]
        _made["root"] = root
    return _made["root"]
