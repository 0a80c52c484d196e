"""Reward functions a user would write, in TRL's signature, for tests."""


def completion_length_reward(prompts, completions, **kwargs):
    """Longer completions score higher: gives a random-init model a learning signal."""
    return [float(len(c[0]["content"])) for c in completions]


def first_sample_only_reward(prompts, completions, **kwargs):
    """Scores only the first completion; None (not applicable) for the others."""
    return [1.0] + [None] * (len(completions) - 1)


def nan_reward(prompts, completions, **kwargs):
    return [float("nan")] + [1.0] * (len(completions) - 1)
