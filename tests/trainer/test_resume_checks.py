"""Resume checks what it resumes: a checkpoint continues only the config that saved it
(keys that change the result), refused in one line before any record is touched; what
a multirun job does with a folder that holds a run (skip, continue, start)."""

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from grpo_lab.checkpoint_folder import load_policy_weights
from grpo_lab.config.difference import MAY_DIFFER, first_difference
from grpo_lab.errors import ConfigError
from grpo_lab.trainer import Trainer, train
from grpo_lab.trainer.checkpoint import list_checkpoints
from grpo_lab.trainer.sweep_jobs import finished_run, plan_job
from tests.conftest import TINY, compose_config


def config(run_dir: Path, *overrides: str):
    return compose_config([*TINY, f"paths.output_dir={run_dir}", "logger=local", *overrides])


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- comparing configs ----------------------------------------------------------------
def test_configs_compare_on_the_keys_that_change_the_result(tmp_path):
    base = config(tmp_path / "a")
    saved = OmegaConf.to_container(base, resolve=True)
    # Where records go and how they are shown: the same run.
    assert first_difference(saved, config(tmp_path / "b", "trainer.progress_bar=true", "logger=wandb",
                                          "trainer.process_per_job=false", "eval.batch_size=3",
                                          "trainer.checkpoint_every=1")) is None
    assert first_difference(saved, config(tmp_path / "b", "trainer.seed=1")) == ("trainer.seed", 0, 1)
    assert first_difference(saved, config(tmp_path / "b", "model.config_overrides.hidden_size=128")) == (
        "model.config_overrides.hidden_size", 64, 128)
    assert first_difference(saved, config(tmp_path / "b", "trainer.adam_betas=[0.9,0.9]")) == (
        "trainer.adam_betas", [0.9, 0.99], [0.9, 0.9])
    # A reward added with + is a different run, in either direction.
    added = config(tmp_path / "b", "+reward.weights.length=1.0")
    assert first_difference(saved, added)[0] == "reward.weights.length"
    assert first_difference(OmegaConf.to_container(added, resolve=True), base)[0] == "reward.weights.length"
    # max_steps is the one key a resumed run may change.
    longer = config(tmp_path / "b", "trainer.max_steps=5")
    assert first_difference(saved, longer) == ("trainer.max_steps", 2, 5)
    assert first_difference(saved, longer, (*MAY_DIFFER, "trainer.max_steps")) is None


def test_a_key_one_config_lacks_counts_as_its_schema_default(tmp_path):
    base = config(tmp_path / "a")
    older = OmegaConf.to_container(base, resolve=True)
    del older["algorithm"]["sapo_tau_pos"]  # saved before the option existed: default 1.0
    assert first_difference(older, base) is None
    assert first_difference(older, config(tmp_path / "a", "algorithm.sapo_tau_pos=2.0"))[0] == "algorithm.sapo_tau_pos"
    older["algorithm"]["removed_option"] = 3  # an option this version does not know
    assert first_difference(older, base)[0] == "algorithm.removed_option"


# -- resuming ------------------------------------------------------------------------
@pytest.mark.parametrize("changed, key", [
    ("trainer.seed=1", "trainer.seed"),
    ("task.max_operand=20", "task.max_operand"),
    ("model.config_overrides.hidden_size=128", "model.config_overrides.hidden_size"),
    ("trainer.optimizer=sgd", "trainer.optimizer"),
])
def test_resume_refuses_a_checkpoint_of_another_config_before_touching_the_records(tmp_path, changed, key):
    other, run = tmp_path / "other", tmp_path / "run"
    train(config(other, "trainer.max_steps=1"))
    train(config(run, "trainer.max_steps=1", changed))
    before = files(run)
    with pytest.raises(ConfigError) as err:
        Trainer(config(run, "trainer.max_steps=2", changed, f"trainer.resume={other}"))
    message = str(err.value)
    assert "\n" not in message and message.startswith("trainer.resume: checkpoint ")
    assert f"{other}/checkpoints/step_00000001" in message and f"with {key}=" in message
    assert "allowed to differ on resume:" in message and "trainer.max_steps" in message
    assert files(run) == before  # nothing rewound, set aside or rewritten


def test_resume_with_more_steps_and_other_records_settings_is_accepted(tmp_path):
    run = tmp_path / "run"
    train(config(run, "trainer.max_steps=1"))
    trainer = Trainer(config(run, "trainer.max_steps=2", "trainer.resume=auto", "trainer.progress_bar=true",
                             "logger.sample_every=1"))
    assert trainer.start_step == 1


def test_a_checkpoint_without_its_config_is_refused(tmp_path):
    run = tmp_path / "run"
    train(config(run, "trainer.max_steps=1"))
    (list_checkpoints(run)[-1][1] / "config.yaml").unlink()
    with pytest.raises(ConfigError, match="has no readable config.yaml"):
        Trainer(config(run, "trainer.resume=auto"))


def test_weights_that_do_not_fit_are_one_error_naming_the_tensors(tmp_path):
    """The error path itself used to raise ('set' object is not subscriptable)."""
    run = tmp_path / "run"
    train(config(run, "trainer.max_steps=1"))
    checkpoint = list_checkpoints(run)[-1][1]
    deeper = Trainer(config(tmp_path / "deeper", "model.config_overrides.num_hidden_layers=3"))
    with pytest.raises(ConfigError, match=r"missing \['model\.layers\.2\.") as err:
        load_policy_weights(deeper.policy, checkpoint)
    assert "\n" not in str(err.value)
    wider = Trainer(config(tmp_path / "wider", "model.config_overrides.hidden_size=128",
                           "model.config_overrides.head_dim=32"))
    with pytest.raises(ConfigError, match="does not fit the model config: .*size mismatch") as err:
        load_policy_weights(wider.policy, checkpoint)
    assert "\n" not in str(err.value)


# -- a multirun job's folder ---------------------------------------------------------
def test_plan_of_a_job_folder(tmp_path):
    job = tmp_path / "0"
    assert plan_job(config(job), job).action == "start"  # new folder

    train(config(job, "trainer.checkpoint_every=1", "trainer.checkpoint_keep=0"))
    finished = finished_run(job)
    assert finished is not None and finished[1]["steps"] == 2
    same = config(job, "trainer.progress_bar=true")
    plan = plan_job(same, job)
    assert plan.action == "skip" and plan.summary == json.loads((job / "summary.json").read_text())
    assert same.trainer.resume is None  # a skipped job changes nothing

    with pytest.raises(ConfigError) as err:
        plan_job(config(job, "trainer.lr=0.5"), job)
    assert str(err.value).startswith(f"{job} holds a finished run of another config (trainer.lr: 2e-05 there, "
                                     "0.5 in this job); nothing was changed")

    # Stopped after step 1 (its summary says so): continued from the step-1 checkpoint.
    summary = json.loads((job / "summary.json").read_text())
    (job / "summary.json").write_text(json.dumps({**summary, "stopped_by": "SIGTERM"}))
    assert finished_run(job) is None
    cfg = config(job)
    plan = plan_job(cfg, job)
    assert plan.action == "resume" and plan.checkpoint == list_checkpoints(job)[-1][1]
    assert cfg.trainer.resume == "auto"
    # ... but not with another config.
    with pytest.raises(ConfigError, match="with trainer.seed=0, this run has trainer.seed=1"):
        plan_job(config(job, "trainer.seed=1"), job)

    # Records short of max_steps and no summary (kill -9): not finished either.
    (job / "summary.json").unlink()
    assert finished_run(job) is None and plan_job(config(job), job).action == "resume"
