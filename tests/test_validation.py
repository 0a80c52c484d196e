"""Values the schema's types let through but no run can use: one ConfigError each, naming
the key, before anything is loaded."""

import pytest

from grpo_lab.config.validate import validate_config
from grpo_lab.errors import ConfigError
from tests.conftest import compose_config


def validate(*overrides: str) -> None:
    validate_config(compose_config(["paths.output_dir=/tmp/x", *overrides]))


@pytest.mark.parametrize("override, key", [
    ("trainer.lr=nan", "trainer.lr=nan"),
    ("kl.coef=inf", "kl.coef=inf"),
    ("algorithm.epsilon_low=nan", "algorithm.epsilon_low=nan"),
    ("algorithm.epsilon_high=inf", "algorithm.epsilon_high=inf"),
    ("rollout.temperature=nan", "rollout.temperature=nan"),
    ("reward.weights.format=nan", "reward.weights.format=nan"),
    ("reward.weights.format=-inf", "reward.weights.format=-inf"),
    ("trainer.adam_betas=[0.9,nan]", "trainer.adam_betas[1]=nan"),
])
def test_nan_and_inf_are_refused_naming_the_key(override, key):
    # Without this a NaN passes every range check (nan < 0 is false) and the run goes on
    # with null rewards or a NaN learning rate, every update skipped.
    with pytest.raises(ConfigError) as err:
        validate(override)
    assert str(err.value) == f"{key} is not a finite number"


def test_negative_weight_on_a_builtin_reward_is_refused():
    with pytest.raises(ConfigError, match=r"^reward.weights.format=-0.5 would train the policy away from format"):
        validate("reward.weights.format=-0.5")


def test_negative_weight_is_a_penalty_for_a_user_reward():
    validate("+reward.weights.length=-0.01", "+reward.functions.length=tests.helpers:completion_length_reward")
    # A user function registered under a built-in's name is the user's to weight.
    validate("reward.weights.format=-1", "+reward.functions.format=tests.helpers:completion_length_reward")
    validate("reward.weights.format=0")  # logged, not trained on


@pytest.mark.parametrize("value", ["true", "false", "all"])
def test_progress_bar_values(value):
    validate(f"trainer.progress_bar={value}")


@pytest.mark.parametrize("value", ["yes", "1"])
def test_progress_bar_other_values_are_refused(value):
    with pytest.raises(ConfigError, match=r"^trainer.progress_bar=.* is not allowed; allowed: true, false, all$"):
        validate(f"trainer.progress_bar={value}")


def test_checkpoint_intervals_are_not_negative():
    with pytest.raises(ConfigError, match=r"^trainer.checkpoint_every_minutes=-1.0 must be >= 0"):
        validate("trainer.checkpoint_every_minutes=-1")
    with pytest.raises(ConfigError, match=r"^trainer.checkpoint_every=-2 must be >= 0"):
        validate("trainer.checkpoint_every=-2")


def test_every_reward_grpo_lab_ships_is_a_goal_reward():
    from grpo_lab.rewards import REWARD_FUNCTIONS
    from grpo_lab.rewards.registry import GOAL_REWARDS

    shipped = {name for name, fn in REWARD_FUNCTIONS.items() if fn.__module__.startswith("grpo_lab.")}
    assert shipped == set(GOAL_REWARDS)


