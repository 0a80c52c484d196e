"""Demonstrations for a warm start (``warm_start.demonstrations``): the assistant turns of
a good episode, written from a dataset row.

A demonstration is a function ``row -> list[str]``: one text per model turn, without
the end-of-turn token (the warm start adds it, as sampling ends a turn). In an episode
with ``rollout.environment`` the environment answers each turn (the tool really runs);
without one, a demonstration is a single turn. Built-ins register under a name; a user's
is named by import path (``warm_start.demonstrations=my_pkg.demos:worked``).
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from grpo_lab.errors import ConfigError
from grpo_lab.registry import Registry

Demonstration = Callable[[dict[str, Any]], list[str]]
DEMONSTRATIONS: Registry[Demonstration] = Registry("demonstrations", "warm_start.demonstrations", user_code=True)

# Arithmetic questions read "What is 47 * 86?" (grpo_lab/tasks/arithmetic.py).
_EXPRESSION = re.compile(r"^What is (.+)\?$")


def expression_of(row: dict[str, Any], name: str) -> str:
    match = _EXPRESSION.match(str(row.get("question", "")).strip())
    if match is None:
        raise ConfigError(f"warm_start.demonstrations={name} needs arithmetic questions ('What is <expression>?'); "
                          f"this row's question is {row.get('question')!r}")
    return match.group(1)


def tagged(reasoning: str, answer: str) -> str:
    """The default system prompt's format (grpo_lab/config/schema.py)."""
    return f"<reasoning>{reasoning}</reasoning>\n<answer>{answer}</answer>"


@DEMONSTRATIONS.register("tagged_answer")
def tagged_answer(row: dict[str, Any]) -> list[str]:
    """One turn: the expression and its value as the reasoning, then the answer, in tags."""
    return [tagged(f"{expression_of(row, 'tagged_answer')} = {row['answer']}", row["answer"])]


@DEMONSTRATIONS.register("calculator")
def calculator_call(row: dict[str, Any]) -> list[str]:
    """Two turns with ``rollout.environment=calculator``: the expression sent to the
    ``calculate`` tool in the Hermes format, then the tagged answer after its result."""
    call = json.dumps({"name": "calculate", "arguments": {"expression": expression_of(row, "calculator")}})
    return [f"<tool_call>{call}</tool_call>", tagged(f"The calculator gives {row['answer']}.", row["answer"])]


def demonstrate(name: str, row: dict[str, Any]) -> list[str]:
    """The turns of ``name``'s demonstration of ``row``, checked to be a list of texts."""
    turns = DEMONSTRATIONS.get_entry(name)(row)
    if not isinstance(turns, (list, tuple)) or not turns or not all(isinstance(t, str) for t in turns):
        raise ConfigError(f"warm_start.demonstrations={name} returned {type(turns).__name__}; a demonstration "
                          "returns a non-empty list of turn texts")
    return list(turns)
