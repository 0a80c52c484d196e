"""Synthetic arithmetic: the brief's "What is 2 + 3?" family, seeded, with a difficulty knob.

Difficulty comes from the operand range, the number of operands and the operators.
The same seed always gives the same problems, on any machine.
"""

from __future__ import annotations

from grpo_lab.errors import ConfigError

import random
from typing import Any

from datasets import Dataset

from grpo_lab.tasks.base import register_task

OPERATORS = ("+", "-", "*")


def make_problem(rng: random.Random, min_operand: int, max_operand: int,
                 num_operands: int, operations: list[str]) -> dict[str, str]:
    operands = [rng.randint(min_operand, max_operand) for _ in range(num_operands)]
    expression = str(operands[0])
    for operand in operands[1:]:
        expression = f"{expression} {rng.choice(operations)} {operand}"
    # The expression is ours (digits and + - * only), so eval is safe and applies the
    # usual precedence that the model has learned.
    value = eval(expression, {"__builtins__": {}}, {})  # noqa: S307
    return {"question": f"What is {expression}?", "answer": str(value)}


@register_task("arithmetic")
def arithmetic_task(cfg: Any) -> Dataset:
    unknown = [op for op in cfg.operations if op not in OPERATORS]
    if unknown:
        raise ConfigError(
            f"task.operations has {unknown}; allowed: {', '.join(OPERATORS)}"
        )
    if cfg.num_operands < 2:
        raise ConfigError(f"task.num_operands={cfg.num_operands}; must be >= 2")
    if cfg.min_operand > cfg.max_operand:
        raise ConfigError(
            f"task.min_operand={cfg.min_operand} > task.max_operand={cfg.max_operand}"
        )
    rng = random.Random(cfg.seed)
    size = cfg.num_examples if cfg.num_examples is not None else 10_000
    rows = [
        make_problem(rng, cfg.min_operand, cfg.max_operand, cfg.num_operands, list(cfg.operations))
        for _ in range(size)
    ]
    return Dataset.from_list(rows)
