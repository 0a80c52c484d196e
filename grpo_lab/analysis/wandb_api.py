"""Runs from the W&B API, as the same tidy frame as local folders.

What makes the frames identical: every grpo-lab run stores its command-line overrides
and Hydra's group choices in its W&B config (``hydra.overrides``, ``hydra.choices``) and
logs each metric at ``step`` = the training step, so a W&B run carries exactly what a
local run folder does (overrides, choices, config, per-step metrics). Needs network access and an API key; offline runs are compared from their
local folders instead (``load_runs``).
"""

from __future__ import annotations

from typing import Any, Iterable

import pandas as pd

from grpo_lab.analysis.frame import RunRecord, runs_frame


def wandb_filters(group: str | None = None, tags: Iterable[str] | None = None,
                  state: str | None = None) -> dict[str, Any]:
    """W&B's run filter (MongoDB-style) for a group, any of some tags, and a state."""
    filters: dict[str, Any] = {}
    if group:
        filters["group"] = group
    if tags:
        filters["tags"] = {"$in": list(tags)}
    if state:
        filters["state"] = state
    return filters


def run_record(run: Any) -> RunRecord:
    """A ``RunRecord`` from a ``wandb.apis.public.Run`` (or anything with its attributes)."""
    config = dict(run.config)
    hydra = config.pop("hydra", None) or {}
    trainer = config.get("trainer") or {}
    history = []
    for row in run.scan_history():
        step = row.get("_step")
        if step is None:
            continue
        metrics = {k: v for k, v in row.items() if not k.startswith("_") and isinstance(v, (int, float))
                   and not isinstance(v, bool)}
        if metrics:
            history.append({"step": int(step), **metrics})
    return RunRecord(
        run=f"{run.name} ({run.id})" if run.name else run.id,
        overrides=[str(o) for o in hydra.get("overrides") or []],
        seed=trainer.get("seed"),
        history=history,
        summary=dict(run.summary),
        choices=dict(hydra.get("choices") or {}),
        config=config,
    )


def load_wandb_runs(project: str, entity: str | None = None, group: str | None = None,
                    tags: Iterable[str] | None = None, state: str | None = "finished",
                    api: Any = None) -> pd.DataFrame:
    """The tidy frame of the project's runs in ``group`` / with any of ``tags``.

    ``state="finished"`` leaves out crashed and running runs; pass ``None`` for all.
    ``api`` defaults to ``wandb.Api()``.
    """
    if api is None:
        import wandb

        api = wandb.Api()
    path = f"{entity}/{project}" if entity else project
    runs = list(api.runs(path, filters=wandb_filters(group, tags, state)))
    if not runs:
        raise ValueError(f"no W&B runs in {path} matching {wandb_filters(group, tags, state) or 'any'}")
    return runs_frame([run_record(r) for r in runs])
