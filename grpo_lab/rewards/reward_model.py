"""A learned reward model as one more reward function (as TRL accepts a model id in
``reward_funcs``).

The model is a sequence classifier with one output (``AutoModelForSequenceClassification``,
``num_labels=1``) loaded from a hub id or a local folder. Each completion is scored
with its prompt: chat prompts go through the reward model's own chat template (its
tokenizer may differ from the policy's), plain prompts are concatenated. Scoring is
batched (``reward.model_batch_size``), without gradients, with right padding so the
classifier reads the last real token.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from grpo_lab.errors import ConfigError
from grpo_lab.rewards.answers import completion_text


class RewardModelScorer:
    """Callable with the reward-function signature: ``f(prompts, completions, **_)``."""

    def __init__(self, name: str, path: str, device: torch.device, dtype: torch.dtype,
                 batch_size: int = 16, max_length: int = 1024):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        if batch_size < 1:
            raise ConfigError(f"reward.model_batch_size={batch_size} must be >= 1")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype)
        except OSError as err:
            raise ConfigError(
                f"reward.models.{name}={path!r} is not a local model directory nor a reachable "
                f"hub id ({str(err).splitlines()[0]})"
            ) from None
        if self.model.config.num_labels != 1:
            raise ConfigError(
                f"reward.models.{name}={path!r} has {self.model.config.num_labels} outputs; "
                "a reward model has exactly 1 (num_labels=1)"
            )
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        # The classifier finds each row's last token through pad_token_id.
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.to(device).eval().requires_grad_(False)
        self.name = name
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.__name__ = f"reward_model:{name}"

    def text(self, prompt: Any, completion: Any) -> str:
        if isinstance(prompt, str):
            return prompt + completion_text(completion)
        if self.tokenizer.chat_template is None:
            raise ConfigError(
                f"reward.models.{self.name}: chat prompts need a tokenizer with a chat template"
            )
        answer = completion if isinstance(completion, list) else [{"role": "assistant", "content": completion}]
        return self.tokenizer.apply_chat_template(list(prompt) + list(answer), tokenize=False)

    @torch.no_grad()
    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float]:
        texts = [self.text(p, c) for p, c in zip(prompts, completions)]
        scores: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            encoded = self.tokenizer(
                texts[start : start + self.batch_size], return_tensors="pt", padding=True,
                truncation=True, max_length=self.max_length, add_special_tokens=False,
            ).to(self.device)
            logits = self.model(**encoded).logits
            scores.extend(logits[:, 0].float().tolist())
        return scores


def build_reward_models(cfg: Any, device: torch.device, dtype: torch.dtype) -> dict[str, RewardModelScorer]:
    """One scorer per ``reward.models`` entry that ``reward.weights`` uses."""
    models: Mapping[str, str] = cfg.models or {}
    unused = sorted(set(models) - set(cfg.weights))
    if unused:
        raise ConfigError(f"reward.models has {unused} without a weight; add reward.weights.{unused[0]}=<w>")
    clash = sorted(set(models) & set(cfg.functions or {}))
    if clash:
        raise ConfigError(f"reward name {clash[0]!r} is in both reward.models and reward.functions")
    return {
        name: RewardModelScorer(name, str(path), device, dtype, cfg.model_batch_size, cfg.model_max_length)
        for name, path in models.items()
    }
