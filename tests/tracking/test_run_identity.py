"""Run names, groups and tags: how a run is found among the others in W&B."""

from grpo_lab.tracking.run_identity import (
    HydraJob, current_hydra_job, name_from_overrides, run_group, run_tags, swept_keys,
)
from tests.conftest import compose_config


def test_name_is_the_overrides_that_define_the_run():
    overrides = ["advantage=group_mean", "paths.output_dir=/tmp/x", "logger.wandb.mode=offline",
                 "experiment=adv_norm", "+kl.coef=0.1"]
    assert name_from_overrides(overrides) == "advantage=group_mean,+kl.coef=0.1"
    assert name_from_overrides(["paths.output_dir=/tmp/x"]) is None


def test_in_a_sweep_the_name_keeps_only_the_swept_keys():
    overrides = ["model=tiny", "trainer.max_steps=2", "advantage=group_mean", "trainer.seed=1"]
    keys = swept_keys({"advantage": "group_std,group_mean"}, ["model=tiny", "trainer.seed=0,1"])
    assert keys == ["advantage", "trainer.seed"]
    assert name_from_overrides(overrides, keys) == "advantage=group_mean,trainer.seed=1"


def test_sweep_syntax_marks_a_key_as_swept():
    keys = swept_keys(None, ["a=1", "b=1,2", "c=range(3)", "+d=glob(*)", "e=choice(x,y)"])
    assert keys == ["b", "c", "d", "e"]


def test_group_is_the_sweep_or_the_experiment():
    sweep = HydraJob(sweep_dir="multirun/2026-01-31/12-00-00")
    assert run_group("adv_norm", sweep) == "adv_norm/2026-01-31/12-00-00"
    assert run_group(None, sweep) == "sweep/2026-01-31/12-00-00"
    assert run_group("adv_norm", HydraJob()) == "adv_norm"
    assert run_group(None, HydraJob()) is None


def test_tags_name_algorithm_model_task_and_experiment():
    cfg = compose_config(["model=tiny", "experiment=adv_norm", "paths.output_dir=/tmp/x"])
    assert run_tags(cfg, ["mine", "grpo"]) == ["grpo", "tiny", "arithmetic", "adv_norm", "mine"]


def test_without_a_hydra_runtime_there_is_no_job():
    assert current_hydra_job() == HydraJob()
