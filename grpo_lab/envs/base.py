"""Environments for multi-turn rollouts: the one interface, and its registry.

An episode starts from a dataset row. The model speaks (one assistant turn); the
environment answers with an observation (a tool's result, feedback) or ends the episode
with its reward. The rollout (grpo_lab/rollout/multi_turn.py) owns the limits (turns,
tokens) and the tokens: an environment deals in text only.

The interface is the common part of TRL's environments (``reset`` from a row, tools as
functions), SkyRL-Gym's ``BaseTextEnv`` (``init``/``step`` with messages in and out) and
verl's tools and interactions::

    class MyEnv(Environment):
        def reset(self, prompt, row):      # -> the conversation the model first sees
            ...
        def step(self, text):              # the model's turn -> Step
            ...

Built-in environments register under a name (``rollout.environment=calculator``); a
user's is named by import path (``rollout.environment=my_pkg.envs:MyEnv``), built with
no arguments, once per episode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from grpo_lab.errors import ConfigError
from grpo_lab.registry import Registry

ENVIRONMENTS: Registry[type] = Registry("environment", "rollout.environment", user_code=True)


@dataclass
class Step:
    """What an environment answers to one model turn.

    ``observation``: the message the model reads next (``{"role": "tool" | "user",
    "content": ...}``), None when the episode ends. ``reward``: the episode's reward,
    read when it ends (``done`` or a limit). ``info``: counters summed into the step's
    metrics (``tool_calls``, ``tool_errors``)."""

    observation: dict[str, str] | None = None
    done: bool = False
    reward: float = 0.0
    info: dict[str, float] = field(default_factory=dict)


class Environment:
    """One episode. Subclasses override :meth:`reset` and :meth:`step`."""

    def reset(self, prompt: list[dict[str, str]], row: dict[str, Any]) -> list[dict[str, str]]:
        """The conversation the model first sees: the task's ``prompt`` (chat messages),
        maybe with a system message that lists the tools. ``row``: the dataset row's
        other columns (the answer, say)."""
        self.row = row
        return list(prompt)

    def step(self, text: str) -> Step:
        raise NotImplementedError

    def final_reward(self) -> float:
        """The reward of an episode cut by a limit (turns, tokens) before it ended."""
        return 0.0


def build_environment(name: str) -> Environment:
    """A fresh environment: a registered name, or ``package.module:Class``."""
    env = ENVIRONMENTS.get_entry(name)()
    if not hasattr(env, "reset") or not hasattr(env, "step"):
        raise ConfigError(f"rollout.environment={name!r} built {type(env).__name__}, which has no reset/step; "
                          "an environment subclasses grpo_lab.envs.Environment")
    return env