@pytest.mark.parametrize("overrides, message", [
    (["algorithm.dual_clip_c=1.0"], r"^algorithm.dual_clip_c=1.0 must be > 1"),
    (["algorithm.sapo_tau_neg=0"], r"^algorithm.sapo_tau_neg=0.0 must be > 0$"),
    (["algorithm=ppo", "algorithm.policy_loss=gspo"], r"^algorithm.policy_loss=gspo needs one advantage per completion"),
    (["algorithm.dynamic_sampling.max_rounds=0"], r"^algorithm.dynamic_sampling.max_rounds=0 must be >= 1$"),
    (["reward.overlong_buffer=100"], r"^reward.overlong_buffer=100 must be in \[0, rollout.max_new_tokens=48\]$"),
    (["reward.overlong_penalty=-1"], r"^reward.overlong_penalty=-1.0 must be >= 0"),
    (["kl=k3", "kl.target=0.1"], r"^kl.target=0.1 \(adaptive KL\) needs kl.placement=reward and kl.coef > 0"),
    (["kl=k1", "kl.placement=reward", "kl.target=-1"], r"^kl.target=-1.0 must be > 0$"),
    (["kl=k1", "kl.placement=reward", "kl.target=0.1", "kl.horizon=3"], r"^kl.horizon=3.0 must exceed 0.2 x the 16"),
    (["algorithm.epsilon_low=1.5"], r"^algorithm.epsilon_low=1.5 must be <= 1"),
    (["kl.target_measure=seq"], r"^kl.target_measure='seq' is not allowed; allowed: seq_mean, seq_sum, token_mean"),
    (["algorithm.entropy_aggregation=token"], r"^algorithm.entropy_aggregation='token' is not allowed; allowed: "),
    (["algorithm.group_size=1"], r"^algorithm.group_size=1 must be >= 2 for algorithm.name=grpo: group-relative "),
    (["algorithm=ppo", "algorithm.group_size=0"], r"^algorithm.group_size=0 must be >= 1$"),
    (["arm=ppo_one_sample", "algorithm.dynamic_sampling.enabled=true"],
     r"^algorithm.dynamic_sampling.enabled=true needs algorithm.group_size >= 2 \(got 1\)"),
    (["advantage=pass_at_k", "advantage.pass_k=4"], r"^advantage.pass_k=4 must be in \[1, algorithm.group_size=4\): "),
    (["advantage=pass_at_k", "advantage.pass_k=0"], r"^advantage.pass_k=0 must be in \[1, algorithm.group_size=4\): "),
    # eps = -1 gave the highest reward the advantage -0.2: the run minimized the reward.
    (["advantage.eps=-1"], r"^advantage.eps=-1.0 must be >= 0: added to the std, a negative eps can flip"),
])
def test_arm_settings_out_of_range_are_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(*overrides)


def test_arm_settings_in_range_pass():
    validate("algorithm=dapo", "reward.overlong_buffer=16", "algorithm.mask_truncated=true",
             "algorithm.entropy_coef=0.001")
    validate("advantage=pass_at_k", "advantage.pass_k=3")
    validate("algorithm.policy_loss=cispo", "algorithm.epsilon_low=1.0")  # CISPO: no lower bound
    validate("kl=k1", "kl.placement=reward", "kl.target=0.1")
    validate("kl=k1", "kl.placement=reward", "kl.target=6", "kl.target_measure=seq_sum")  # Ziegler et al.
    validate("algorithm=gspo")
    validate("algorithm.entropy_coef=0.01", "algorithm.entropy_aggregation=token_mean")  # TRL's bonus
    validate("algorithm.policy_loss=cispo", "algorithm.epsilon_low=1", "algorithm.epsilon_high=4")  # TRL's 5.0
    validate("advantage.eps=0")  # a tie gives exactly 0 at every eps


