"""grpo-lab: a Hydra-configured experiment framework for GRPO and PPO fine-tuning of LMs."""

__version__ = "0.1.0"
