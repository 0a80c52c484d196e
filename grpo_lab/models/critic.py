"""Value models for PPO: a scalar head, on its own backbone or on the policy's."""

from __future__ import annotations

import copy

import torch
from torch import nn

from grpo_lab.models.inputs import completion_positions, position_ids_from_mask, shared_prompt_passes


class ValueHead(nn.Module):
    """hidden state -> scalar value. Zero-initialized: the critic starts predicting 0
    for every state instead of noise, so the first advantages are the returns."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden.to(self.linear.weight.dtype)).squeeze(-1).float()


class CriticModel(nn.Module):
    """A critic as large as the policy: a copy of the policy's backbone (initialized
    from its weights) plus a :class:`ValueHead`. Trained by its own optimizer."""

    def __init__(self, backbone: nn.Module, hidden_size: int):
        super().__init__()
        self.backbone = backbone
        self.head = ValueHead(hidden_size)

    @classmethod
    def from_policy(cls, policy: nn.Module) -> "CriticModel":
        backbone = copy.deepcopy(policy.get_decoder())
        critic = cls(backbone, policy.config.hidden_size)
        param = next(policy.parameters())
        return critic.to(device=param.device, dtype=param.dtype)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, width: int, group_size: int = 1
    ) -> torch.Tensor:
        """Values ``[B, width]`` of the states before each completion token. Rows in whole
        groups of ``group_size`` sharing a prompt run each prompt once, as the policy does."""
        shared = shared_prompt_passes(self.backbone, input_ids, attention_mask, width, group_size)
        if shared is not None:
            head, tail = shared
            hidden = completion_positions(head.last_hidden_state, tail.last_hidden_state, group_size)
        else:
            hidden = self.backbone(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids_from_mask(attention_mask),
                use_cache=False,
            ).last_hidden_state[:, -(width + 1) : -1]
        return self.head(hidden)


def module_training_bytes(module: nn.Module, optimizer_states_per_param: int = 2) -> int:
    """Bytes of parameters + gradients + optimizer state (Adam keeps 2 per parameter)."""
    params = sum(p.numel() * p.element_size() for p in module.parameters() if p.requires_grad)
    return params * (2 + optimizer_states_per_param)
