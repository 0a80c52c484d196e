"""A multirun checks every job's config before the first job starts: one bad sweep value
(`-m trainer.lr=1e-5,-1,2e-5`) used to run job 0, refuse job 1, never start job 2 and
write no report."""

import os
import subprocess

from tests.conftest import REPO, TINY, TRAIN_CMD


def multirun(tmp_path, *overrides):
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled"}
    return subprocess.run([*TRAIN_CMD, "-m", *TINY, *overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_a_bad_sweep_value_is_refused_before_any_job_runs(tmp_path):
    result = multirun(tmp_path, "trainer.lr=1e-5,-1,2e-5")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "grpo-lab: error: job 1 (trainer.lr=-1): trainer.lr=-1.0 must be >= 0.0; no job was started"]
    assert not (tmp_path / "sweep").exists()  # no job folder, no job 0 run


def test_a_value_that_does_not_compose_is_refused_naming_its_job(tmp_path):
    result = multirun(tmp_path, "trainer.seed=0,1", "trainer.max_steps=1,abc")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        # Jobs are numbered as Hydra will: max_steps (first given, in TINY) outer, seed inner.
        "grpo-lab: error: job 2 (trainer.max_steps=abc trainer.seed=0): Error merging override "
        "trainer.max_steps=abc: Value 'abc' of type 'str' could not be converted to Integer; no job was started "
        "(2 of the 4 jobs would be refused)"]
    assert not (tmp_path / "sweep").exists()


def test_an_experiments_own_sweep_is_checked_with_the_command_line(tmp_path):
    # kl_sweep sweeps kl.coef over 0.0 .. 0.1 (hydra.sweeper.params): adaptive KL needs coef > 0.
    result = multirun(tmp_path, "experiment=kl_sweep", "kl.placement=reward", "kl.target=0.01")
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("grpo-lab: error: job 0 (trainer.seed=0 kl.coef=0.0): kl.target=0.01 (adaptive KL) "
                           "needs kl.placement=reward and kl.coef > 0")
    assert line.endswith("; no job was started (2 of the 10 jobs would be refused)")


def test_a_good_sweep_runs_every_job(tmp_path):
    result = multirun(tmp_path, "trainer.max_steps=1", "trainer.lr=1e-5,2e-5", "logger=local",
                      "~hydra.callbacks.report")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()) == ["0", "1"]
    assert all((tmp_path / "sweep" / job / "metrics.jsonl").read_text() for job in ("0", "1"))


def test_a_job_folder_named_by_what_only_the_launcher_sets_is_left_to_the_job():
    """hydra.sweep.subdir naming hydra.job.id (its form differs between launchers) cannot
    be named before the launch: the check of that folder waits for its job instead of
    refusing the sweep."""
    from omegaconf import OmegaConf, open_dict

    from grpo_lab.sweep_check import _job_folder

    job = OmegaConf.create({"hydra": {"job": {"num": "???", "id": "???"},
                                      "sweep": {"dir": "multirun/x", "subdir": "${hydra.job.id}"}}})
    with open_dict(job):
        assert _job_folder(job, 3) is None
        job.hydra.sweep.subdir = "${hydra.job.num}"
        assert str(_job_folder(job, 3)) == "multirun/x/3"


def test_a_stopped_job_of_another_config_is_refused_before_any_job_starts(tmp_path):
    """A stopped job continues from its checkpoint, which must be of its config; one of
    another config (a sweep run again with a changed value) is refused before Hydra rewrites
    the job's .hydra/, the record of the command that made the run."""
    first = multirun(tmp_path, "trainer.lr=1e-5", "trainer.checkpoint_every=1", "logger=local",
                     "~hydra.callbacks.report")
    assert first.returncode == 0, first.stderr[-2000:]
    job = tmp_path / "sweep" / "0"
    (job / "summary.json").unlink()  # as a kill after the last checkpoint leaves the run
    hydra_files = {f.name: f.read_bytes() for f in (job / ".hydra").iterdir()}
    result = multirun(tmp_path, "trainer.lr=2e-5", "trainer.checkpoint_every=1", "logger=local",
                      "~hydra.callbacks.report")
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("grpo-lab: error: job 0 (")
    assert "was saved by a run with trainer.lr=1e-05, this run has trainer.lr=2e-05" in line
    assert line.endswith("; no job was started")
    assert {f.name: f.read_bytes() for f in (job / ".hydra").iterdir()} == hydra_files
