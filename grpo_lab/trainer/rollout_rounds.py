"""Sampling and scoring a step's batch, in one round or, with DAPO's dynamic sampling,
in as many rounds as it takes to fill the batch with groups that carry a signal.

One round: draw ``trainer.batch_size`` prompts, sample ``group_size`` completions each,
score them (reward mix, plus DAPO's overlong penalty when ``reward.overlong_buffer`` is
set). With ``algorithm.dynamic_sampling.enabled`` (Yu et al. 2025, arXiv:2503.14476,
sec. 3.2) the groups whose rewards are all equal are set aside and further rounds of
fresh prompts are drawn until the batch has ``batch_size`` groups with unequal rewards,
or ``max_rounds`` rounds were drawn; then the shortfall is filled with groups set aside
(the latest first), so the batch keeps its size. DAPO does not bound the rounds (verl
stops with an error after ``max_num_gen_batches``); a bound keeps a step's cost finite.

Every round's completions count in the budget and every round's sampling time in
``time/generation``: an arm that discards samples pays for them. With several processes
each fills its own share; all draw a round while any of them still lacks groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from grpo_lab.algos.group_filter import choose_groups, groups_with_signal
from grpo_lab.algos.overlong import overlong_penalty
from grpo_lab.rollout.batch import RolloutBatch, join_groups


@dataclass
class Scored:
    """One round's rollouts and their rewards (``[N]``, this process's rows)."""

    batch: RolloutBatch
    rewards: torch.Tensor
    per_function: dict[str, torch.Tensor]


@dataclass
class StepSamples(Scored):
    """The batch to train on, plus what producing it cost over all rounds."""

    generated_lengths: Optional[torch.Tensor] = None  # lengths of every row generated, every process's
    prompt_lengths: Optional[torch.Tensor] = None  # their prompts' lengths (padding not counted)
    generation_s: float = 0.0
    reward_s: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    # Rewards of every row drawn, every round (this process's rows): what the policy scored
    # on fresh prompts, comparable with an arm that keeps every group. None: the batch's.
    drawn_rewards: Optional[torch.Tensor] = None
    drawn_per_function: Optional[dict[str, torch.Tensor]] = None


def add_overlong_penalty(scored: Scored, max_length: int, buffer: int, factor: float) -> Scored:
    """The reward plus DAPO's overlong penalty (grpo_lab/algos/overlong.py), also listed
    as the reward term ``overlong`` (logged as rewards/overlong/mean). ``buffer=0``:
    unchanged."""
    if buffer <= 0:
        return scored
    lengths = scored.batch.completion_mask.sum(dim=1).cpu()
    penalty = overlong_penalty(lengths, max_length, buffer, factor).to(scored.rewards)
    return Scored(scored.batch, scored.rewards + penalty, {**scored.per_function, "overlong": penalty})


def _join(rounds: list[Scored], chosen: list[tuple[int, int]], pad_id: int) -> Scored:
    """The chosen (round, group) pairs of several rounds as one scored batch."""
    group_size = rounds[0].batch.group_size
    parts, rows = [], []
    for r, scored in enumerate(rounds):
        groups = [g for rr, g in chosen if rr == r]
        parts.append((scored.batch, groups))
        rows.append(torch.tensor([g * group_size + i for g in groups for i in range(group_size)], dtype=torch.long))
    pick = lambda values: torch.cat([v[idx] for v, idx in zip(values, rows)])  # noqa: E731
    names = rounds[0].per_function
    return Scored(
        join_groups(parts, pad_id),
        pick([s.rewards for s in rounds]),
        {n: pick([s.per_function[n] for s in rounds]) for n in names},
    )


def sample_step(draw: Callable[[int], tuple[Scored, float, float]], num_groups: int, dynamic: bool,
                max_rounds: int, parallel: Any, pad_id: int) -> StepSamples:
    """The step's batch. ``draw(round)`` samples and scores one round of fresh prompts
    (this process's share, ``num_groups`` groups) and returns it with its generation and
    reward seconds. Without ``dynamic`` that one round is the batch.

    Metrics with ``dynamic``: ``dynamic_sampling/rounds`` (rounds drawn),
    ``dynamic_sampling/groups_with_signal`` (among all groups drawn),
    ``dynamic_sampling/zero_std_groups_trained`` (fillers once the rounds ran out); the
    rewards of every row drawn come with the batch (``drawn_rewards``)."""
    rounds: list[Scored] = []
    signal: list[torch.Tensor] = []
    generation_s = reward_s = 0.0
    while True:
        scored, gen_s, rew_s = draw(len(rounds))
        rounds.append(scored)
        signal.append(groups_with_signal(scored.rewards, scored.batch.group_size))
        generation_s += gen_s
        reward_s += rew_s
        short = sum(int(s.sum()) for s in signal) < num_groups
        if not dynamic or len(rounds) >= max_rounds or not parallel.any(short):
            break
    generated = parallel.gather(torch.cat([s.batch.completion_mask.sum(dim=1).float().cpu() for s in rounds]))
    prompts = parallel.gather(torch.cat([s.batch.prompt_mask.sum(dim=1).float().cpu() for s in rounds]))
    if not dynamic:
        return StepSamples(rounds[0].batch, rounds[0].rewards, rounds[0].per_function,
                           generated, prompts, generation_s, reward_s)
    chosen = choose_groups(signal, num_groups)
    kept = _join(rounds, chosen, pad_id)
    drawn, with_signal, fillers = parallel.sum([
        float(sum(len(s) for s in signal)), float(sum(int(s.sum()) for s in signal)),
        float(sum(not signal[r][g] for r, g in chosen)),
    ])
    metrics = {
        "dynamic_sampling/rounds": float(len(rounds)),
        "dynamic_sampling/groups_with_signal": with_signal / drawn,
        "dynamic_sampling/zero_std_groups_trained": fillers,
    }
    return StepSamples(kept.batch, kept.rewards, kept.per_function, generated, prompts, generation_s, reward_s, metrics,
                       drawn_rewards=torch.cat([s.rewards for s in rounds]),
                       drawn_per_function={n: torch.cat([s.per_function[n] for s in rounds])
                                           for n in rounds[0].per_function})
