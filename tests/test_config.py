"""Every option of every group composes; mistakes fail at compose time, naming the key."""

import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from grpo_lab.config.validate import validate_config
from grpo_lab.tracking.manifest import cpu_bf16_flags
from grpo_lab.errors import ConfigError
from tests.conftest import CONF_DIR, compose_config

# `arm` and `precision` options are `# @package _global_` bundles across groups: tested on
# their own below.
GROUPS = sorted(
    p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in ("hydra", "experiment", "arm", "precision")
)
ARMS = sorted(f.stem for f in (CONF_DIR / "arm").glob("*.yaml"))
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((CONF_DIR / g).glob("*.yaml"))]


def test_every_group_has_options():
    assert set(GROUPS) >= {"model", "task", "reward", "advantage", "kl", "algorithm", "rollout", "trainer", "logger"}
    assert len(OPTIONS) >= 20


@pytest.mark.parametrize("group, option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes(group, option):
    cfg = compose_config([f"{group}={option}", "paths.output_dir=/tmp/x"])
    assert cfg[group] is not None


@pytest.mark.parametrize("arm", ARMS)
def test_every_arm_composes_and_passes_the_config_check(arm):
    # 512 new tokens: room for the full DAPO arm's 256-token overlong buffer.
    cfg = compose_config([f"arm={arm}", "rollout.max_new_tokens=512", "paths.output_dir=/tmp/x"])
    validate_config(cfg)
    # The PPO arms of grpo_vs_ppo (matched, as practiced) take their advantages from a critic.
    assert cfg.algorithm.name == ("ppo" if arm.startswith("ppo_") else "grpo")


@pytest.mark.parametrize("precision", sorted(f.stem for f in (CONF_DIR / "precision").glob("*.yaml")))
def test_every_precision_composes_and_passes_the_config_check(precision):
    cfg = compose_config([f"precision={precision}", "paths.output_dir=/tmp/x"])
    validate_config(cfg)  # replaces precision=auto's marks by what this machine runs
    bf16_path, fp32 = ("bfloat16", "bf16"), (None, "no")
    expected = {"fp32": fp32, "bf16": bf16_path, "auto": bf16_path if cpu_bf16_flags() else fp32}
    assert (cfg.rollout.dtype, cfg.trainer.mixed_precision) == expected[precision]
    # auto leaves the weights' dtype to the trainer group (float32 on a CPU).
    assert cfg.trainer.dtype == ("auto" if precision == "auto" else "float32")


def test_an_arm_sets_keys_of_several_groups():
    cfg = compose_config(["arm=dr_grpo", "paths.output_dir=/tmp/x"])
    assert (cfg.advantage.normalization, cfg.algorithm.loss_aggregation) == ("group_mean", "dr_grpo")


def test_defaults_are_the_cpu_grpo_experiment():
    cfg = compose_config(["paths.output_dir=/tmp/x"])
    assert cfg.model.path == "embedded:SmolLM2-135M-Instruct"
    assert cfg.algorithm.name == "grpo" and cfg.task.name == "arithmetic"
    assert cfg.kl.coef == 0.0
    # Held-out accuracy before and after training: the default run ends with a result.
    assert cfg.eval.at_start and cfg.eval.at_end and cfg.eval.every == 0


def test_group_options_set_what_they_say():
    cfg = compose_config(["advantage=group_mean", "kl=k2", "reward=brief", "paths.output_dir=/tmp/x"])
    assert cfg.advantage.normalization == "group_mean"
    assert (cfg.kl.coef, cfg.kl.estimator) == (0.04, "k2")
    assert dict(cfg.reward.weights) == {"correctness": 1.0, "format": 1.0}


def test_typo_in_key_fails_naming_it():
    with pytest.raises(ConfigCompositionException) as err:
        compose_config(["kl.cof=0.1"])
    assert "cof" in str(err.value.__cause__ or err.value)


def test_wrong_type_fails_naming_key():
    with pytest.raises((ConfigCompositionException, ValidationError)) as err:
        compose_config(["trainer.max_steps=abc"])
    assert "max_steps" in str(err.value) + str(err.value.__cause__)


def test_unknown_option_fails():
    with pytest.raises(ConfigCompositionException, match="advantage"):
        compose_config(["advantage=zscore"])


def test_reward_weights_are_a_dict_that_merges():
    cfg = compose_config(["reward.weights.format=0.5", "+reward.weights.correctness=2.0", "paths.output_dir=/tmp/x"])
    assert dict(cfg.reward.weights) == {"correctness_lenient": 1.0, "format": 0.5, "correctness": 2.0}


def test_help_lists_groups_and_options():
    out = subprocess.run(
        [sys.executable, "-m", "grpo_lab.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for group, option in OPTIONS:
        assert group in out and option in out
    # Experiment files are the experiment group's options; the folders of committed
    # results below them are not groups.
    assert "experiment: adv_norm, adv_norm_cpu, " in out
    assert "experiment/results" not in out
    # The names each key takes, from the registries.
    from grpo_lab.algos import LOSS_AGGREGATIONS, POLICY_LOSSES

    assert f"algorithm.policy_loss: {POLICY_LOSSES.allowed()}" in out
    assert f"algorithm.loss_aggregation: {LOSS_AGGREGATIONS.allowed()}" in out
    assert ("advantage.normalization: batch_std, group_mean, group_std, pass_at_k, reinforce_plus_plus, "
            "reinforce_plus_plus_baseline, rloo, or package.module:function") in out



@pytest.mark.parametrize("option", ["none", "k1", "k2", "k3"])
def test_kl_bias_correction_is_off_unless_asked(option):
    cfg = compose_config([f"kl={option}", "paths.output_dir=/tmp/x"])
    assert cfg.kl.bias_correction is False
    assert compose_config([f"kl={option}", "kl.bias_correction=true"]).kl.bias_correction is True


def test_kl_bias_correction_with_the_penalty_in_the_reward_is_one_clear_error():
    cfg = compose_config(["kl=k3", "kl.placement=reward", "kl.bias_correction=true"])
    with pytest.raises(ConfigError, match=r"^kl.bias_correction=true needs kl.placement=loss \(got 'reward'\)"):
        validate_config(cfg)
