"""Warm start: supervised steps on demonstrations before the first RL step (``warm_start.*``).

RL cannot reinforce what the policy never samples: the embedded model made no tool call
in 32 calculator episodes, even with a worked example in its system prompt. A few steps
of supervised fine-tuning on demonstrations (grpo_lab/envs/demonstrations.py) put the
behaviour within reach, as the SFT stage before RL does in TRL, verl and OpenRLHF
pipelines.

- Demonstrations are assembled into tokens exactly as sampled episodes are: the same
  prompt rendering, each turn's text then EOS, and in an episode the environment's real
  answer to each turn (grpo_lab/rollout/multi_turn.py ``replay``).
- The loss is the mean negative log-likelihood of the model's tokens over the step's
  demonstrations (environment tokens are not the model's and are left out).
- Its own AdamW (``warm_start.lr``) and its own seeded order of training rows; RL's
  optimizer, scheduler and generators start fresh after it, as after an SFT stage.
- It runs before the KL reference is copied, so the reference is the warm-started policy.
  A resumed run warms up again to rebuild that reference; the digest of the warm-started
  weights, kept in every checkpoint, must match (grpo_lab/trainer/checkpoint.py).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import torch

from grpo_lab.engine.forward import completion_forward
from grpo_lab.envs.demonstrations import demonstrate
from grpo_lab.errors import ConfigError
from grpo_lab.rollout.assemble import eos_token_ids, prompt_texts
from grpo_lab.rollout.batch import RolloutBatch
from grpo_lab.rollout.multi_turn import Episode, MultiTurnRollout, episode_batch
from grpo_lab.trainer.data import PromptSampler

# The warm start's rows are drawn in an order seeded apart from RL's (trainer.seed).
SEED_OFFSET = 7919


@dataclass
class WarmStartResult:
    losses: list[float]  # per step, before its update
    digest: str  # of the warm-started weights (weights_digest)
    seconds: float
    tokens: int  # model tokens trained on

    def summary(self) -> dict[str, Any]:
        return {"steps": len(self.losses), "loss_first": self.losses[0], "loss_last": self.losses[-1],
                "tokens": self.tokens, "seconds": round(self.seconds, 2), "digest": self.digest}

    def line(self, demonstrations: str) -> str:
        return (f"warm start: {len(self.losses)} steps on {demonstrations} demonstrations, loss "
                f"{self.losses[0]:.3f} -> {self.losses[-1]:.3f} ({self.seconds:.0f} s)")


def weights_digest(module: torch.nn.Module) -> str:
    """A short digest of every parameter's values (names in order)."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def demonstration_batch(cfg: Any, tokenizer: Any, prompts: list[Any], columns: dict[str, list[Any]],
                        device: torch.device, episodes: MultiTurnRollout | None = None) -> RolloutBatch:
    """The demonstrations of these rows, tokenized as sampled rollouts are; ``episodes``:
    the episode runner to reuse across steps (built here when None)."""
    rows = [{k: v[i] for k, v in columns.items()} for i in range(len(prompts))]
    scripts = [demonstrate(cfg.warm_start.demonstrations, row) for row in rows]
    if cfg.rollout.environment:
        episodes = episodes or MultiTurnRollout(cfg.rollout, tokenizer, device)
        return episodes.replay(prompts, columns, scripts)
    # One turn: the prompt as the rollout renders it, then the text and EOS.
    eos = eos_token_ids(tokenizer)[:1]
    episodes = []
    for text, script in zip(prompt_texts(tokenizer, prompts), scripts):
        if len(script) != 1:
            raise ConfigError(f"warm_start.demonstrations={cfg.warm_start.demonstrations} gave {len(script)} turns; "
                              "without rollout.environment a demonstration is one turn")
        tokens = tokenizer(script[0], add_special_tokens=False)["input_ids"] + eos
        episodes.append(Episode(env=None, prompt_ids=tokenizer(text, add_special_tokens=False)["input_ids"],
                                messages=[{"role": "assistant", "content": script[0]}],
                                tokens=tokens, from_env=[0] * len(tokens), done=True))
    return episode_batch(episodes, list(prompts), columns, 1, tokenizer.pad_token_id, device)


def warm_start(policy: torch.nn.Module, tokenizer: Any, dataset: Any, cfg: Any,
               device: torch.device) -> WarmStartResult | None:
    """``warm_start.steps`` supervised steps of ``policy`` in place; None when off."""
    settings = cfg.warm_start
    if not settings.steps:
        return None
    started = time.perf_counter()
    sampler = PromptSampler(dataset, settings.batch_size, cfg.trainer.seed + SEED_OFFSET)
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=settings.lr,
                                  weight_decay=0.0)
    micro = cfg.trainer.micro_batch_size
    # One runner for every step: its chat-template renderings of observations are cached.
    episodes = MultiTurnRollout(cfg.rollout, tokenizer, device) if cfg.rollout.environment else None
    losses, tokens = [], 0
    was_training = policy.training
    policy.train()
    for _ in range(settings.steps):
        prompts, columns = sampler.next_batch()
        batch = demonstration_batch(cfg, tokenizer, prompts, columns, device, episodes)
        mask = batch.completion_mask.float()
        count = mask.sum()
        total = 0.0
        for rows in torch.arange(batch.size).split(micro):
            logp = completion_forward(policy, batch.input_ids[rows], batch.attention_mask[rows],
                                      batch.completion_ids[rows]).logp
            loss = -(logp * mask[rows]).sum() / count  # the step's token mean, summed over micro-batches
            loss.backward()
            total += loss.item()
        if cfg.trainer.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.trainer.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(total)
        tokens += int(count.item())
    policy.train(was_training)
    return WarmStartResult(losses=losses, digest=weights_digest(policy), seconds=time.perf_counter() - started,
                           tokens=tokens)
