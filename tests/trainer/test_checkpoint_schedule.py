"""Checkpoints by steps, by wall-clock minutes, and at the end."""

import pytest

from grpo_lab.trainer import train
from grpo_lab.trainer.checkpoint import list_checkpoints
from grpo_lab.trainer.checkpoint_schedule import CheckpointSchedule
from tests.conftest import TINY, compose_config


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def saves(schedule: CheckpointSchedule, clock: Clock, max_steps: int, step_seconds: float) -> list[int]:
    """The steps after which the loop saves, each step taking ``step_seconds``."""
    saved = []
    for step in range(1, max_steps + 1):
        clock.now += step_seconds
        if schedule.due(step):
            saved.append(step)
            schedule.saved()
    return saved


def test_by_steps_and_at_the_end():
    clock = Clock()
    assert saves(CheckpointSchedule(3, 0.0, 7, clock), clock, 7, 1000.0) == [3, 6, 7]


def test_by_minutes():
    # 25 s steps, every 1 minute: after step 3 (75 s since the start), then 3 steps after
    # each save (75 s again), and at the end: 3, 6, 9, 10.
    clock = Clock()
    assert saves(CheckpointSchedule(0, 1.0, 10, clock), clock, 10, 25.0) == [3, 6, 9, 10]


def test_by_steps_or_minutes_whichever_comes_first():
    # Every 4 steps or 1 minute, 25 s steps: step 3 (75 s), step 4 (every 4th), then
    # step 7 (75 s after step 4), step 8 (every 4th), end 9.
    clock = Clock()
    assert saves(CheckpointSchedule(4, 1.0, 9, clock), clock, 9, 25.0) == [3, 4, 7, 8, 9]


def test_gpu_preset_checkpoints_by_steps_and_minutes():
    trainer = compose_config(["trainer=gpu", "paths.output_dir=/tmp/x"]).trainer
    assert trainer.checkpoint_every > 0 and trainer.checkpoint_every_minutes > 0


@pytest.mark.parametrize("minutes, expected", [(1e-9, [1, 2, 3]), (0.0, [3])])
def test_a_real_run_saves_when_minutes_have_passed(tmp_path, minutes, expected):
    run = tmp_path / "run"
    train(compose_config([*TINY, "trainer.max_steps=3", "trainer.checkpoint_keep=0",
                          f"trainer.checkpoint_every_minutes={minutes}", f"paths.output_dir={run}"]))
    assert [s for s, _ in list_checkpoints(run)] == expected
