"""The comparison a sweep declared: reference arm, outcome estimator, hypothesis, margin,
alpha, power and analysis, read back from its runs.

An experiment file declares it under ``comparison:`` (schema ``ComparisonConfig`` in
``grpo_lab/config/schema.py``) before anything runs; every run's ``config.yaml`` then
holds it, and the report reads it from there, so the verdict is the one registered and
never one picked after seeing the data. Folders recorded before the schema had it (the
committed sweeps) take the settings from ``grpo-lab-compare``'s command line, and the
report says which keys came from where.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from grpo_lab.analysis.verdicts import EQUIVALENCE, HIGHER, HYPOTHESES, LOWER, NON_INFERIORITY
from grpo_lab.config.schema import ComparisonConfig

OUTCOMES = ("last", "last_k", "mean_at_n")
ANALYSES = ("seeds", "problems")
KEYS = tuple(f.name for f in dataclasses.fields(ComparisonConfig))


@dataclass(frozen=True)
class Comparison:
    """A checked comparison (the fields of ``ComparisonConfig``) and where each key came
    from: ``declared`` (the runs' config), ``command_line``; the rest are defaults."""

    reference: str | None
    metric: str | None
    outcome: str
    last_k: int
    hypothesis: str
    margin: float | None
    alpha: float
    power: float
    analysis: str
    higher_is_better: bool
    declared: tuple[str, ...] = ()
    command_line: tuple[str, ...] = ()

    @property
    def direction(self) -> str:
        return HIGHER if self.higher_is_better else LOWER


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"comparison.{key}={value!r} must be a number")
    return float(value)


def comparison_from(values: Mapping[str, Any], declared: Sequence[str] = (),
                    command_line: Sequence[str] = ()) -> Comparison:
    """The checked comparison of ``values`` (keys of ``ComparisonConfig``; missing keys take
    its defaults). Each bad value is a one-line ValueError naming the key."""
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise ValueError(f"comparison.{unknown[0]} is not a comparison setting (known: {', '.join(KEYS)})")
    merged = {**dataclasses.asdict(ComparisonConfig()), **values}
    if merged["outcome"] not in OUTCOMES:
        raise ValueError(f"comparison.outcome={merged['outcome']!r} must be one of {', '.join(OUTCOMES)}")
    if merged["analysis"] not in ANALYSES:
        raise ValueError(f"comparison.analysis={merged['analysis']!r} must be one of {', '.join(ANALYSES)}")
    if merged["hypothesis"] not in HYPOTHESES:
        raise ValueError(f"comparison.hypothesis={merged['hypothesis']!r} must be one of {', '.join(HYPOTHESES)}")
    last_k = merged["last_k"]
    if isinstance(last_k, bool) or not isinstance(last_k, int) or last_k < 1:
        raise ValueError(f"comparison.last_k={last_k!r} must be a whole number >= 1")
    alpha, power = _number("alpha", merged["alpha"]), _number("power", merged["power"])
    if not 0 < alpha < 0.5:
        raise ValueError(f"comparison.alpha={alpha!r} must lie in (0, 0.5)")
    if not 0.5 <= power < 1:
        raise ValueError(f"comparison.power={power!r} must lie in [0.5, 1)")
    margin = merged["margin"]
    if margin is not None:
        margin = _number("margin", margin)
        if margin <= 0:
            raise ValueError(f"comparison.margin={margin!r} must be > 0 (in outcome units), or null for none")
    hypothesis = merged["hypothesis"]
    if hypothesis in (NON_INFERIORITY, EQUIVALENCE) and margin is None:
        raise ValueError(f"comparison.hypothesis={hypothesis} needs comparison.margin (the largest difference "
                         "that does not matter, in outcome units)")
    reference = merged["reference"]
    if hypothesis == NON_INFERIORITY and reference is None:
        raise ValueError("comparison.hypothesis=non_inferiority needs comparison.reference (the arm the others "
                         "must not fall behind)")
    if reference is not None and not isinstance(reference, str):
        reference = str(reference)
    metric = merged["metric"]
    if metric is not None and (not isinstance(metric, str) or not metric):
        raise ValueError(f"comparison.metric={metric!r} must be a metric name (e.g. eval/accuracy) or null")
    if not isinstance(merged["higher_is_better"], bool):
        raise ValueError(f"comparison.higher_is_better={merged['higher_is_better']!r} must be true or false")
    return Comparison(reference=reference, metric=metric, outcome=merged["outcome"], last_k=last_k, hypothesis=hypothesis,
                      margin=margin, alpha=alpha, power=power, analysis=merged["analysis"],
                      higher_is_better=merged["higher_is_better"], declared=tuple(declared),
                      command_line=tuple(command_line))


