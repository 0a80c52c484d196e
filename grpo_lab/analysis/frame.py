"""Runs -> one tidy pandas frame: a row per (run, step, metric).

Every source (a local run folder, a local multirun folder, the W&B API) is first turned
into ``RunRecord``s; this module is the one place that turns those into a frame, so the
same analysis works whatever the runs were read from.

Columns: ``run`` (unique label), ``variant`` (what distinguishes the run from the others,
seed excluded), ``seed``, one column per overridden key (``advantage``, ``kl.coef``,
...), ``step``, ``metric``, ``value``. A run that did not override a key gets the value
it ran with: the option Hydra chose for a group (``algorithm=grpo``), else the key's
value in its config; so runs from different sweeps compare by what they really ran.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import pandas as pd

from grpo_lab.config.difference import allowed_to_differ

# Keys whose values are repetitions of one variant, not variants.
SEED_KEYS = ("trainer.seed", "seed")
DEFAULT_VALUE = "default"
BASE_COLUMNS = ["run", "variant", "seed", "step", "metric", "value"]


@dataclass
class RunRecord:
    """One run, whatever it was read from."""

    run: str
    overrides: list[str] = field(default_factory=list)
    seed: int | None = None
    # One dict per step, each with a "step" key and the metrics of that step.
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    # Hydra's chosen option per config group ({"algorithm": "grpo", ...}).
    choices: dict[str, Any] = field(default_factory=dict)
    # The run's resolved config.
    config: dict[str, Any] = field(default_factory=dict)
    # One dict per held-out problem per evaluation (``eval_problems.jsonl``), with its step.
    problems: list[dict[str, Any]] = field(default_factory=list)
    # The answer checker that scored its held-out verdicts (manifest.json; None: not recorded).
    answer_checker: str | None = None
    # (code, machine) of each process that made it, first sitting first (manifest.json:
    # a resumed run has several); empty when not recorded.
    made_by: list[tuple[str, str]] = field(default_factory=list)

    def value_of(self, key: str) -> str | None:
        """What ``key`` was in this run: its override, else the group's chosen option,
        else the config value at that dotted path (None if there is none)."""
        overrides = parse_overrides(self.overrides)
        if key in overrides:
            return overrides[key]
        if self.choices.get(key) is not None:
            return str(self.choices[key])
        node: Any = self.config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return None if isinstance(node, (dict, list)) or node is None else str(node)


def parse_overrides(overrides: Iterable[str]) -> dict[str, str]:
    """``["+kl.coef=0.1", "advantage=group_mean"]`` -> ``{"kl.coef": "0.1", "advantage": "group_mean"}``.

    Deletions (``~key``) and keys that do not change what a run computes (hydra., paths.,
    logger., trainer.progress_bar, ...: ``config.difference.MAY_DIFFER``) are left out, so
    a job re-run with its progress bar off is not a variant of its own.
    """
    parsed = {}
    for item in overrides:
        if item.startswith("~") or "=" not in item:
            continue
        key, value = item.split("=", 1)
        key = key.lstrip("+")
        if not allowed_to_differ(key):
            parsed[key] = value
    return parsed


def override_keys(records: Sequence[RunRecord]) -> list[str]:
    """Every key any run overrides, in the order they first appear on a command line."""
    return list(dict.fromkeys(k for r in records for k in parse_overrides(r.overrides)))


def varying_keys(records: Sequence[RunRecord]) -> list[str]:
    """Override keys whose value is not the same in every run, seeds excluded."""
    return [k for k in override_keys(records)
            if k not in SEED_KEYS and len({r.value_of(k) for r in records}) > 1]


def variant_label(values: dict[str, Any], keys: Sequence[str]) -> str:
    """``advantage=group_mean,kl.coef=0.1``; ``default`` when no key tells runs apart."""
    parts = [f"{k}={DEFAULT_VALUE if _missing(values.get(k)) else values.get(k)}" for k in keys]
    return ",".join(parts) or DEFAULT_VALUE


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def runs_frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    """The tidy frame of ``records`` (see the module docstring)."""
    keys = varying_keys(records)
    override_columns = override_keys(records)
    rows = []
    for record in records:
        values = {k: record.value_of(k) for k in override_columns}
        base = {
            "run": record.run,
            "variant": variant_label(values, keys),
            "seed": record.seed,
            **values,
        }
        for entry in record.history:
            step = entry.get("step")
            for metric, value in entry.items():
                if metric != "step" and _is_number(value):
                    rows.append({**base, "step": step, "metric": metric, "value": float(value)})
    columns = ["run", "variant", "seed", *override_columns, "step", "metric", "value"]
    frame = pd.DataFrame(rows, columns=columns)
    frame.attrs["variant_keys"] = keys
    frame.attrs["override_keys"] = override_columns
    return frame


PROBLEM_COLUMNS = ["step", "problem_id", "correct", "length", "sample_accuracy"]


def _sample_accuracy(record: dict[str, Any]) -> float:
    samples = record.get("samples_correct")
    return sum(map(bool, samples)) / len(samples) if samples else math.nan


def problems_frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    """One row per (run, evaluation step, held-out problem): the per-problem records of
    ``records`` with the same run, variant, seed and override columns as ``runs_frame``.

    ``correct`` is the greedy verdict as 0/1 (NaN when the evaluation was not greedy),
    ``length`` the greedy completion's tokens, ``sample_accuracy`` the fraction of the
    ``eval.num_samples`` samples that were right (NaN without samples). Runs that predate
    per-problem records contribute no rows."""
    keys = varying_keys(records)
    override_columns = override_keys(records)
    rows = []
    for record in records:
        values = {k: record.value_of(k) for k in override_columns}
        base = {"run": record.run, "variant": variant_label(values, keys), "seed": record.seed, **values}
        for problem in record.problems:
            correct = problem.get("correct")
            rows.append({
                **base,
                "step": problem.get("step"),
                "problem_id": problem.get("problem_id"),
                "correct": math.nan if correct is None else float(bool(correct)),
                "length": float(problem["length"]) if _is_number(problem.get("length")) else math.nan,
                "sample_accuracy": _sample_accuracy(problem),
            })
    frame = pd.DataFrame(rows, columns=["run", "variant", "seed", *override_columns, *PROBLEM_COLUMNS])
    frame.attrs["variant_keys"] = keys
    frame.attrs["override_keys"] = override_columns
    return frame


def with_variants(frame: pd.DataFrame, by: Sequence[str] | str | None = None) -> pd.DataFrame:
    """The frame with ``variant`` relabelled by the override keys in ``by`` (e.g. only
    ``algorithm``, to pool everything else); ``None`` keeps the default labels."""
    if by is None:
        return frame
    by = [by] if isinstance(by, str) else list(by)
    missing = [k for k in by if k not in frame.columns]
    if missing:
        known = ", ".join(frame.attrs.get("override_keys", [])) or "none"
        raise ValueError(f"no override named {missing[0]} in these runs (overridden keys: {known})")
    out = frame.copy()
    out["variant"] = [variant_label(dict(zip(by, values)), by) for values in zip(*(out[k] for k in by))]
    return out
