"""Reward functions (TRL-compatible signature), their registry, and weighted mixes."""

from grpo_lab.rewards.builtin import correctness, correctness_lenient, format_tags
from grpo_lab.rewards.mix import RewardMix
from grpo_lab.rewards.registry import REWARD_FUNCTIONS, register_reward, resolve_reward
from grpo_lab.rewards.summary import rouge_l, summary_length

__all__ = [
    "REWARD_FUNCTIONS",
    "RewardMix",
    "correctness",
    "correctness_lenient",
    "format_tags",
    "register_reward",
    "resolve_reward",
    "rouge_l",
    "summary_length",
]
