"""A learned reward model as one more reward function (as TRL accepts a model id in
``reward_funcs``).

The model is a sequence classifier with one output (``AutoModelForSequenceClassification``,
``num_labels=1``) loaded from a hub id or a local folder. Each completion is scored
with its prompt: chat prompts go through the reward model's own chat template (its
tokenizer may differ from the policy's), plain prompts are concatenated. Scoring is
batched (``reward.model_batch_size``), without gradients, with right padding so the
classifier reads the last real token, on its own device and dtype (``reward.model_device``,
``reward.model_dtype``; by default the policy's). With ``reward.model_normalize`` scores
are standardized by a running mean and std over every score so far (the reward scaling
of RLHF PPO implementations), so a reward model's arbitrary logit scale does not decide
its weight in a mix. The last texts scored are kept (``last_texts``)
for the sample records: what the reward model saw, chat template included.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import torch

from grpo_lab.errors import ConfigError
from grpo_lab.rewards.answers import completion_text

SumFn = Callable[[list[float]], list[float]]


class RunningMoments:
    """Mean and std of every value seen, updated batch by batch (Chan et al. 1979's
    pairwise combination of count, mean and sum of squared deviations). ``sum_fn``
    adds per-process lists over all processes, so every process keeps the statistics
    of the global batch."""

    def __init__(self, sum_fn: SumFn | None = None, eps: float = 1e-8):
        self.count, self.mean, self.m2 = 0.0, 0.0, 0.0
        self.sum_fn = sum_fn or (lambda values: values)
        self.eps = eps

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.count) if self.count else 1.0

    def update(self, values: Sequence[float]) -> None:
        n, total = self.sum_fn([float(len(values)), float(sum(values))])
        if n == 0:
            return
        mean = total / n
        (m2,) = self.sum_fn([float(sum((v - mean) ** 2 for v in values))])
        delta = mean - self.mean
        count = self.count + n
        self.m2 += m2 + delta * delta * self.count * n / count
        self.mean += delta * n / count
        self.count = count

    def normalize(self, values: Sequence[float], update: bool = True) -> list[float]:
        """Adds ``values`` to the statistics (unless ``update`` is false), then
        standardizes them."""
        if update:
            self.update(values)
        return [(v - self.mean) / (self.std + self.eps) for v in values]

    def state_dict(self) -> dict[str, float]:
        return {"count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: Mapping[str, float]) -> None:
        self.count, self.mean, self.m2 = float(state["count"]), float(state["mean"]), float(state["m2"])


def _dtype(name: str | None, default: torch.dtype) -> torch.dtype:
    from grpo_lab.models.loading import DTYPES

    if name is None:
        return default
    if name not in DTYPES:
        raise ConfigError(f"reward.model_dtype={name!r}; allowed: {', '.join(DTYPES)} (or null: the policy's)")
    return DTYPES[name]


class RewardModelScorer:
    """Callable with the reward-function signature: ``f(prompts, completions, **_)``."""

    def __init__(self, name: str, path: str, device: torch.device, dtype: torch.dtype,
                 batch_size: int = 16, max_length: int = 1024, normalize: bool = False,
                 sum_fn: SumFn | None = None):
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
        self.moments = RunningMoments(sum_fn) if normalize else None
        self.last_texts: list[str] = []
        # Frozen while scoring held-out completions: evaluation must not move the
        # statistics that training rewards are normalized with.
        self.frozen = False
        # Raw scores (held-out evaluation): normalized by moments that move as training
        # goes, every evaluation would be on a scale of its own (step 0's on none).
        self.raw = False
        self.__name__ = f"reward_model:{name}"
        self.source = f"reward model {path}"

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
        self.last_texts = texts
        scores: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            encoded = self.tokenizer(
                texts[start : start + self.batch_size], return_tensors="pt", padding=True,
                truncation=True, max_length=self.max_length, add_special_tokens=False,
            ).to(self.device)
            logits = self.model(**encoded).logits
            scores.extend(logits[:, 0].float().tolist())
        if self.moments is None or self.raw:
            return scores
        return self.moments.normalize(scores, update=not self.frozen)

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to score as this one would: the running statistics."""
        return {"moments": self.moments.state_dict() if self.moments is not None else None}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.moments is not None and state.get("moments"):
            self.moments.load_state_dict(state["moments"])


def build_reward_models(cfg: Any, device: torch.device, dtype: torch.dtype,
                        sum_fn: SumFn | None = None) -> dict[str, RewardModelScorer]:
    """One scorer per ``reward.models`` entry that ``reward.weights`` uses, on
    ``reward.model_device`` / ``reward.model_dtype`` (null: ``device`` / ``dtype``, the
    policy's). ``sum_fn``: sums lists over processes, for the running normalization."""
    models: Mapping[str, str] = cfg.models or {}
    unused = sorted(set(models) - set(cfg.weights))
    if unused:
        raise ConfigError(f"reward.models has {unused} without a weight; add reward.weights.{unused[0]}=<w>")
    clash = sorted(set(models) & set(cfg.functions or {}))
    if clash:
        raise ConfigError(f"reward name {clash[0]!r} is in both reward.models and reward.functions")
    if not models:
        return {}
    rm_device = torch.device(cfg.model_device) if cfg.model_device else device
    rm_dtype = _dtype(cfg.model_dtype, dtype)
    return {
        name: RewardModelScorer(name, str(path), rm_device, rm_dtype, cfg.model_batch_size,
                                cfg.model_max_length, cfg.model_normalize, sum_fn)
        for name, path in models.items()
    }
