"""Generation backends: sample G completions per prompt and return them as a RolloutBatch."""

from grpo_lab.rollout.batch import RolloutBatch
from grpo_lab.rollout.factory import build_rollout_backend
from grpo_lab.rollout.hf import HFGenerateBackend

__all__ = ["HFGenerateBackend", "RolloutBatch", "build_rollout_backend"]
