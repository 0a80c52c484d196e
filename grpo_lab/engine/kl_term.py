"""The KL to the reference policy, with one owner: whether there is one, which
log-probs it needs, and whether it goes into the reward or into the loss.

``kl.placement=loss`` (GRPO, DeepSeekMath eq. 3): ``coef * KL(policy || reference)``
per token, added to the per-token policy loss, optionally importance-weighted
(``kl.bias_correction``, see :func:`grpo_lab.algos.kl.importance_weighted_kl`).
``kl.placement=reward`` (classic RLHF PPO, Ouyang et al. 2022, eq. 2): the estimate
between the sampling policy and the reference, times ``coef``, is a per-token penalty
the algorithm subtracts from the reward (no gradient). There the coefficient can be
adaptive (``kl.target``): :class:`AdaptiveKLController` moves it after every step
towards the target KL, and the trainer logs it (``kl_coef``) and checkpoints it.
"""

from __future__ import annotations

from typing import Any

import torch

from grpo_lab.algos.kl import importance_weighted_kl, kl_measure_sums, kl_penalty

PLACEMENTS = ("loss", "reward")


class AdaptiveKLController:
    """The adaptive KL coefficient of Ziegler et al. 2019 ("Fine-Tuning Language Models
    from Human Preferences", arXiv:1909.08593, sec. 2.2; their code and verl's
    ``AdaptiveKLController``): after a step whose KL was ``kl``,

        e = clip(kl / target - 1, -0.2, 0.2);   coef <- coef * (1 + e * n / horizon)

    with ``n`` the completions of the step: a proportional controller whose time
    constant is ``horizon`` completions.

    Which KL ``target`` means is ``measure`` (``kl.target_measure``, see
    :data:`grpo_lab.algos.kl.KL_MEASURES`): ``token_mean`` (default) the logged ``kl``,
    a mean over the step's tokens; ``seq_mean`` verl's (``apply_kl_penalty``: the mean
    over completions of each one's token mean); ``seq_sum`` Ziegler et al.'s (the mean
    over completions of each one's summed KL; their target of 6 nats is of this kind).
    The first two differ when completions differ in length; the last is about the
    mean length times the first.
    """

    def __init__(self, target: float, horizon: float, measure: str = "token_mean"):
        self.target = target
        self.horizon = horizon
        self.measure = measure

    def next_coef(self, coef: float, kl: float, n: int) -> float:
        error = min(max(kl / self.target - 1.0, -0.2), 0.2)
        return coef * (1.0 + error * n / self.horizon)


class KLTerm:
    def __init__(self, coef: float, estimator: str, placement: str, bias_correction: bool,
                 controller: AdaptiveKLController | None = None):
        self.coef = coef
        self.estimator = estimator
        self.placement = placement
        self.bias_correction = bias_correction
        self.controller = controller

    @classmethod
    def from_config(cls, kl_cfg: Any) -> "KLTerm":
        controller = (AdaptiveKLController(kl_cfg.target, kl_cfg.horizon, kl_cfg.target_measure)
                      if kl_cfg.target is not None else None)
        return cls(kl_cfg.coef, kl_cfg.estimator, kl_cfg.placement, kl_cfg.bias_correction, controller)

    @property
    def enabled(self) -> bool:
        """Whether a reference model is needed at all (``kl.coef > 0``)."""
        return self.coef > 0

    @property
    def in_reward(self) -> bool:
        return self.enabled and self.placement == "reward"

    @property
    def in_loss(self) -> bool:
        return self.enabled and self.placement == "loss"

    @property
    def needs_sampling_logp(self) -> bool:
        """The penalty in the reward is measured on the sampling policy's log-probs."""
        return self.in_reward

    def reward_penalty(self, sampling_logp: torch.Tensor | None, ref_logp: torch.Tensor | None,
                       completion_mask: torch.Tensor, parallel: Any) -> tuple[torch.Tensor | None, dict[str, float]]:
        """``(coef * KL per token [N, T], {"kl": mean over every process's tokens})``
        when the KL goes into the reward; ``(None, {})`` otherwise. With an adaptive
        coefficient the step's penalty uses the current one, which then moves for the
        next step; ``kl_coef`` is the one this step used, and a controller measuring
        per completion also logs what it measured (``kl/seq_mean`` or ``kl/seq_sum``)."""
        if not self.in_reward:
            return None, {}
        kl = kl_penalty(sampling_logp, ref_logp, self.estimator)
        mask = completion_mask.float()
        sums = [float((kl * mask).sum()), float(mask.sum()), float(mask.shape[0])]
        measure = self.controller.measure if self.controller is not None else "token_mean"
        if measure != "token_mean":
            sums += kl_measure_sums(kl, mask, measure)
        kl_sum, tokens, rows, *measured = parallel.sum(sums)
        metrics = {"kl": kl_sum / max(tokens, 1.0)}
        penalty = self.coef * kl
        if self.controller is not None:
            metrics["kl_coef"] = self.coef
            steered = metrics["kl"]
            if measured:
                steered = metrics[f"kl/{measure}"] = measured[0] / max(measured[1], 1.0)
            self.coef = self.controller.next_coef(self.coef, steered, int(rows))
        return penalty, metrics

    # -- checkpoints: the adaptive coefficient -------------------------------------------
    def state_dict(self) -> dict[str, float]:
        return {"coef": self.coef}

    def load_state_dict(self, state: dict[str, float]) -> None:
        if "coef" in state:  # older checkpoints: none (the coefficient was fixed)
            self.coef = float(state["coef"])

    def loss_term(self, logp: torch.Tensor, ref_logp: torch.Tensor, old_logp: torch.Tensor,
                  sequence_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(coef * KL, KL)`` per token for the loss (the second one logged as ``kl``).
        ``sequence_mask`` (with a sequence-level policy loss, GSPO): the bias correction
        weighs each row by its sequence ratio (TRL's ``importance_sampling_level="sequence"``)."""
        kl = kl_penalty(logp, ref_logp, self.estimator)
        if self.bias_correction:
            kl = importance_weighted_kl(kl, logp, old_logp, sequence_mask)
        return self.coef * kl, kl
