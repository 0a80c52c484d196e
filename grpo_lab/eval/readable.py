"""Held-out scores as a person reads them, for what the programs print.

The records keep every ``eval/...`` metric as a float; the summary a run prints says
``held-out accuracy 43.5% -> 65.2% (46 problems, greedy)``: shares of problems in percent,
counts as integers, each measure with how it was taken (greedy, or n samples per problem),
before training -> the latest evaluation when both exist.
"""

from __future__ import annotations

import math
import re
from typing import Callable, Mapping

# Not printed: the count goes into every line, the time is a cost, and the lengths of
# right and wrong answers stay in the records (the mean length is printed).
_NOT_SHOWN = ("num_examples", "time", "mean_length_correct", "mean_length_wrong")


def number(value: float) -> str:
    """A float that holds a whole number as an integer (``46``), others to 4 digits."""
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}%"


def _score(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def _tokens(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f}"


def _measure(name: str, samples: int | None) -> tuple[str, Callable[[float], str], str, str]:
    """(label, how a value is written, its unit, how it was taken) of ``eval/<name>``."""
    drawn = f"{samples} samples each" if samples else "sampled"
    if name == "accuracy":
        return "accuracy", _percent, "", "greedy"
    if re.fullmatch(r"pass@\d+", name):
        return name, _percent, "", drawn
    if match := re.fullmatch(r"mean@(\d+)", name):
        return "right answers among samples", _percent, "", f"{match.group(1)} samples each"
    if name == "reward":
        return "reward", _score, "", "greedy"
    if name.startswith("rewards/"):
        return f"reward {name.split('/', 1)[1]}", _score, "", "greedy"
    if match := re.fullmatch(r"reward_mean@(\d+)", name):
        return "reward over samples", _score, "", f"{match.group(1)} samples each"
    if name == "mean_length":
        return "mean length", _tokens, " tokens", "greedy"
    return name, number, "", ""


def _shown(names: list[str]) -> list[str]:
    """The measures a line is printed for: every one but pass@k between 1 and the largest
    k (the records keep them all)."""
    ks = sorted(int(n[5:]) for n in names if re.fullmatch(r"pass@\d+", n))
    middle = {f"pass@{k}" for k in ks[1:-1]}
    return [n for n in names if n not in _NOT_SHOWN and n not in middle]


def heldout_lines(end: Mapping[str, float], start: Mapping[str, float] | None = None) -> list[str]:
    """One line per held-out measure, ``held-out <measure> <start> -> <end> (<n> problems,
    <how>)``. ``end``: the latest evaluation's metrics, ``start``: those before training,
    each keyed ``eval/<name>`` (either may be empty)."""
    start = start or {}
    names: list[str] = []
    for key in [*start, *end]:
        name = key.split("/", 1)[1] if key.startswith("eval/") else None
        if name and name not in names:
            names.append(name)
    samples = [int(n[5:]) for n in names if re.fullmatch(r"mean@\d+", n)]
    lines = []
    for name in _shown(names):
        label, write, unit, how = _measure(name, samples[0] if samples else None)
        before, after = start.get(f"eval/{name}"), end.get(f"eval/{name}")
        if before is not None and after is not None:
            values = f"{write(before)} -> {write(after)}{unit}"
        elif after is not None:
            values = f"{write(after)}{unit}"
        else:
            values = f"before training {write(before)}{unit}"
        counts = [x for x in (start.get("eval/num_examples"), end.get("eval/num_examples")) if x is not None]
        problems = (f"{number(counts[0])} -> {number(counts[-1])}" if counts and counts[0] != counts[-1]
                    else number(counts[0]) if counts else "")
        notes = ", ".join(x for x in (f"{problems} problems" if problems else "", how) if x)
        lines.append(f"held-out {label} {values}" + (f" ({notes})" if notes else ""))
    return lines
