"""Group-relative advantages: one scalar per completion, from the rewards of its group.

Rewards arrive flat, shape ``[num_prompts * group_size]``, with the ``group_size``
completions of each prompt contiguous (the order the rollout produces them).

Every estimator is registered by name (or named by import path,
``advantage.normalization=my_pkg.module:fn``) and receives its inputs by name, so the
trainer never special-cases one. An estimator declares the inputs it uses, from::

    fn(rewards, group_size, eps, lengths, cfg) -> advantages

in any order (``group_mean(rewards, group_size)``; a function taking all five, the form
documented before inputs went by name, still works; ``**kwargs`` receives them all).
``rewards``: float ``[N]`` of the whole batch (every process's rows), groups contiguous;
``lengths``: float ``[N]``, each completion's number of tokens (its mask's sum; for
length-aware baselines or token-weighted statistics), or None when unknown;
``cfg``: the ``advantage`` config node, where an estimator reads settings of its own
(``pass_k``), or None (then its defaults);
``advantages``: ``[N]``, one per completion, applied to each of its tokens.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from grpo_lab.registry import Registry

# What the trainer passes an estimator, by name; each receives those it declares.
ESTIMATOR_INPUTS = ("rewards", "group_size", "eps", "lengths", "cfg")
AdvantageFn = Callable[..., torch.Tensor]
ADVANTAGE_ESTIMATORS: Registry[AdvantageFn] = Registry(
    "advantage estimator", "advantage.normalization", user_code=True, inputs=ESTIMATOR_INPUTS
)
register_advantage = ADVANTAGE_ESTIMATORS.register


def _grouped(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D, got shape {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size:
        raise ValueError(
            f"{rewards.numel()} rewards cannot be split into groups of {group_size}"
        )
    return rewards.view(-1, group_size)


def _centered(grouped: torch.Tensor) -> torch.Tensor:
    """``r - mean_group``, exactly 0 in every group whose rewards are all equal.

    Floating-point means are not exact (eight rewards of 0.7 average to 0.7 plus a few
    ulps), and a normalization that divides by ``std + eps`` would blow that noise up
    into a push of about 0.06 at eps 1e-6: a group without signal must not move the policy.
    """
    tied = (grouped == grouped[:, :1]).all(dim=1, keepdim=True)
    centered = grouped - grouped.mean(dim=1, keepdim=True)
    return centered.masked_fill(tied, 0.0)


def _scaled(centered: torch.Tensor, std: torch.Tensor, eps: float) -> torch.Tensor:
    """``centered / (std + eps)``, exactly 0 where ``centered`` is 0: a tied group's std
    is 0 too, and at eps 0 the division would be 0 / 0 = NaN."""
    return torch.where(centered == 0, torch.zeros_like(centered), centered / (std + eps))


@register_advantage("group_std")
def group_std_advantages(
    rewards: torch.Tensor, group_size: int, eps: float
) -> torch.Tensor:
    """(r - mean_group) / (std_group + eps): the outcome-supervision advantage of
    DeepSeekMath (Shao et al. 2024, arXiv:2402.03300, sec. 4.1.2).

    std is the unbiased sample std (as TRL's ``scale_rewards="group"``); a group with
    equal rewards gets advantages exactly 0 at every eps (0 included), never NaN nor
    amplified rounding noise.
    """
    grouped = _grouped(rewards, group_size)
    centered = _centered(grouped)
    std = grouped.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(grouped)
    return _scaled(centered, std, eps).flatten()


@register_advantage("group_mean")
def group_mean_advantages(
    rewards: torch.Tensor, group_size: int
) -> torch.Tensor:
    """r - mean_group, without division by the std: Dr. GRPO (Liu et al. 2025,
    "Understanding R1-Zero-Like Training", arXiv:2503.20783), which shows the std
    term up-weights groups that are nearly all right or all wrong. (No ``eps``: nothing
    is divided.)
    """
    return _centered(_grouped(rewards, group_size)).flatten()


@register_advantage("batch_std")
def batch_std_advantages(
    rewards: torch.Tensor, group_size: int, eps: float
) -> torch.Tensor:
    """(r - mean_group) / (std_batch + eps): the group baseline with the std taken over
    the whole batch (TRL ``scale_rewards="batch"``; REINFORCE++-style global scaling,
    Hu et al. 2025, arXiv:2501.03262), which keeps the relative scale of groups.
    """
    centered = _centered(_grouped(rewards, group_size))
    std = rewards.std() if rewards.numel() > 1 else rewards.new_zeros(())
    return _scaled(centered, std, eps).flatten()


@register_advantage("rloo")
def rloo_advantages(
    rewards: torch.Tensor, group_size: int
) -> torch.Tensor:
    """r_i - mean_{j != i} r_j: the leave-one-out baseline of RLOO (Kool et al. 2019;
    Ahmadian et al. 2024, "Back to Basics", arXiv:2402.14740, eq. 6), no std scaling.

    Equal to ``G / (G - 1) * (r_i - mean_group)``: with G = 2 it is ``r_i - r_other``.
    Tied groups get exactly 0. (verl ``rloo``; TRL ``RLOOTrainer``.)
    """
    if group_size < 2:
        raise ValueError(f"rloo needs groups of at least 2 completions, got {group_size}")
    centered = _centered(_grouped(rewards, group_size))
    return (centered * (group_size / (group_size - 1))).flatten()


def _whiten(values: torch.Tensor, weights: torch.Tensor, eps: float) -> torch.Tensor:
    """(x - mean) / (std + eps) with ``weights``-weighted mean and unbiased variance
    (``sum w (x - mean)^2 / sum w * n / (n - 1)``, n = sum w): with weights = token
    counts, the masked whitening of every token of the batch (verl ``masked_whiten``).

    The tie rule of the group estimators, for the batch: when every value that carries
    weight is the same (compared exactly), there is nothing to whiten and the result is
    exactly 0, at every eps. Their float mean is the value plus a few ulps, and dividing
    that noise by ``std + eps`` gave 6e-4 at eps 1e-4, 0.83 at 1e-8 and NaN at 0."""
    total = weights.sum()
    counted = values[weights > 0]
    if total <= 1 or bool((counted == counted[0]).all()):
        return torch.zeros_like(values)
    mean = (weights * values).sum() / total
    var = (weights * (values - mean).square()).sum() / total * (total / (total - 1))
    return (values - mean) / (var.sqrt() + eps)


def _token_weights(rewards: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    # A completion's advantage applies to each of its tokens, so batch statistics count
    # it once per token; unknown lengths: once per completion.
    return torch.ones_like(rewards) if lengths is None else lengths.to(rewards).float()


@register_advantage("reinforce_plus_plus")
def reinforce_plus_plus_advantages(
    rewards: torch.Tensor, group_size: int, eps: float, lengths: torch.Tensor | None = None
) -> torch.Tensor:
    """REINFORCE++ (Hu et al. 2025, arXiv:2501.03262, sec. 3): no group baseline; the
    outcome reward (gamma = 1, so every token's return is the completion's reward) is
    whitened over every completion token of the global batch, ``(r - mean) / (std + eps)``.

    Token-weighted (each completion counts ``lengths`` times), as verl's and OpenRLHF's
    ``masked_whiten``; ``(std + eps)`` where they use ``sqrt(var + 1e-8)``. The paper
    puts the KL per token into the return; here a KL in the reward is summed per
    completion first (see GRPO). Groups whose rewards tie still get advantages: the
    baseline is the batch's, not the group's; a batch whose rewards all tie gets exactly
    0 (see ``_whiten``).
    """
    _grouped(rewards, group_size)
    return _whiten(rewards, _token_weights(rewards, lengths), eps)


@register_advantage("reinforce_plus_plus_baseline")
def reinforce_plus_plus_baseline_advantages(
    rewards: torch.Tensor, group_size: int, eps: float, lengths: torch.Tensor | None = None
) -> torch.Tensor:
    """REINFORCE++-baseline (Hu et al. 2025, arXiv:2501.03262, sec. 3.2): the group mean
    is subtracted first (``r - mean_group``, exactly 0 in tied groups), then the result
    is whitened over every completion token of the global batch, as verl's
    ``reinforce_plus_plus_baseline`` and OpenRLHF's ``reinforce_baseline``.

    With token weights the batch mean of the centered rewards is not 0, so whitening
    shifts tied groups by ``-mean / std``: a tied group gets a non-zero advantage. That
    is verl's definition (``compute_reinforce_plus_plus_baseline_outcome_advantage``
    whitens with ``masked_whiten`` over every response token), kept on purpose; with
    ``lengths=None`` the shift is 0. A batch in which every group ties gets exactly 0.
    """
    centered = _centered(_grouped(rewards, group_size)).flatten()
    return _whiten(centered, _token_weights(rewards, lengths), eps)


def pass_at_k_group_advantages(solved: torch.Tensor, k: int) -> torch.Tensor:
    """Analytic pass@k advantages of Chen et al. 2025 ("Pass@k Training for Adaptively
    Balancing Exploration and Exploitation of Large Reasoning Models", arXiv:2508.10751,
    sec. 4), for ``solved``: bool ``[groups, N]``.

    A group of N completions, N_neg of them wrong, is scored as the mean pass@k over
    its k-subsets, ``R = 1 - C(N_neg, k) / C(N, k)``, with Bernoulli std
    ``s = sqrt(R (1 - R))``. A completion's advantage is the mean normalized advantage
    of the k-subsets that contain it:

        solved:  (1 - R) / s
        wrong:   (1 - R - C(N_neg - 1, k - 1) / C(N - 1, k - 1)) / s

    They sum to 0 over the group. k = 1 is (r - mean) / population std. Groups with
    ``s = 0`` (all solved, none solved, or fewer than k wrong, so every k-subset passes)
    get exactly 0: no subset differs from another.
    """
    num = solved.shape[1]
    if not 1 <= k < num:
        raise ValueError(f"pass@k needs 1 <= k < group size, got k={k} with groups of {num}")
    out = torch.zeros(solved.shape, dtype=torch.float32)
    for g, row in enumerate(solved.tolist()):
        wrong = row.count(False)
        group_pass = 1.0 - math.comb(wrong, k) / math.comb(num, k)
        std = math.sqrt(group_pass * (1.0 - group_pass))
        if std == 0.0:
            continue
        solved_adv = (1.0 - group_pass) / std
        wrong_adv = (1.0 - group_pass - math.comb(wrong - 1, k - 1) / math.comb(num - 1, k - 1)) / std
        out[g] = torch.tensor([solved_adv if s else wrong_adv for s in row])
    return out


# pass_at_k without an ``advantage`` config (pure calls); the config's own defaults are
# the same numbers (tests/algos/test_advantages.py holds them together).
DEFAULT_PASS_K = 2
DEFAULT_PASS_THRESHOLD = 1.0


@register_advantage("pass_at_k")
def pass_at_k_advantages(
    rewards: torch.Tensor, group_size: int, cfg: Any = None
) -> torch.Tensor:
    """GRPO trained for pass@k (Chen et al. 2025, arXiv:2508.10751): a completion is
    solved when its reward is at least ``cfg.pass_threshold``; the group's solved /
    wrong pattern gives the analytic advantages of ``pass_at_k_group_advantages`` with
    k = ``cfg.pass_k``. Wrong completions in a group that already passes are pushed
    down less than under group mean/std, which keeps exploring. No ``eps``: a zero std
    gives exactly 0. ``cfg=None``: k = 2, threshold 1 (the ``advantage`` config's
    defaults)."""
    pass_k = cfg.pass_k if cfg is not None else DEFAULT_PASS_K
    threshold = cfg.pass_threshold if cfg is not None else DEFAULT_PASS_THRESHOLD
    solved = _grouped(rewards, group_size) >= threshold
    return pass_at_k_group_advantages(solved, pass_k).to(rewards.dtype).flatten()


def group_advantages(
    rewards: torch.Tensor,
    group_size: int,
    normalization: str = "group_std",
    eps: float = 1e-4,
    lengths: torch.Tensor | None = None,
    cfg: Any = None,
) -> torch.Tensor:
    """Advantages of one batch of grouped rewards with the named (or imported)
    estimator; ``cfg``: the ``advantage`` config (settings of its own), or None."""
    if eps < 0:
        raise ValueError(f"eps={eps} must be >= 0: added to a std near 0 it would flip the advantages' sign")
    estimator = ADVANTAGE_ESTIMATORS.caller(normalization)
    return estimator(rewards=rewards.float(), group_size=group_size, eps=eps, lengths=lengths, cfg=cfg)