def declared_settings(configs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The ``comparison`` block the runs' configs hold (``{run: config}``); runs recorded
    before the schema had one hold none and are not asked. Runs of one report must agree:
    a key set differently in two runs is a ValueError naming the key and both runs."""
    seen: dict[str, tuple[str, Any]] = {}
    for run, config in configs.items():
        block = config.get("comparison")
        if not block:
            continue
        for key in sorted(set(block) | set(seen)):
            value = block.get(key)
            if key in seen and seen[key][1] != value:
                raise ValueError(f"runs disagree on comparison.{key}: {seen[key][1]!r} in {seen[key][0]}, "
                                 f"{value!r} in {run}")
            seen.setdefault(key, (run, value))
    return {key: value for key, (_, value) in seen.items()}


def resolve_comparison(configs: Mapping[str, Mapping[str, Any]], command_line: Mapping[str, Any] | None = None
                       ) -> Comparison:
    """The comparison of a report: what the runs declared, with the keys given on the
    command line (``command_line``; None values ignored) taking precedence."""
    declared = declared_settings(configs)
    given = {k: v for k, v in (command_line or {}).items() if v is not None}
    return comparison_from({**declared, **given}, declared=sorted(declared), command_line=sorted(given))


def match_reference(reference: str, variants: Sequence[str]) -> str:
    """The variant ``reference`` names: a whole variant label (``advantage=group_std,
    algorithm=ppo``), one of its ``key=value`` parts (``algorithm=ppo``) or a value
    (``ppo``). It must name exactly one variant."""
    if reference in variants:
        return reference
    found = [v for v in variants
             if any(reference in (part, part.partition("=")[2]) for part in v.split(","))]
    if len(found) != 1:
        what = "no variant" if not found else f"{len(found)} variants ({', '.join(found)})"
        raise ValueError(f"comparison.reference={reference!r} names {what}; the variants: {', '.join(variants)}")
    return found[0]


def describe(comparison: Comparison, reference: str | None, points: bool) -> str:
    """One paragraph for the report: the comparison and where it came from."""
    from grpo_lab.analysis.verdicts import in_units

    defaults = dataclasses.replace(comparison_from({}), declared=comparison.declared)
    if comparison.declared and not comparison.command_line and comparison == defaults:
        source = ("the runs' config holds the defaults (no comparison declared): superiority of every pair, "
                  "paired over seeds")
    elif comparison.declared:
        source = "declared in the runs' config (`comparison:`)"
        if comparison.command_line:
            source += f", changed on the command line ({', '.join(comparison.command_line)})"
    elif comparison.command_line:
        source = (f"given on the command line ({', '.join(comparison.command_line)}) since the runs' config "
                  "declares none")
    else:
        source = "none declared, so the defaults: superiority of every pair, paired over seeds"
    margin = "none" if comparison.margin is None else in_units(comparison.margin, points)
    return (f"Comparison, {source}: reference `{reference or 'none (every pair)'}`, hypothesis "
            f"`{comparison.hypothesis}`, margin {margin}, alpha {comparison.alpha:g}, power "
            f"{100 * comparison.power:.0f}%, analysis `{comparison.analysis}`, "
            f"{'higher' if comparison.higher_is_better else 'lower'} is better.")
