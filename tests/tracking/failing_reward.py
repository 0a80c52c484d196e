"""A user's reward function that breaks mid-run (its service went down), for tests."""

CALLS = {"n": 0}


def fails_on_second_call(prompts, completions, **kwargs):
    CALLS["n"] += 1
    if CALLS["n"] >= 2:
        raise RuntimeError("reward service unavailable")
    return [float(len(c[0]["content"])) for c in completions]
