"""Shared helpers: compose the real config tree the way the CLI does."""

from __future__ import annotations

import sys
import socket
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from grpo_lab.config import register_configs

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
GSM8K_DIR = REPO.parent / "shared" / "data" / "gsm8k"

# The project's programs, started from the running interpreter (not looked up on PATH), so
# `.venv/bin/python -m pytest` works without an activated virtual environment.
TRAIN_CMD = [sys.executable, "-m", "grpo_lab.cli"]
COMPARE_CMD = [sys.executable, "-m", "grpo_lab.analysis.compare_cli"]

# Small and fast: the random-init tiny model, 2 prompts x 4 samples, 12 new tokens, one
# thread (a model this small gains nothing from more, and loses a lot when cores are busy).
# The default precision=auto follows the CPU (the bf16 path where it has bf16 units), so
# tests drop the precision bundle and keep float32 numerics: a test means the same on
# every machine. Tests of the bf16 path or of auto name their precision
# (compose_config then leaves the pin out).
PIN_PRECISION = "~precision"

TINY = [
    "model=tiny",
    "trainer.num_threads=1",
    "trainer.max_steps=2",
    "trainer.batch_size=2",
    "trainer.progress_bar=false",
    "rollout.max_new_tokens=12",
    "task.num_examples=50",
    # No held-out evaluation unless a test asks for it (the default run has one).
    "eval.at_start=false",
    "eval.at_end=false",
    PIN_PRECISION,
]


def free_port() -> int:
    """A TCP port nothing listens on now (for accelerate's process group)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_launch(num_processes: int, module: str, *args: str) -> list[str]:
    """The command that runs ``python -m module args`` on ``num_processes`` CPU processes
    (gloo) through ``accelerate launch``, on a free port."""
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(num_processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()), "-m", module, *args,
    ]


def pin_precision(overrides: list[str]) -> list[str]:
    """``overrides`` with PIN_PRECISION, unless one of them names a precision itself."""
    named = any(o.lstrip("+").startswith("precision=") for o in overrides)
    unpinned = [o for o in overrides if o != PIN_PRECISION]
    return unpinned if named else [*unpinned, PIN_PRECISION]


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose(config_name="train", overrides=pin_precision(list(overrides or [])))


@pytest.fixture(autouse=True)
def _wandb_off_unless_a_test_turns_it_on(monkeypatch):
    """Tests never reach W&B's servers; tests/tracking sets WANDB_MODE=offline itself."""
    monkeypatch.setenv("WANDB_MODE", "disabled")


@pytest.fixture
def tiny_config(tmp_path):
    """Compose a tiny-model config writing into a fresh tmp folder."""

    def make(*overrides: str) -> DictConfig:
        return compose_config([*TINY, f"paths.output_dir={tmp_path / 'run'}", *overrides])

    return make