@pytest.mark.parametrize("overrides, message", [
    # top_p=0 keeps no token: every sample of a group the same, nothing learns.
    (["rollout.top_p=0"], r"^rollout.top_p=0.0 must be in \(0, 1\]"),
    (["rollout.top_p=1.5"], r"^rollout.top_p=1.5 must be in \(0, 1\]"),
    (["rollout.top_k=-1"], r"^rollout.top_k=-1 must be >= 0$"),
    (["algorithm=ppo", "algorithm.vf_coef=-0.1"], r"^algorithm.vf_coef=-0.1 must be >= 0"),
    (["algorithm.entropy_coef=-0.01"], r"^algorithm.entropy_coef=-0.01 must be >= 0"),
    (["trainer.max_grad_norm=-1"], r"^trainer.max_grad_norm=-1.0 must be >= 0"),
    (["trainer.warmup_steps=-3"], r"^trainer.warmup_steps=-3 must be >= 0$"),
    # An episode's model tokens add up over its turns: read against one turn's limit, a
    # 3-turn episode was penalized with no turn truncated.
    (["rollout.environment=calculator", "reward.overlong_buffer=8"],
     r"^reward.overlong_buffer=8 does not support rollout.environment=calculator yet"),
    # A shared value head trains only inside the policy's update: its warm-up trained nothing.
    (["algorithm=ppo", "algorithm.critic.mode=shared", "algorithm.critic.warmup_steps=2"],
     r"^algorithm.critic.warmup_steps=2 needs algorithm.critic.mode=separate \(got shared\)"),
    (["advantage=pass_at_k", "advantage.pass_threshold=-0.5"], r"^advantage.pass_threshold=-0.5 must be >= 0"),
    # All weights 0: the run trained on a constant 0 (empty weights were already refused).
    (["reward.weights.correctness_lenient=0", "reward.weights.format=0"],
     r"^reward.weights are all 0 \(correctness_lenient=0.0, format=0.0\): the reward would be a constant 0"),
    # A function without a weight was silently left out of the mix.
    (["+reward.functions.length=tests.helpers:completion_length_reward"],
     r"^reward.functions.length has no weight, so it would never be scored; add \+reward.weights.length=<w>"),
    (["eval.batch_size=0"], r"^eval.batch_size=0 must be >= 1$"),
    (["eval.num_examples=0"], r"^eval.num_examples=0 must be >= 1, or null for the whole held-out set$"),
    (["eval.every=-1"], r"^eval.every=-1 must be >= 0$"),
    (["trainer.max_steps=3", "eval.steps=[0,3]"],
     r"^eval.steps has 0; allowed: steps 1 \.\. trainer.max_steps=3 \(eval.at_start=true scores the untrained policy\)$"),
    (["trainer.max_steps=3", "eval.steps=[4]"], r"^eval.steps has 4; allowed: steps 1 \.\. trainer.max_steps=3"),
    (["eval.num_samples=-2"], r"^eval.num_samples=-2 must be >= 0$"),
    (["eval.max_new_tokens=0"], r"^eval.max_new_tokens=0 must be >= 1, or null"),
    # These were tracebacks from numpy or torch once the model had loaded.
    (["trainer.seed=-1"], r"^trainer.seed=-1 must be in \[0, 4294967295\]$"),
    (["trainer.seed=4294967296"], r"^trainer.seed=4294967296 must be in \[0, 4294967295\]$"),
    (["trainer.adam_betas=[1.5,0.99]"], r"^trainer.adam_betas=\[1.5, 0.99\] must be two numbers in \[0, 1\)$"),
    (["trainer.adam_betas=[0.9]"], r"^trainer.adam_betas=\[0.9\] must be two numbers in \[0, 1\)$"),
    (["trainer.weight_decay=-1"], r"^trainer.weight_decay=-1.0 must be >= 0.0$"),
    # Named as itself, not as the reward.overlong_buffer bound it sets.
    (["rollout.max_new_tokens=-5"], r"^rollout.max_new_tokens=-5 must be >= 1$"),
    (["+help=trainer.lr"], r"^help='trainer.lr' only narrows --help"),
    # bf16 path settings.
    (["rollout.dtype=int8"], r"^rollout.dtype='int8' is not allowed; allowed: auto, bfloat16, float16, float32$"),
    (["rollout=vllm", "rollout.dtype=bfloat16"], r"^rollout.dtype=bfloat16 is for rollout.backend=hf"),
    (["rollout.importance_sampling=clip"], r"^rollout.importance_sampling='clip' is not allowed; allowed: none,"),
    (["rollout.importance_sampling_max=0"], r"^rollout.importance_sampling_max=0.0 must be > 0"),
    (["rollout.importance_sampling_min=3"], r"^rollout.importance_sampling_min=3.0 must be >= 0 and below"),
])
def test_values_that_ran_silently_are_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(*overrides)


def test_the_edges_of_those_ranges_pass():
    validate("rollout.top_p=1.0", "rollout.top_k=0", "trainer.max_grad_norm=0", "trainer.warmup_steps=0")
    validate("rollout.top_p=0.01", "rollout.top_k=5", "algorithm.entropy_coef=0", "eval.num_examples=1",
             "eval.batch_size=1", "advantage=pass_at_k", "advantage.pass_threshold=0")
    validate("algorithm=ppo", "algorithm.vf_coef=0")
    # A weight of 0 logs a function; the run trains on the others, or on DAPO's overlong penalty.
    validate("reward.weights.format=0")
    validate("reward.weights.correctness_lenient=0", "reward.weights.format=0", "reward.overlong_buffer=8")
    validate("+reward.functions.length=tests.helpers:completion_length_reward", "+reward.weights.length=0.5")
    validate("trainer.seed=0")
    validate("trainer.seed=4294967295")


