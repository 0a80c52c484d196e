"""Reward functions a user would write, in TRL's signature, for tests."""

import os
import time
from pathlib import Path


def completion_length_reward(prompts, completions, **kwargs):
    """Longer completions score higher: gives a random-init model a learning signal."""
    return [float(len(c[0]["content"])) for c in completions]


def first_sample_only_reward(prompts, completions, **kwargs):
    """Scores only the first completion; None (not applicable) for the others."""
    return [1.0] + [None] * (len(completions) - 1)


def nan_reward(prompts, completions, **kwargs):
    return [float("nan")] + [1.0] * (len(completions) - 1)


def length_reward_hanging_mid_run(prompts, completions, **kwargs):
    """``completion_length_reward``, except that with ``$GRPO_LAB_TEST_HANG_AT=N`` its
    N-th call (the N-th step of a fresh run) creates the file ``$GRPO_LAB_TEST_HANG_FILE``
    and then waits: a test kills the process there, in the middle of a known step."""
    global _calls
    _calls += 1
    if os.environ.get("GRPO_LAB_TEST_HANG_AT") == str(_calls):
        Path(os.environ["GRPO_LAB_TEST_HANG_FILE"]).touch()
        time.sleep(600)
    return completion_length_reward(prompts, completions)


_calls = 0
