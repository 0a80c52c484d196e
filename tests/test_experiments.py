"""experiments/: every file composes with every launcher, runs as a real multirun, and
the SLURM launcher renders to the job submitit would submit."""

from __future__ import annotations

import json
import subprocess

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from grpo_lab.config import register_configs
from tests.conftest import CONF_DIR, TINY

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
LAUNCHERS = ["basic", *sorted(p.stem for p in (CONF_DIR / "hydra" / "launcher").glob("*.yaml"))]


def compose_with_hydra(overrides: list[str]):
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        return compose("train", overrides=[*overrides, "paths.output_dir=/tmp/x"], return_hydra_config=True)


def test_the_ablations_of_the_brief_are_there():
    assert {"grpo_vs_ppo", "grpo_vs_ppo_cpu", "adv_norm", "kl_sweep", "reward_mix", "loss_agg",
            "gsm8k_qwen1_5b"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("launcher", LAUNCHERS)
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_with_every_launcher(name, launcher):
    cfg = compose_with_hydra([f"experiment={name}", f"hydra/launcher={launcher}"])
    assert cfg.experiment_name == name
    assert cfg.hydra.sweeper.params, "an experiment file carries its sweep values"
    assert cfg.hydra.launcher._target_.rsplit(".", 1)[-1].lower().startswith(
        {"basic": "basic", "local_parallel": "joblib", "slurm": "slurm", "slurm_local": "local"}[launcher]
    )


def test_cpu_variant_inherits_and_shrinks():
    full = compose_with_hydra(["experiment=grpo_vs_ppo"])
    cpu = compose_with_hydra(["experiment=grpo_vs_ppo_cpu"])
    assert cpu.kl.coef == full.kl.coef and cpu.trainer.max_steps < full.trainer.max_steps
    assert cpu.hydra.sweeper.params.algorithm == "grpo,ppo"


def test_optuna_sweeper_searches_lr_and_kl():
    cfg = compose_with_hydra(["hydra/sweeper=optuna_lr_kl"])
    assert cfg.hydra.sweeper.direction == "maximize"
    assert set(cfg.hydra.sweeper.params) == {"trainer.lr", "kl.coef"}


def test_slurm_launcher_renders_the_sbatch_job(tmp_path, monkeypatch):
    """Builds the submitit executor exactly as hydra-submitit-launcher does and renders
    the sbatch file of a 40-job array."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from submitit.slurm.slurm import SlurmExecutor

    # No cluster here: submitit only checks that `srun` exists before rendering.
    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 1))

    cfg = compose_with_hydra(["experiment=grpo_vs_ppo_cpu", "hydra/launcher=slurm", "hydra.launcher.partition=gpu"])
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    params.pop("_target_")
    params.pop("submitit_folder")
    executor = submitit.AutoExecutor(cluster="slurm", folder=tmp_path, slurm_max_num_timeout=params.pop("max_num_timeout"))
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    slurm = executor._executor
    slurm.parameters["map_count"] = 40  # a 40-job sweep: at most 16 run at once
    sbatch = slurm._make_submission_file_text("python -u -m submitit.core._submit", "uid")
    for line in ["#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --time=240",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --mem=64GB", "#SBATCH --array=0-39%16",
                 "#SBATCH --signal=USR2@120"]:
        assert line in sbatch, line


def test_experiment_runs_as_a_real_multirun_with_its_report(tmp_path):
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        ["grpo-lab-train", "-m", "experiment=adv_norm", *TINY, "logger=local",
         "advantage=group_std,group_mean", "trainer.seed=0", f"hydra.sweep.dir={sweep}"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for job in ("0", "1"):
        records = [json.loads(x) for x in (sweep / job / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records] == [1, 2]
    overrides = {(sweep / j / ".hydra" / "overrides.yaml").read_text() for j in ("0", "1")}
    assert any("group_mean" in o for o in overrides) and any("group_std" in o for o in overrides)
    assert (sweep / "report.md").exists()
