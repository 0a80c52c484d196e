"""Every random stream a run draws from, captured and restored as one picklable dict.

A resumed run reproduces the uninterrupted one only if all of them continue where they
stopped: Python's ``random``, NumPy's global generator, torch's global CPU generator
(anything left on it), every CUDA device's generator, and the run's own
``torch.Generator`` objects (prompt order, mini-batch shuffling, the critic's).
The dict holds only tensors, ints, lists and tuples, so ``torch.load(weights_only=True)``
reads it back.
"""

from __future__ import annotations

import random
from typing import Any, Mapping

import numpy as np
import torch


def _numpy_state() -> tuple[Any, ...]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))


def _set_numpy_state(state: tuple[Any, ...]) -> None:
    name, keys, pos, has_gauss, cached = state
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))


def capture_rng(generators: Mapping[str, torch.Generator]) -> dict[str, Any]:
    """The state of the global streams and of the named generators."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any], generators: Mapping[str, torch.Generator]) -> None:
    """Puts every stream back; a generator the run has but the state lacks is an error
    (the checkpoint was written by a different algorithm or version)."""
    random.setstate(_as_python_state(state["python"]))
    _set_numpy_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    missing = sorted(set(generators) - set(state["generators"]))
    if missing:
        raise ValueError(f"checkpoint has no state for the random generators {missing}")
    for name, generator in generators.items():
        generator.set_state(state["generators"][name])


def _as_python_state(state: Any) -> tuple[Any, ...]:
    # random.setstate wants tuples; a round trip through some loaders gives lists.
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def sample_seeds(seed: int, step: int, rows: range) -> list[int]:
    """One sampling seed per completion row of a step, a function of (run seed, step,
    global row index) alone: rollouts do not depend on how many processes share the
    batch, nor on what ran before (a resumed step samples the same tokens)."""
    return [int(np.random.SeedSequence([seed, step, row]).generate_state(1)[0]) for row in rows]
