"""experiments/: every file composes with every launcher, runs as a real multirun, and
the SLURM launcher renders to the job submitit would submit."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from grpo_lab.config import register_configs
from tests.conftest import CONF_DIR, TINY, TRAIN_CMD

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
        {"basic": "basic", "local_parallel": "joblib", "slurm": "slurm", "slurm_ddp": "slurm",
         "slurm_local": "local"}[launcher]
    )


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_scores_held_out_problems(name):
    cfg = compose_with_hydra([f"experiment={name}"])
    assert cfg.eval.at_start and cfg.eval.at_end
    # An outcome of the last k evaluations needs k evaluations after training began.
    after_start = {s for s in range(1, cfg.trainer.max_steps + 1)
                   if (cfg.eval.every and s % cfg.eval.every == 0) or s in cfg.eval.steps or s == cfg.trainer.max_steps}
    assert len(after_start) >= (cfg.comparison.last_k if cfg.comparison.outcome == "last_k" else 1)


def test_cpu_variant_inherits_and_shrinks():
    full = compose_with_hydra(["experiment=grpo_vs_ppo"])
    cpu = compose_with_hydra(["experiment=grpo_vs_ppo_cpu"])
    assert cpu.kl.coef == full.kl.coef and cpu.trainer.max_steps < full.trainer.max_steps
    assert cpu.hydra.sweeper.params.arm == full.hydra.sweeper.params.arm == "grpo,ppo_matched,ppo_practiced"


def _leaves(cfg, prefix=""):
    out = {}
    for key, value in cfg.items():
        if isinstance(value, dict):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize("name", ["grpo_vs_ppo", "grpo_vs_ppo_cpu", "grpo_vs_ppo_bf16_cpu", "grpo_vs_ppo_gpu",
                                  "sparse_reward_cpu", "sparse_reward_gpu"])
def test_matched_grpo_and_ppo_differ_only_in_the_advantage_source(name):
    """arm=grpo vs arm=ppo_matched: the composed configs differ in algorithm.name alone
    (group-relative advantages vs a critic through GAE); PPO as practiced adds its
    schedule and aggregation, and nothing else."""
    def composed(arm):
        cfg = compose_with_hydra([f"experiment={name}", f"arm={arm}"])
        return _leaves({k: v for k, v in OmegaConf.to_container(cfg, resolve=False).items() if k != "hydra"})

    grpo, matched, practiced = (composed(a) for a in ("grpo", "ppo_matched", "ppo_practiced"))
    assert set(grpo) == set(matched) == set(practiced)
    differ = lambda a, b: {k for k in a if a[k] != b[k]}  # noqa: E731
    assert differ(grpo, matched) == {"algorithm.name"}
    assert (grpo["algorithm.name"], matched["algorithm.name"]) == ("grpo", "ppo")
    assert differ(matched, practiced) == {"algorithm.num_iterations", "algorithm.num_minibatches",
                                          "algorithm.loss_aggregation"}
    assert (practiced["algorithm.num_iterations"], practiced["algorithm.num_minibatches"]) == (2, 2)


def test_precision_arms_differ_only_in_what_is_computed_in_which_dtype():
    def composed(precision):
        cfg = compose_with_hydra(["experiment=precision_cpu", f"precision={precision}"])
        return _leaves({k: v for k, v in OmegaConf.to_container(cfg, resolve=False).items() if k != "hydra"})

    fp32, bf16 = composed("fp32"), composed("bf16")
    assert set(fp32) == set(bf16)
    assert {k for k in fp32 if fp32[k] != bf16[k]} == {"rollout.dtype", "trainer.mixed_precision"}
    assert (fp32["rollout.dtype"], fp32["trainer.mixed_precision"]) == (None, "no")
    assert (bf16["rollout.dtype"], bf16["trainer.mixed_precision"]) == ("bfloat16", "bf16")
    assert fp32["trainer.dtype"] == bf16["trainer.dtype"] == "float32"  # fp32 (master) weights in both


def test_tool_arms_differ_only_in_the_tool_and_the_bonus():
    """tools_cpu: no_tool vs tool differ in the environment and the demonstrations the
    warm start learns from; tool_bonus adds the tool_call weight and nothing else."""
    def composed(arm):
        cfg = compose_with_hydra(["experiment=tools_cpu", f"arm={arm}"])
        return _leaves({k: v for k, v in OmegaConf.to_container(cfg, resolve=False).items() if k != "hydra"})

    tool, no_tool, bonus = (composed(a) for a in ("tool", "no_tool", "tool_bonus"))
    assert set(tool) == set(no_tool) and set(bonus) - set(tool) == {"reward.weights.tool_call"}
    assert {k for k in tool if tool[k] != no_tool[k]} == {"rollout.environment", "warm_start.demonstrations"}
    assert {k for k in tool if tool[k] != bonus[k]} == set() and bonus["reward.weights.tool_call"] == 0.1
    assert (tool["rollout.environment"], no_tool["rollout.environment"]) == ("calculator", None)
    assert tool["warm_start.steps"] == 4 and tool["reward.weights.correctness_lenient"] == 1.0
    # Amendment 2: every arm samples from the bf16 copy and trains under bf16 autocast.
    assert all((arm["rollout.dtype"], arm["trainer.mixed_precision"]) == ("bfloat16", "bf16")
               for arm in (tool, no_tool, bonus))


# Its committed runs (results/report_example/runs/0-3) were made arms outer.
ARMS_OUTER = {"report_example"}


@pytest.mark.parametrize("name", sorted(set(EXPERIMENTS) - ARMS_OUTER))
def test_sweeps_run_seeds_outer_so_a_partial_sweep_keeps_matched_pairs(name):
    params = list(compose_with_hydra([f"experiment={name}"]).hydra.sweeper.params)
    assert params[0] == "trainer.seed", params


@pytest.mark.parametrize("name, min_seeds", [("grpo_vs_ppo_cpu", 5), ("adv_norm_cpu", 4), ("grpo_vs_ppo_bf16_cpu", 30)])
def test_headline_cpu_comparisons_have_seeds_and_matched_arms(name, min_seeds):
    params = compose_with_hydra([f"experiment={name}"]).hydra.sweeper.params
    assert len(str(params["trainer.seed"]).split(",")) >= min_seeds
    arm_key = next(k for k in params if k != "trainer.seed")
    # PPO as practiced keeps its own update schedule by design (checked above).
    names = [a for a in str(params[arm_key]).split(",") if a != "ppo_practiced"]
    arms = [compose_with_hydra([f"experiment={name}", f"{arm_key}={arm}"]) for arm in names]
    assert len(arms) >= 2
    # Same prompts x samples per step, updates per batch, learning rate, steps and evaluation.
    for key in ("trainer.batch_size", "algorithm.group_size", "algorithm.num_iterations",
                "algorithm.num_minibatches", "trainer.lr", "trainer.max_steps", "rollout.max_new_tokens", "eval"):
        values = [OmegaConf.select(cfg, key) for cfg in arms]
        assert all(v == values[0] for v in values), (key, values)


def test_optuna_sweeper_searches_lr_and_kl():
    cfg = compose_with_hydra(["hydra/sweeper=optuna_lr_kl"])
    assert cfg.hydra.sweeper.direction == "maximize"
    assert set(cfg.hydra.sweeper.params) == {"trainer.lr", "kl.coef"}


def _render_sbatch(overrides, folder, monkeypatch, map_count):
    """The sbatch file of a ``map_count``-job sweep, from an executor built exactly as
    hydra-submitit-launcher builds it."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from submitit.slurm.slurm import SlurmExecutor

    # No cluster here: submitit only checks that `srun` exists before rendering.
    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 1))

    cfg = compose_with_hydra(overrides)
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    params.pop("_target_")
    params.pop("submitit_folder")
    executor = submitit.AutoExecutor(cluster="slurm", folder=folder, slurm_max_num_timeout=params.pop("max_num_timeout"))
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    slurm = executor._executor
    slurm.parameters["map_count"] = map_count
    return slurm._make_submission_file_text("python -u -m submitit.core._submit", "uid")


