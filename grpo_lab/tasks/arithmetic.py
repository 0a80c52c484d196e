"""Synthetic arithmetic: the brief's "What is 2 + 3?" family, seeded, with a difficulty knob.

Difficulty comes from the operand range, the number of operands and the operators.
The same seed always gives the same problems, on any machine.

Train and test are disjoint by construction: each distinct problem belongs to the test
split when a hash of its *family* falls below ``heldout_fraction``, so no held-out
problem can ever be drawn for training, whatever the seeds and sizes. A family is the
problems that use the same numbers and operators and have the same answer: ``3 + 5``
and its commutative twin ``5 + 3`` share one and always land on the same side, so a
held-out ``+`` problem is never a training problem written the other way round. (Small settings
have few distinct problems: operands 0-10 with + and - give 242, which 5000 training rows
cover many times over; a second generator seed would re-draw the training problems.)
The training split draws with replacement, as a prompt stream does; the test split holds
each problem once.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from typing import Any, Iterator

from datasets import Dataset

from grpo_lab.errors import ConfigError
from grpo_lab.tasks.base import register_task

OPERATORS = ("+", "-", "*")
SPLITS = ("train", "test")
# Spaces up to this many distinct problems are enumerated for the test split (every
# held-out problem is found); larger ones are sampled.
ENUMERATE_LIMIT = 200_000
# Python's parser (which solves a problem) fails on an expression of about a thousand
# operands; a prompt far shorter than that is already beyond these models.
MAX_OPERANDS = 100


def solve(expression: str) -> str:
    # The expression is ours (digits and + - * only), so eval is safe and applies the
    # usual precedence that the model has learned.
    return str(eval(expression, {"__builtins__": {}}, {}))  # noqa: S307


def expression_of(operands: list[int], operators: list[str]) -> str:
    expression = str(operands[0])
    for operator, operand in zip(operators, operands[1:]):
        expression = f"{expression} {operator} {operand}"
    return expression


def family_of(expression: str) -> str:
    """The problem's family key: its numbers and its operators, each sorted, and its
    answer. Rearrangements with the same result (``a + b`` and ``b + a``; ``a + b - c``
    and ``b + a - c``) share a key; ``a - b`` and ``b - a`` differ unless a = b."""
    tokens = expression.split()
    numbers = sorted(int(t) for t in tokens[::2])
    operators = sorted(tokens[1::2])
    return f"{numbers}|{operators}|{solve(expression)}"


def is_heldout(expression: str, heldout_fraction: float) -> bool:
    """Whether a problem belongs to the test split: a stable hash (not Python's salted
    ``hash``) of its family (``family_of``), read as a number in [0, 1), below the
    fraction."""
    digest = hashlib.sha256(family_of(expression).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < heldout_fraction


def make_problem(rng: random.Random, min_operand: int, max_operand: int,
                 num_operands: int, operations: list[str]) -> str:
    operands = [rng.randint(min_operand, max_operand) for _ in range(num_operands)]
    operators = [rng.choice(operations) for _ in range(num_operands - 1)]
    return expression_of(operands, operators)


def all_problems(cfg: Any) -> Iterator[str]:
    operands = range(cfg.min_operand, cfg.max_operand + 1)
    for values in itertools.product(operands, repeat=cfg.num_operands):
        for operators in itertools.product(list(cfg.operations), repeat=cfg.num_operands - 1):
            yield expression_of(list(values), list(operators))


def space_size(cfg: Any) -> int:
    return (cfg.max_operand - cfg.min_operand + 1) ** cfg.num_operands * len(cfg.operations) ** (cfg.num_operands - 1)


def _check(cfg: Any) -> None:
    unknown = [op for op in cfg.operations if op not in OPERATORS]
    if unknown:
        raise ConfigError(f"task.operations has {unknown}; allowed: {', '.join(OPERATORS)}")
    if not 2 <= cfg.num_operands <= MAX_OPERANDS:
        raise ConfigError(f"task.num_operands={cfg.num_operands}; must be in [2, {MAX_OPERANDS}]")
    if cfg.min_operand > cfg.max_operand:
        raise ConfigError(f"task.min_operand={cfg.min_operand} > task.max_operand={cfg.max_operand}")
    if cfg.split not in SPLITS:
        raise ConfigError(f"task.split={cfg.split!r} for arithmetic; allowed: {', '.join(SPLITS)}")
    if not 0 < cfg.heldout_fraction < 1:
        raise ConfigError(f"task.heldout_fraction={cfg.heldout_fraction}; must be > 0 and < 1")


def training_problems(cfg: Any, rng: random.Random, size: int) -> list[str]:
    problems: list[str] = []
    # Rejection keeps the draw uniform over the training problems; the bound only stops
    # a loop on a (nearly) all-held-out space.
    for _ in range(size * 100 + 1000):
        if len(problems) == size:
            break
        expression = make_problem(rng, cfg.min_operand, cfg.max_operand, cfg.num_operands, list(cfg.operations))
        if not is_heldout(expression, cfg.heldout_fraction):
            problems.append(expression)
    if not problems:
        raise ConfigError(f"task.heldout_fraction={cfg.heldout_fraction} leaves no training problems")
    return problems


def heldout_problems(cfg: Any, rng: random.Random, size: int) -> list[str]:
    if space_size(cfg) <= ENUMERATE_LIMIT:
        problems = [e for e in all_problems(cfg) if is_heldout(e, cfg.heldout_fraction)]
        rng.shuffle(problems)
        return problems[:size]
    seen: dict[str, None] = {}
    for _ in range(size * 100):
        if len(seen) == size:
            break
        expression = make_problem(rng, cfg.min_operand, cfg.max_operand, cfg.num_operands, list(cfg.operations))
        if is_heldout(expression, cfg.heldout_fraction):
            seen.setdefault(expression)
    return list(seen)


@register_task("arithmetic")
def arithmetic_task(cfg: Any) -> Dataset:
    _check(cfg)
    rng = random.Random(cfg.seed)
    size = cfg.num_examples if cfg.num_examples is not None else 10_000
    draw = training_problems if cfg.split == "train" else heldout_problems
    rows = [{"question": f"What is {e}?", "answer": solve(e)} for e in draw(cfg, rng, size)]
    return Dataset.from_list(rows)
