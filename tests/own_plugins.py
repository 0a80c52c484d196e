"""An advantage estimator, a policy loss and a task a user would write outside
grpo-lab, named by import path in tests (``tests.own_plugins:<name>``). Each counts its
calls so a test can tell that it, and not a built-in, ran."""

from __future__ import annotations

import torch
from datasets import Dataset

CALLS = {"advantage": 0, "policy_loss": 0, "task": 0}


def sign_advantages(rewards, group_size, eps, lengths, cfg):
    """+1 above the group's mean reward, -1 below, 0 at it: values no built-in gives.
    Takes all five inputs (the form documented before they went by name), and checks the
    two it does not use arrive."""
    CALLS["advantage"] += 1
    assert lengths is not None and lengths.shape == rewards.shape
    assert cfg.normalization == "tests.own_plugins:sign_advantages"
    grouped = rewards.view(-1, group_size)
    return torch.sign(grouped - grouped.mean(dim=1, keepdim=True)).flatten()


def unclipped_pg_loss(logp, old_logp, advantages):
    """-ratio * A with no clipping, and the ratio's mean as its own metric. Declares only
    the inputs it uses (no ``mask``, no ``cfg``)."""
    CALLS["policy_loss"] += 1
    ratio = torch.exp(logp - old_logp)
    return -ratio * advantages, {"own/ratio_mean": ratio.detach()}


def renamed_advantages(r, g, eps, lengths, cfg):
    """Written for a fixed positional order with names of its own (``r``, ``g``): the
    trainer passes inputs by name, so it is refused, saying which names to use."""
    return r - r.view(-1, g).mean(dim=1).repeat_interleave(g)


def two_questions(cfg):
    """A two-row question task (prompts are built from `question`)."""
    CALLS["task"] += 1
    return Dataset.from_list([{"question": "1 + 1 = ?", "answer": "2"}, {"question": "2 + 2 = ?", "answer": "4"}])
