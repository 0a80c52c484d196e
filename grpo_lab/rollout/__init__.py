"""Generation backends: sample G completions per prompt and return them as a RolloutBatch."""

from grpo_lab.rollout.base import ROLLOUT_BACKENDS, RolloutBackend, build_rollout_backend
from grpo_lab.rollout.batch import RolloutBatch

__all__ = ["ROLLOUT_BACKENDS", "RolloutBackend", "RolloutBatch", "build_rollout_backend"]
