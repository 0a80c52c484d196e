"""Generation backends: sample G completions per prompt and return them as a RolloutBatch."""

from grpo_lab.rollout.batch import RolloutBatch
from grpo_lab.rollout.hf import HFGenerateBackend, build_rollout_backend

__all__ = ["HFGenerateBackend", "RolloutBatch", "build_rollout_backend"]