def test_slurm_launcher_renders_the_sbatch_job(tmp_path, monkeypatch):
    sbatch = _render_sbatch(["experiment=grpo_vs_ppo_cpu", "hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
                            tmp_path, monkeypatch, map_count=40)  # a 40-job sweep: at most 16 at once
    for line in ["#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --time=240",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --mem=64GB", "#SBATCH --array=0-39%16",
                 "#SBATCH --signal=USR2@120"]:
        assert line in sbatch, line


def test_slurm_ddp_launcher_starts_one_task_per_gpu_on_every_node(tmp_path, monkeypatch):
    sbatch = _render_sbatch(["experiment=grpo_vs_ppo", "hydra/launcher=slurm_ddp", "hydra.launcher.nodes=2"],
                            tmp_path, monkeypatch, map_count=2)
    for line in ["#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-node=8",
                 "#SBATCH --array=0-1%2"]:
        assert line in sbatch, line
    assert "srun" in sbatch  # srun starts the tasks; each one joins the process group


def test_slurm_tasks_become_a_torch_process_group(monkeypatch):
    from grpo_lab.engine.distributed import export_slurm_process_group

    # Registered with monkeypatch (set, then removed) so that what export writes is
    # undone after the test: a leftover RANK would make later runs join a process group.
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    # What SLURM and submitit set in task 9 of a 2-node x 8-task job.
    slurm = {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "16",
             "SLURM_PROCID": "9", "SLURM_LOCALID": "1", "SLURM_NODEID": "1", "SLURM_JOB_NUM_NODES": "2",
             "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_STEP_NODELIST": "gpu[07-08]"}
    for name, value in slurm.items():
        monkeypatch.setenv(name, value)
    export_slurm_process_group()
    env = os.environ
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["MASTER_ADDR"]) == ("9", "16", "1", "gpu07")
    assert 20000 <= int(env["MASTER_PORT"]) <= 60000


