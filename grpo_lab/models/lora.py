"""LoRA adapters through ``peft``, and the reference policy they make free.

With LoRA the base weights never change, so the initial policy (the KL reference) is
the same model with its adapters switched off: :class:`AdapterDisabledReference` runs
the policy inside peft's ``disable_adapter()`` context instead of keeping a deep copy,
which saves one whole model in memory.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from grpo_lab.errors import ConfigError


def apply_lora(model: nn.Module, cfg: Any) -> nn.Module:
    """``model`` wrapped with trainable LoRA adapters (``model.lora`` config); the
    base weights are frozen by peft."""
    from peft import LoraConfig, get_peft_model

    if cfg.r < 1:
        raise ConfigError(f"model.lora.r={cfg.r} must be >= 1")
    targets = list(cfg.target_modules)
    if not targets:
        raise ConfigError("model.lora.target_modules is empty; name modules or use ['all-linear']")
    target: str | list[str] = "all-linear" if targets == ["all-linear"] else targets
    lora_config = LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=target,
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, lora_config)
    except ValueError as err:  # peft names the target modules it could not find
        raise ConfigError(
            f"model.lora.target_modules={targets}: {str(err).splitlines()[0]}"
        ) from None


def is_lora(model: nn.Module) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


class AdapterDisabledReference:
    """The KL reference for a LoRA policy: the same module with its adapters disabled.

    Deliberately not an ``nn.Module``: it owns no parameters, is never moved, put in
    eval mode or saved; it only forwards calls under ``disable_adapter()``. Reference
    log-probs are computed without gradients (``batched_logprobs``), so dropout in the
    adapters does not matter here.
    """

    def __init__(self, policy: nn.Module):
        if not is_lora(policy):
            raise TypeError("AdapterDisabledReference needs a peft model")
        self.policy = policy

    @property
    def config(self) -> Any:
        return self.policy.config

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with self.policy.disable_adapter():
            return self.policy(*args, **kwargs)

    __call__ = forward

    def parameters(self):  # what code that asks a model for its device/dtype needs
        return self.policy.parameters()


def build_reference(policy: nn.Module) -> nn.Module | AdapterDisabledReference:
    """The frozen initial policy for the KL term: adapters off for a LoRA policy, a
    deep copy otherwise (full fine-tuning moves the base weights)."""
    import copy

    if is_lora(policy):
        return AdapterDisabledReference(policy)
    return copy.deepcopy(policy).eval().requires_grad_(False)


def trainable_parameter_count(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


@torch.no_grad()
def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter weights (what a LoRA checkpoint needs)."""
    from peft import get_peft_model_state_dict

    return get_peft_model_state_dict(model)


@torch.no_grad()
def load_lora_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    from peft import set_peft_model_state_dict

    result = set_peft_model_state_dict(model, state)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ConfigError(f"checkpoint adapter weights do not fit model.lora: unexpected {unexpected[:3]}")
