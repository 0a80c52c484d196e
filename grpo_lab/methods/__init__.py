"""Training methods as the trainer drives them: GRPO and PPO, selected by
``algorithm.name``.

``grpo_lab/algos/`` holds the pure math (advantage estimators, policy losses, KL
estimators, GAE); a method here is the stateful part around it: how a batch's rewards
become advantages and what else it trains and checkpoints (PPO's critic). The
interface is :class:`grpo_lab.methods.base.Algorithm`.
"""

from __future__ import annotations

from typing import Any

from grpo_lab.registry import Registry

# Built-ins by import path: listing and checking the names imports no model code.
ALGORITHMS: Registry[Any] = Registry("algorithm", "algorithm.name")
ALGORITHMS.add_lazy("grpo", "grpo_lab.methods.grpo:GRPO")
ALGORITHMS.add_lazy("ppo", "grpo_lab.methods.ppo:PPO")
# algorithm.critic.mode (PPO): separate critic model, or a value head on the policy.
CRITIC_MODES = ("separate", "shared")


def build_algorithm(cfg: Any, policy: Any, device: Any, parallel: Any) -> Any:
    """The :class:`~grpo_lab.methods.base.Algorithm` named by ``algorithm.name``."""
    return ALGORITHMS.get_entry(cfg.algorithm.name).from_config(cfg, policy, device, parallel)
