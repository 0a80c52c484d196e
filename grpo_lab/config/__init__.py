"""Config schema (dataclasses), its registration with Hydra, and checks of a composed config."""

from grpo_lab.config.registration import register_configs
from grpo_lab.config.schema import TrainConfig

__all__ = ["TrainConfig", "register_configs"]
