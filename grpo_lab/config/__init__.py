"""Typed schemas of every config group, registered with Hydra's ConfigStore."""

from grpo_lab.config.schema import TrainConfig, register_configs

__all__ = ["TrainConfig", "register_configs"]
