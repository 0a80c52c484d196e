"""The shared training loop: rollout -> reward -> advantage -> policy update -> records."""

from grpo_lab.trainer.loop import Trainer, train

__all__ = ["Trainer", "train"]
