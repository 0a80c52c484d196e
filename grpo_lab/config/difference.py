"""Whether two configs describe the same run: the keys that may differ without changing
what a run computes, and the first key on which two configs differ. Used to skip a
sweep job whose folder already holds its finished run and to refuse resuming a
checkpoint saved by another config.

"Same config" means equal on every key that can change what a run computes:
everything except ``MAY_DIFFER`` (where records go, how they are shown, checkpoint
timing, batching of evaluation), and, for a checkpoint being resumed, also
``MAY_DIFFER_ON_RESUME`` (a run may be continued to more steps). A key that one of the
two configs lacks (an option added to grpo-lab later) counts as its schema default.
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Mapping

# Keys (and the keys under them) that may differ between two configs of the same run.
MAY_DIFFER = (
    "hydra",  # Hydra's own settings (job folders, launcher, sweeper)
    "paths",  # where the records go
    "logger",  # how records are shown: W&B project, names, samples logged
    "model.cache_dir",  # where converted models are cached
    "trainer.resume",
    "trainer.progress_bar",
    "trainer.process_per_job",  # same run, in a process of its own or not
    "trainer.checkpoint_every",  # checkpoints never change the run they save
    "trainer.checkpoint_every_minutes",
    "trainer.checkpoint_keep",
    "trainer.save_checkpoints",
    "eval.batch_size",  # how held-out problems are batched
    "eval.checkpoint",  # grpo-lab-eval's input
)
# Also allowed to differ between a checkpoint and the run that resumes it.
MAY_DIFFER_ON_RESUME = ("trainer.max_steps",)


def allowed_to_differ(key: str, keys: tuple[str, ...] = MAY_DIFFER) -> bool:
    """``key`` is one of ``keys`` or under one of them: it may differ between two configs
    of the same run (reports do not split runs into variants by it either)."""
    return any(key == p or key.startswith(p + ".") for p in keys)


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Dotted keys and leaf values of nested dicts (lists and empty dicts are values)."""
    if isinstance(value, Mapping) and (value or not prefix):
        for key, child in value.items():
            yield from _flatten(child, f"{prefix}{key}.")
    else:
        yield prefix[:-1], value


def _plain(cfg: Any, may_differ: tuple[str, ...]) -> dict[str, Any]:
    """A config's leaves by dotted key, without the ignored keys. A DictConfig is
    resolved after they are dropped (``paths.output_dir`` may need Hydra's runtime); a
    plain dict (a config read from a run folder) is already resolved."""
    from omegaconf import DictConfig, OmegaConf

    resolve = isinstance(cfg, DictConfig)
    if resolve:
        cfg = OmegaConf.to_container(cfg, resolve=False)
    kept = {k: v for k, v in _flatten(cfg) if not allowed_to_differ(k, may_differ)}
    if not resolve:
        return kept
    nested: dict[str, Any] = {}
    for key, value in kept.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return dict(_flatten(OmegaConf.to_container(OmegaConf.create(nested), resolve=True)))


_NO_DEFAULT = object()


def _schema_default(key: str) -> Any:
    from omegaconf import OmegaConf

    from grpo_lab.config.schema import TrainConfig

    try:
        node = OmegaConf.select(OmegaConf.structured(TrainConfig), key, default=_NO_DEFAULT, throw_on_missing=True)
    except Exception:  # noqa: BLE001 - a key the schema does not know has no default
        return _NO_DEFAULT
    if node is _NO_DEFAULT:
        return _NO_DEFAULT
    return OmegaConf.to_container(node) if OmegaConf.is_config(node) else node


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def first_difference(saved: Any, current: Any, may_differ: tuple[str, ...] = MAY_DIFFER
                     ) -> tuple[str, Any, Any] | None:
    """The first key (in ``current``'s order) on which two configs differ, with the two
    values (``saved``'s first), or None when they are the same run. ``may_differ``:
    keys ignored. A key only one side has is compared with its schema default."""
    old, new = _plain(saved, may_differ), _plain(current, may_differ)
    for key in [*new, *(k for k in old if k not in new)]:
        a = old.get(key, _NO_DEFAULT)
        b = new.get(key, _NO_DEFAULT)
        if a is _NO_DEFAULT:
            a = _schema_default(key)
        if b is _NO_DEFAULT:
            b = _schema_default(key)
        if a is _NO_DEFAULT or b is _NO_DEFAULT or not _same(a, b):
            return key, a, b
    return None


def describe_value(value: Any) -> str:
    return "absent" if value is _NO_DEFAULT else json.dumps(value, default=str)


# -- what a folder holds --------------------------------------------------------------
