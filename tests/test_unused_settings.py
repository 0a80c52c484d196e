"""Settings a run sets but never reads (grpo_lab/config/unused.py): named in a warning when
the run starts, and a multirun says which of its jobs would train the same run."""

import os
import subprocess

import pytest

from grpo_lab.config.unused import as_run, unused_settings
from grpo_lab.sweep_check import same_runs
from tests.conftest import REPO, TINY, TRAIN_CMD, compose_config

ARMS = sorted(p.stem for p in (REPO / "conf" / "arm").glob("*.yaml"))


def unused(*overrides: str) -> list[str]:
    return [u.line() for u in unused_settings(compose_config(list(overrides)))]


@pytest.mark.parametrize("overrides, line", [
    (["algorithm=ppo", "advantage=group_mean"],
     "advantage.normalization=group_mean has no effect: algorithm.name=ppo takes its advantages from the critic "
     "through GAE"),
    (["algorithm=ppo", "advantage.eps=0"], "advantage.eps=0.0 has no effect: algorithm.name=ppo takes its "
                                           "advantages from the critic through GAE"),
    (["algorithm.vf_coef=0.5"], "algorithm.vf_coef=0.5 has no effect: it is PPO's (GAE, the value loss, the "
                                "critic) and algorithm.name=grpo has no critic"),
    (["algorithm=ppo", "algorithm.vf_coef=0.5"], "algorithm.vf_coef=0.5 has no effect: it weights the shared "
                                                 "value head's loss; algorithm.critic.mode=separate trains its "
                                                 "critic with an optimizer of its own"),
    (["algorithm=ppo_shared", "algorithm.critic.lr=1e-4"], "algorithm.critic.lr=0.0001 has no effect: with "
                                                           "algorithm.critic.mode=shared the value head trains in "
                                                           "the policy's optimizer, at trainer.lr"),
    (["kl.estimator=k1"], "kl.estimator=k1 has no effect: kl.coef=0 computes no KL term (and loads no reference "
                          "model)"),
    (["advantage=group_mean", "advantage.eps=0.01"],
     "advantage.eps=0.01 has no effect: advantage.normalization=group_mean does not take it"),
    (["advantage.pass_k=3"], "advantage.pass_k=3 has no effect: advantage.normalization=group_std does not take it"),
    (["task=gsm8k", "task.seed=3"],
     "task.seed=3 has no effect: it sets up the arithmetic generator; task.name=gsm8k loads its rows in order"),
    (["algorithm.entropy_aggregation=token_mean"],
     "algorithm.entropy_aggregation=token_mean has no effect: algorithm.entropy_coef=0 adds no entropy bonus"),
    (["algorithm.dynamic_sampling.max_rounds=5"],
     "algorithm.dynamic_sampling.max_rounds=5 has no effect: algorithm.dynamic_sampling.enabled=false"),
    (["reward.overlong_penalty=2"], "reward.overlong_penalty=2.0 has no effect: reward.overlong_buffer=0 shapes no "
                                    "reward"),
    (["kl=k3", "kl.horizon=500"], "kl.horizon=500.0 has no effect: kl.target=null keeps the coefficient fixed"),
    (["rollout.max_turns=2"], "rollout.max_turns=2 has no effect: rollout.environment is not set: one turn, no "
                              "episode"),
    (["rollout.dtype=null", "rollout.importance_sampling=token_mask"],
     "rollout.importance_sampling=token_mask has no effect: the training model samples (rollout.dtype=null), so "
     "there is no sampler mismatch to correct"),
])
def test_a_setting_the_run_never_reads_is_named(overrides, line):
    assert unused(*overrides) == [line]


@pytest.mark.parametrize("overrides", [
    ["advantage=group_mean"], ["algorithm=ppo", "algorithm.lam=1.0"], ["algorithm=ppo_shared", "algorithm.vf_coef=0.5"],
    ["algorithm=ppo", "algorithm.critic.lr=1e-4"], ["kl=k1"], ["kl=k3", "kl.placement=reward"],
    ["rollout.dtype=bfloat16", "rollout.importance_sampling=token_mask"],
    ["advantage.eps=0.01"], ["advantage=pass_at_k", "advantage.pass_k=3"], ["task.seed=3"], ["task=tldr"],
    ["task=gsm8k"], ["algorithm=dapo", "algorithm.num_minibatches=2", "algorithm.dynamic_sampling.max_rounds=5"],
    ["algorithm.entropy_coef=0.01", "algorithm.entropy_aggregation=token_mean"],
    ["rollout.environment=calculator", "rollout.max_turns=2"],
])
def test_a_setting_the_run_reads_is_not(overrides):
    assert unused(*overrides) == []


