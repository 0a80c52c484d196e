"""Multi-turn environments and tools (grpo_lab/envs/base.py)."""

from grpo_lab.envs import calculator  # noqa: F401  (registers the built-in environments)
from grpo_lab.envs.base import ENVIRONMENTS, Environment, Step, build_environment

__all__ = ["ENVIRONMENTS", "Environment", "Step", "build_environment"]
