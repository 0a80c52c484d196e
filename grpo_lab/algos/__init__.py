"""Pure tensor math of policy-gradient fine-tuning: no Hydra, no I/O, no models.

Every function here takes tensors and plain values and returns tensors, so each one
can be checked by hand (see tests/algos). The registries (advantage estimators, policy
losses, loss aggregations, KL estimators) are how a config names them.
"""

from grpo_lab.algos.advantages import ADVANTAGE_ESTIMATORS, group_advantages, register_advantage
from grpo_lab.algos.kl import KL_ESTIMATORS, importance_weighted_kl, kl_penalty
from grpo_lab.algos.logprobs import token_logprobs
from grpo_lab.algos.policy_loss import (
    LOSS_AGGREGATIONS,
    POLICY_LOSSES,
    aggregate,
    clip_loss,
    clipped_surrogate,
    loss_weights,
)

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "KL_ESTIMATORS",
    "LOSS_AGGREGATIONS",
    "POLICY_LOSSES",
    "aggregate",
    "clip_loss",
    "clipped_surrogate",
    "group_advantages",
    "importance_weighted_kl",
    "kl_penalty",
    "loss_weights",
    "register_advantage",
    "token_logprobs",
]