def test_experiment_runs_as_a_real_multirun_with_its_report(tmp_path):
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        # TINY's "no evaluation" left out: the experiment's own schedule is under test.
        [*TRAIN_CMD, "-m", "experiment=adv_norm", *[o for o in TINY if not o.startswith("eval.")], "logger=local",
         "advantage=group_std,group_mean", "trainer.seed=0", f"hydra.sweep.dir={sweep}"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    from grpo_lab.analysis.local import merge_steps, read_metrics

    for job in ("0", "1"):
        # The evaluation after step 2 is a record of its own for that step; readers merge them.
        records = merge_steps(read_metrics(sweep / job / "metrics.jsonl"))
        assert [r["step"] for r in records] == [0, 1, 2]  # step 0: held-out scores before training
        assert "eval/accuracy" in records[0] and "eval/accuracy" in records[-1]
    overrides = {(sweep / j / ".hydra" / "overrides.yaml").read_text() for j in ("0", "1")}
    assert any("group_mean" in o for o in overrides) and any("group_std" in o for o in overrides)
    assert "Outcome: eval/accuracy" in (sweep / "report.md").read_text()


@pytest.mark.parametrize("name", ["algo_zoo", "algo_zoo_cpu"])
def test_algo_zoo_sweeps_seeds_then_arms_and_every_arm_is_valid(name):
    from grpo_lab.config.validate import validate_config

    cfg = compose_with_hydra([f"experiment={name}"])
    params = cfg.hydra.sweeper.params
    assert list(params)[0] == "trainer.seed" and params["trainer.seed"] == "0,1,2"
    arms = params["arm"].split(",")
    assert [a.replace("_cpu", "") for a in arms] == [
        "grpo", "dr_grpo", "rloo", "reinforce_plus_plus_baseline", "gspo", "dapo"]
    for arm in arms:
        # No GPU here: the config check would refuse trainer.device=cuda of the GPU file.
        job = compose_with_hydra([f"experiment={name}", f"arm={arm}", "trainer.device=cpu"])
        validate_config(job)
        # Same budget and update schedule for every arm.
        assert (job.trainer.max_steps, job.trainer.batch_size, job.algorithm.group_size,
                job.algorithm.num_minibatches) == (cfg.trainer.max_steps, cfg.trainer.batch_size,
                                                   cfg.algorithm.group_size, 2)


def test_algo_zoo_arms_set_what_their_papers_name():
    dapo = compose_with_hydra(["experiment=algo_zoo_cpu", "arm=dapo_cpu"])
    assert (dapo.algorithm.epsilon_high, dapo.algorithm.loss_aggregation) == (0.28, "token_mean")
    assert dapo.algorithm.dynamic_sampling.enabled and dapo.reward.overlong_buffer == 12
    gspo = compose_with_hydra(["experiment=algo_zoo_cpu", "arm=gspo"])
    assert (gspo.algorithm.policy_loss, gspo.algorithm.epsilon_low, gspo.algorithm.epsilon_high) == ("gspo", 3e-4, 4e-4)
    dr = compose_with_hydra(["experiment=algo_zoo_cpu", "arm=dr_grpo"])
    assert (dr.advantage.normalization, dr.algorithm.loss_aggregation) == ("group_mean", "dr_grpo")
    grpo = compose_with_hydra(["experiment=algo_zoo_cpu", "arm=grpo"])
    assert not grpo.algorithm.dynamic_sampling.enabled and grpo.reward.overlong_buffer == 0


def test_the_powered_rerun_of_grpo_vs_ppo_keeps_its_setting_on_fresh_seeds():
    """grpo_vs_ppo_bf16_cpu: grpo_vs_ppo_cpu's setting and comparison in bf16, the two
    matched arms only, on seeds the first sweep never ran."""
    def composed(name, *overrides):
        cfg = compose_with_hydra([f"experiment={name}", "arm=grpo", *overrides])
        return _leaves({k: v for k, v in OmegaConf.to_container(cfg, resolve=False).items() if k != "hydra"})

    first, rerun = composed("grpo_vs_ppo_cpu", "precision=bf16"), composed("grpo_vs_ppo_bf16_cpu")
    assert {k for k in first if first[k] != rerun.get(k)} == {
        "experiment_name", "probe.at_start", "probe.steps", "probe.num_batches"}  # + the variance probe
    assert (rerun["probe.at_start"], rerun["probe.steps"], rerun["probe.num_batches"]) == (True, [10], 4)
    params = compose_with_hydra(["experiment=grpo_vs_ppo_bf16_cpu"]).hydra.sweeper.params
    assert params.arm == "grpo,ppo_matched"
    seeds = {int(s) for s in str(params["trainer.seed"]).split(",")}
    first_seeds = str(compose_with_hydra(["experiment=grpo_vs_ppo_cpu"]).hydra.sweeper.params["trainer.seed"])
    assert len(seeds) == 30 and not seeds & {int(s) for s in first_seeds.split(",")}


@pytest.mark.parametrize("name, arms", [("dr_grpo_length_cpu", ("grpo", "dr_grpo")),
                                        ("sparse_reward_cpu", ("grpo", "ppo_matched"))])
def test_tagged_reward_experiments_warm_start_every_arm_on_tagged_answers(name, arms):
    """Amended after their pilots: the tagged rewards scored the untrained model's untagged
    answers 0, so every arm first learns the format from the same demonstrations."""
    for arm in arms:
        cfg = compose_with_hydra([f"experiment={name}", f"arm={arm}"])
        assert (cfg.warm_start.steps, cfg.warm_start.batch_size, cfg.warm_start.lr) == (4, 8, 2e-5)
        assert cfg.warm_start.demonstrations == "tagged_answer"


def test_sparse_rewards_are_scored_on_products_of_two_digit_operands():
    cfg = compose_with_hydra(["experiment=sparse_reward_cpu", "arm=grpo"])
    assert list(cfg.task.operations) == ["*"] and (cfg.task.min_operand, cfg.task.max_operand) == (11, 40)
    assert dict(cfg.reward.weights) == {"correctness": 1.0}


def test_gpu_tool_experiment_keeps_the_cpu_questions_with_a_larger_model():
    cpu = compose_with_hydra(["experiment=tools_cpu"])
    gpu = compose_with_hydra(["experiment=tools_gpu"])
    assert gpu.hydra.sweeper.params.arm == cpu.hydra.sweeper.params.arm == "tool,no_tool,tool_bonus"
    assert OmegaConf.to_container(gpu.comparison) == OmegaConf.to_container(cpu.comparison)
    assert dict(gpu.reward.weights) == dict(cpu.reward.weights)
    assert gpu.model.path == "Qwen/Qwen2.5-1.5B-Instruct" and gpu.trainer.device == "cuda"
    assert gpu.task.min_operand == 100 and gpu.trainer.max_steps > cpu.trainer.max_steps
    tool = compose_with_hydra(["experiment=tools_gpu", "arm=tool"])
    assert tool.rollout.environment == "calculator" and tool.warm_start.demonstrations == "calculator"


# Each registered CPU experiment and its GPU version (same question, arms and analysis).
GPU_VERSIONS = [("grpo_vs_ppo_bf16_cpu", "grpo_vs_ppo_gpu"), ("adv_norm_cpu", "adv_norm_gpu"),
                ("dr_grpo_length_cpu", "dr_grpo_length_gpu"), ("sparse_reward_cpu", "sparse_reward_gpu"),
                ("tools_cpu", "tools_gpu")]


@pytest.mark.parametrize("cpu_name, gpu_name", GPU_VERSIONS)
def test_gpu_versions_keep_the_registered_design(cpu_name, gpu_name):
    """The GPU file asks the CPU file's question: its arms (grpo_vs_ppo_gpu adds PPO as
    practiced back), comparison, reward and probe, with a larger model on a GPU in
    precision=auto (bf16 autocast over float32 weights there); every arm is a valid job,
    and the internal pilot's seeds (100, 101) stay out of the confirmatory ones."""
    from grpo_lab.config.validate import validate_config

    cpu, gpu = compose_with_hydra([f"experiment={cpu_name}"]), compose_with_hydra([f"experiment={gpu_name}"])
    cpu_params, gpu_params = cpu.hydra.sweeper.params, gpu.hydra.sweeper.params
    assert list(gpu_params) == list(cpu_params)  # the same axes, seeds outer
    arm_key = list(cpu_params)[1]
    assert set(str(cpu_params[arm_key]).split(",")) <= set(str(gpu_params[arm_key]).split(","))
    assert OmegaConf.to_container(gpu.comparison) == OmegaConf.to_container(cpu.comparison)
    assert dict(gpu.reward.weights) == dict(cpu.reward.weights)
    assert bool(gpu.probe.steps) == bool(cpu.probe.steps) and gpu.probe.at_start == cpu.probe.at_start
    assert gpu.trainer.device == "cuda" and gpu.model.path.startswith("Qwen/")
    assert (gpu.rollout.dtype, gpu.trainer.mixed_precision, gpu.trainer.dtype) == ("auto", "auto", "auto")
    assert gpu.trainer.max_steps in gpu.eval.steps + [gpu.trainer.max_steps] and gpu.eval.at_start
    seeds = {int(s) for s in str(gpu_params["trainer.seed"]).split(",")}
    assert len(seeds) >= 5 and not seeds & {100, 101}
    for arm in str(gpu_params[arm_key]).split(","):
        # No GPU here: the config check would refuse trainer.device=cuda.
        validate_config(compose_with_hydra([f"experiment={gpu_name}", f"{arm_key}={arm}", "trainer.device=cpu"]))


@pytest.mark.parametrize("name", ["grpo_vs_ppo_cpu", "algo_zoo_cpu", "tldr_cpu", "report_example"])
def test_experiments_run_before_precision_auto_keep_their_float32_config(name):
    """Their committed runs were made with no precision bundle; a sweep grown into their
    folders must compose the same config, not the new default's."""
    cfg = compose_with_hydra([f"experiment={name}"])
    assert (cfg.rollout.dtype, cfg.trainer.mixed_precision, cfg.trainer.dtype) == (None, "no", "auto")


# Registered sweeps that grow into their committed folders (the pilots and older examples
# were made by earlier versions of their files, on purpose or before the split by family).
GROWING = ["grpo_vs_ppo_cpu", "grpo_vs_ppo_bf16_cpu", "precision_cpu", "tools_cpu", "sparse_reward_cpu",
           "dr_grpo_length_cpu", "adv_norm_cpu"]


@pytest.mark.parametrize("name", GROWING)
def test_committed_jobs_are_what_their_experiment_file_composes_today(name):
    """A sweep run again into its folder skips a finished job only when the job's config
    is the one composed now (grpo_lab/trainer/sweep_jobs.py): a change of defaults (such
    as precision=auto) must not turn committed jobs into "another config"."""
    import yaml

    from grpo_lab.config.difference import first_difference
    from grpo_lab.config.validate import validate_config
    from grpo_lab.trainer.run_data import config_fingerprints, data_change
    from tests.conftest import REPO

    data: dict[str, dict] = {}  # fingerprints per task and eval config

    jobs = sorted((REPO / "experiments" / "results" / name / "runs").glob("*/config.yaml"))
    assert jobs, name
    for saved in jobs:
        overrides = yaml.safe_load((saved.parent / ".hydra" / "overrides.yaml").read_text())
        composed = compose_with_hydra(overrides)
        cfg = OmegaConf.create({k: v for k, v in OmegaConf.to_container(composed, resolve=False).items() if k != "hydra"})
        cfg.paths.output_dir = str(saved.parent)
        validate_config(cfg)  # as a job does before comparing: precision=auto resolved
        difference = first_difference(yaml.safe_load(saved.read_text()), OmegaConf.to_container(cfg, resolve=True))
        assert difference is None, (saved.parent, difference)
        # ... and ran on the data composed now (a grown sweep compares the fingerprints).
        key = json.dumps(OmegaConf.to_container(cfg, resolve=True)["task"], sort_keys=True) + str(cfg.eval)
        if key not in data:
            data[key] = config_fingerprints(cfg)
        recorded = json.loads((saved.parent / "manifest.json").read_text())["data"]
        assert data_change(recorded, data[key]) is None, saved.parent
