"""What the shared loop needs from a training method.

The loop samples, scores, asks the method for advantages, runs the policy update and
checkpoints; a method answers :meth:`Algorithm.advantages` and, only if it trains
something besides the policy (PPO's critic), overrides the other hooks. The defaults
are those of a method with no model of its own, such as GRPO.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from grpo_lab.rollout.batch import RolloutBatch

# loss(values [n, T], row indices [n], per-token weights [n, T]) -> (scalar, name -> [n, T]
# tensors logged as masked means): a term added to the policy loss in the same backward
# pass, on the outputs of a head on the policy (PPO's shared value head).
AuxiliaryLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], "tuple[torch.Tensor, dict[str, torch.Tensor]]"]


@dataclass
class Advantages:
    advantages: torch.Tensor  # [N, T], or [N, 1] broadcast over tokens
    # Whatever else the method computed with them for its own later use (PPO: value targets).
    extra: Any = None
    metrics: dict[str, float] = field(default_factory=dict)


class Algorithm:
    name: str = ""
    # A module on the policy backbone trained with the policy loss (PPO's shared value
    # head), or None: the trainer's policy passes then also return hidden states.
    value_head: nn.Module | None = None

    @classmethod
    def from_config(cls, cfg: Any, policy: nn.Module, device: torch.device, parallel: Any) -> "Algorithm":
        raise NotImplementedError

    def advantages(self, batch: RolloutBatch, rewards: torch.Tensor, reward_penalty: torch.Tensor | None,
                   policy_hidden: torch.Tensor | None = None) -> Advantages:
        """``rewards``: ``[N]`` of this process's rows. ``reward_penalty``: ``[N, T]``
        per-token penalty to subtract from the reward (the KL term when it goes into the
        reward, already x its coefficient), or None. ``policy_hidden``: the policy's
        last hidden states at the completion positions ``[N, T, H]`` when
        :attr:`value_head` is set."""
        raise NotImplementedError

    def auxiliary_loss(self, adv: Advantages) -> AuxiliaryLoss | None:
        """A loss to add to the policy loss (see :data:`AuxiliaryLoss`), or None."""
        return None

    def trains_policy(self, step: int) -> bool:
        """False for steps that train only the method's own models (a critic warm-up)."""
        return True

    def after_update(self, batch: RolloutBatch, adv: Advantages) -> dict[str, float]:
        """Trains the method's own models on the batch (PPO's critic); returns metrics."""
        return {}

    def step_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """Metrics of the method's own derived from the step's whole record (times,
        memory), added to it; none by default."""
        return {}

    # -- checkpoints ----------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        """Models whose weights a checkpoint keeps, saved as ``<name>.safetensors``."""
        return {}

    def optimizers(self) -> dict[str, tuple[nn.Module, Any]]:
        """The algorithm's own optimizers with the module each trains; a sharded run's
        checkpoint keeps their states sharded (trainer/checkpoint.py), so
        :meth:`state_dict` then leaves them out."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Everything else a resumed run needs (optimizers, random generators)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