@pytest.mark.parametrize("arm", ARMS)
def test_no_shipped_arm_carries_a_setting_it_never_reads(arm):
    # Two updates a batch, as algo_zoo runs the arms: the ratio leaves 1 from the second on.
    assert unused(f"arm={arm}", "algorithm.num_minibatches=2") == []


EXPERIMENTS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))


def experiment_jobs(experiment: str) -> list[list[str]]:
    """One job per combination of the file's swept values (its first seed only)."""
    import itertools

    from hydra import compose, initialize_config_dir

    from grpo_lab.config.registration import register_configs

    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        composed = compose(config_name="train", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    params = composed.hydra.sweeper.get("params") or {}  # the file's own or those of a file it extends
    axes = [[f"{key}={value}" for value in str(values).split(",")[:1 if key == "trainer.seed" else None]]
            for key, values in params.items()]
    return [[f"experiment={experiment}", *combo] for combo in itertools.product(*axes)]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_no_experiment_file_carries_a_setting_its_runs_never_read(experiment):
    # A setting may go unread in some of a sweep's jobs (max_turns in tools_cpu's no_tool
    # arm) as long as another job reads it; none may be unread by every job.
    from grpo_lab.config.auto_precision import resolve_auto_precision

    unread_by_job = []
    for job in experiment_jobs(experiment):
        cfg = compose_config(job)
        resolve_auto_precision(cfg)  # as the run does first: rollout.dtype=auto becomes a dtype or null
        unread_by_job.append({u.key for u in unused_settings(cfg)})
    assert set.intersection(*unread_by_job) == set()


def test_with_one_on_policy_update_the_policy_loss_shape_has_no_effect():
    # The ratio is exactly 1 (trainer/loop.py): GSPO's and DAPO's clip ranges never act.
    assert [line.split(" has no effect")[0] for line in unused("arm=gspo")] == [
        "algorithm.policy_loss=gspo", "algorithm.epsilon_low=0.0003", "algorithm.epsilon_high=0.0004"]
    assert [line.split(" has no effect")[0] for line in unused("arm=dapo_cpu")] == ["algorithm.epsilon_high=0.28"]
    assert unused("arm=dapo_cpu", "algorithm.num_iterations=2") == []


def test_configs_that_differ_only_in_unused_settings_train_the_same_run():
    def run(*overrides):
        return as_run(compose_config(["paths.output_dir=/tmp/x", *overrides]))

    assert run("arm=ppo_matched") == run("arm=ppo_matched", "advantage.normalization=group_mean")
    assert run("arm=grpo") != run("arm=grpo", "advantage.normalization=group_mean")
    assert run("arm=grpo") == run("arm=grpo", "algorithm.lam=1.0", "kl.estimator=k1")
    assert run("arm=grpo") != run("arm=grpo", "kl=k1")
    assert run("arm=grpo") == run("arm=gspo")  # one on-policy update: the same policy gradient
    assert run("arm=grpo", "algorithm.num_minibatches=2") != run("arm=gspo", "algorithm.num_minibatches=2")
    jobs = [compose_config(["paths.output_dir=/tmp/x", f"arm={arm}", f"advantage.normalization={adv}"])
            for arm in ("grpo", "ppo_matched") for adv in ("group_std", "group_mean")]
    assert same_runs(jobs) == [[2, 3]]


def test_a_sweep_names_its_jobs_that_would_train_the_same_run(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled"}
    result = subprocess.run(
        [*TRAIN_CMD, "-m", *TINY, "trainer.max_steps=1", "logger=local", "~hydra.callbacks.report",
         "arm=grpo,ppo_matched", "advantage.normalization=group_std,group_mean",
         f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    said = [line for line in result.stderr.splitlines() if "would train the same run" in line]
    assert said == ["grpo-lab: warning: jobs 2, 3 (arm=ppo_matched advantage.normalization=group_std; "
                    "arm=ppo_matched advantage.normalization=group_mean) would train the same run: "
                    "advantage.normalization=group_mean has no effect: algorithm.name=ppo takes its advantages "
                    "from the critic through GAE"]
    # Each run says it too, in its own log.
    assert "warning: advantage.normalization=group_mean has no effect" in (tmp_path / "sweep" / "3" / "cli.log").read_text()
    assert "has no effect" not in (tmp_path / "sweep" / "2" / "cli.log").read_text()
