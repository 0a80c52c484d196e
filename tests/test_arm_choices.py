"""A group chosen on the command line that the run's arm overrides (grpo_lab/config/choices.py):
``arm=grpo advantage=group_mean`` composed mean/std advantages while its overrides said
mean only. Refused in one line, for a run and for every job of a multirun."""

import os
import subprocess

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from grpo_lab.config.choices import replaced_by_arm
from grpo_lab.config.registration import register_configs
from tests.conftest import CONF_DIR, REPO, TINY, TRAIN_CMD

ARM_GRPO_MEAN = ("advantage=group_mean does not take effect: arm=grpo sets advantage.normalization=group_std "
                 "after it (an arm is merged after the groups it sets); write advantage.normalization=group_mean, "
                 "which the command line applies last, or drop one of the two")


def replaced(*overrides: str) -> list[str]:
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(config_name="train", overrides=list(overrides), return_hydra_config=True)
        repository = GlobalHydra.instance().config_loader().repository
        return [r.line() for r in replaced_by_arm(cfg, list(overrides), repository)]


def test_a_group_choice_the_arm_overrides_is_named():
    assert replaced("arm=grpo", "advantage=group_mean") == [ARM_GRPO_MEAN]
    assert replaced("advantage=group_mean", "arm=grpo") == [ARM_GRPO_MEAN]  # order on the line is irrelevant


@pytest.mark.parametrize("overrides", [
    ["arm=grpo", "advantage=group_std"],  # the arm's own value
    ["arm=grpo", "advantage=group_mean", "advantage.normalization=group_mean"],  # the key, set last
    ["arm=dr_grpo", "kl=k1"],  # a group the arm leaves alone
    ["advantage=group_mean"],  # no arm
    ["arm=ppo_matched", "algorithm=ppo_shared"],  # the arm's algorithm keys are not the ones ppo_shared sets
])
def test_choices_the_arm_leaves_pass(overrides):
    assert replaced(*overrides) == []


def run(tmp_path, *overrides, multirun=False):
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled"}
    out = [f"hydra.sweep.dir={tmp_path / 'sweep'}"] if multirun else [f"paths.output_dir={tmp_path / 'run'}"]
    return subprocess.run([*TRAIN_CMD, *(["-m"] if multirun else []), *TINY, *overrides, *out],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_a_run_is_refused_before_anything_is_written(tmp_path):
    result = run(tmp_path, "arm=grpo", "advantage=group_mean")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"grpo-lab: error: {ARM_GRPO_MEAN}"]
    assert not (tmp_path / "run").exists()


def test_a_sweep_is_refused_naming_the_first_such_job(tmp_path):
    result = run(tmp_path, "arm=grpo,dr_grpo", "advantage=group_std,group_mean", multirun=True)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("grpo-lab: error: job 1 (arm=grpo advantage=group_mean): advantage=group_mean does "
                           "not take effect: arm=grpo sets advantage.normalization=group_std")
    assert line.endswith("no job was started (2 of the 4 jobs would be refused)")
    assert not (tmp_path / "sweep").exists()
