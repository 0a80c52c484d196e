"""Reward functions by name.

A reward function has TRL's signature::

    f(prompts, completions, **dataset_columns) -> list[float | None]

``completions`` are conversational (``[[{"role": "assistant", "content": ...}]]``)
when prompts are chat messages, as in TRL, so an existing TRL reward function drops in:
name it in ``reward.functions`` by import path (``my_pkg.rewards:my_fn``). ``None``
means "not applicable to this sample".
"""

from __future__ import annotations

from typing import Any, Callable

from grpo_lab.errors import ConfigError
from grpo_lab.registry import Registry, import_object

RewardFn = Callable[..., list[Any]]
# User functions come in by import path under their own name (reward.functions.<name>),
# so this registry itself takes names only.
REWARD_FUNCTIONS: Registry[RewardFn] = Registry("reward function", "reward.weights")
# The rewards grpo-lab ships (builtin.py, summary.py). Each scores what its task asks for,
# higher is better (the right answer, the tags, overlap with the reference summary, the
# reference's length, an episode's own score, a tool call that ran), so a negative weight
# would train the policy away from the task: the config check refuses one.
GOAL_REWARDS = ("correctness", "correctness_lenient", "format", "rouge_l", "summary_length", "environment",
                "tool_call")


register_reward = REWARD_FUNCTIONS.register


def resolve_reward(name: str, import_paths: dict[str, str] | None = None) -> RewardFn:
    """A registered reward by name, or a user function named in ``import_paths``."""
    import_paths = import_paths or {}
    if name in import_paths:
        fn = import_object(import_paths[name], f"reward.functions.{name}")
        if not callable(fn):
            raise ConfigError(f"reward.functions.{name}={import_paths[name]!r} is not callable")
        return fn
    if name in REWARD_FUNCTIONS:
        return REWARD_FUNCTIONS[name]
    allowed = sorted(REWARD_FUNCTIONS) + sorted(import_paths)
    raise ConfigError(
        f"unknown reward {name!r} in reward.weights; allowed: {', '.join(allowed)} "
        "(or add reward.functions.<name>='package.module:function')"
    )
