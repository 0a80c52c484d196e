"""Multi-turn rollouts: episodes with an environment (``rollout.environment``).

G episodes per prompt run together: each turn, every episode still running gets one
assistant turn from one batched ``generate`` call, then its environment's answer. The
trajectory's tokens are assembled as they come, never re-tokenized from text (text does
not round-trip through a tokenizer: the log-probs the update computes must be those of
the tokens sampled):

    prompt | model turn 1 (mask 1) | observation 1 (env, mask 0) | model turn 2 (mask 1) ...

An observation's tokens are what the chat template adds for that message after a model
turn that ended with EOS (the end-of-turn text, the message, the next assistant header),
found once per message by rendering a conversation with and without it. Environment
tokens are attended to but masked out of the loss, the KL and the entropy: in the
batch, ``completion_mask`` marks the model's tokens and ``env_mask`` the environment's.

Limits (the rollout's, not the environment's): ``rollout.max_turns`` model turns, and
``rollout.max_episode_tokens`` tokens after the prompt (model and environment); a model
turn that reaches ``rollout.max_new_tokens`` without EOS, or an observation that would
not fit, ends the episode as truncated. Each turn's samples are seeded per (row, turn).

With ``rollout.dtype`` the episodes are sampled by a copy of the policy in that dtype
(grpo_lab/rollout/weight_copy.py, as for one-turn rollouts): the sampler's log-prob of
each model token is kept (0 for environment tokens, which the loss never sees) for the
importance-sampling correction and the mismatch metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from grpo_lab.envs import Environment, build_environment
from grpo_lab.errors import ConfigError
from grpo_lab.rollout.assemble import eos_token_ids, prompt_texts
from grpo_lab.rollout.batch import RolloutBatch
from grpo_lab.rollout.sampling import sampling_processors
from grpo_lab.rollout.weight_copy import RolloutCopy

# Turn t of a row samples with seed (row seed + t * TURN_STRIDE) mod 2^63.
TURN_STRIDE = 1_000_003


@dataclass
class Episode:
    env: Environment | None  # None: a one-turn demonstration (grpo_lab/trainer/warm_start.py)
    prompt_ids: list[int]
    messages: list[dict[str, str]] = field(default_factory=list)  # after the prompt
    tokens: list[int] = field(default_factory=list)
    from_env: list[int] = field(default_factory=list)  # 1 per environment token
    sampler_logprobs: list[float] = field(default_factory=list)  # per token; 0 where not sampled
    turns: int = 0
    done: bool = False
    truncated: bool = False
    reward: float = 0.0
    info: dict[str, float] = field(default_factory=dict)


class ObservationTokens:
    """The tokens a message adds after a model turn that ended with EOS, in the chat
    template's own rendering (cached per message)."""

    PROBE = [{"role": "user", "content": "1"}, {"role": "assistant", "content": "2"}]

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.eos = tokenizer.eos_token
        self.cache: dict[tuple[str, str], list[int]] = {}
        head = tokenizer.apply_chat_template(self.PROBE, tokenize=False)
        cut = head.rfind(self.eos) if self.eos else -1
        if cut < 0:
            raise ConfigError("rollout.environment needs a chat template whose assistant turns end with the "
                              f"tokenizer's EOS ({self.eos!r}); this tokenizer's does not")
        self.head = head[: cut + len(self.eos)]

    def __call__(self, message: dict[str, str]) -> list[int]:
        key = (message["role"], message["content"])
        if key not in self.cache:
            full = self.tokenizer.apply_chat_template([*self.PROBE, message], tokenize=False,
                                                      add_generation_prompt=True)
            if not full.startswith(self.head):
                raise ConfigError("rollout.environment: the chat template renders earlier turns differently "
                                  "once a message follows them; multi-turn token assembly needs one that does not")
            self.cache[key] = self.tokenizer(full[len(self.head):], add_special_tokens=False)["input_ids"]
        return self.cache[key]


class MultiTurnRollout:
    """Episodes against ``rollout.environment`` (HF ``generate``), sampled by the training
    model or by its ``rollout.dtype`` copy (not with ``sample_with_copy=False``: held-out
    evaluation scores the training model itself)."""

    samples_off_policy = False

    def __init__(self, cfg: Any, tokenizer: Any, device: torch.device, sample_with_copy: bool = True):
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.device = device
        self.eos_ids = eos_token_ids(tokenizer)
        self.observation_tokens = ObservationTokens(tokenizer)
        self.max_turns = cfg.max_turns
        self.budget = cfg.max_episode_tokens or cfg.max_turns * cfg.max_new_tokens
        self.last_metrics: dict[str, float] = {}
        self.rollout_copy = RolloutCopy(cfg.get("dtype") if sample_with_copy else None, device)

    @property
    def copy(self) -> torch.nn.Module | None:
        """The ``rollout.dtype`` copy that samples (None: the training model samples)."""
        return self.rollout_copy.model

    def generate(self, model: torch.nn.Module, prompts: Sequence[Any], columns: dict[str, list[Any]],
                 group_size: int, row_seeds: Sequence[int] | None = None, greedy: bool = False) -> RolloutBatch:
        rows = [(p, {k: v[i] for k, v in columns.items()}) for i, p in enumerate(prompts) for _ in range(group_size)]
        episodes = [self._start(prompt, row) for prompt, row in rows]
        model = self.rollout_copy.sampler(model)
        record = model is self.copy and not greedy  # a copy's log-probs, for the correction
        was_training = model.training
        model.eval()
        try:
            for turn in range(self.max_turns):
                running = [i for i, e in enumerate(episodes) if not e.done]
                if not running:
                    break
                seeds = None if row_seeds is None else [(int(row_seeds[i]) + turn * TURN_STRIDE) % 2**63
                                                        for i in running]
                turns, logprobs = self._model_turns(model, [episodes[i] for i in running], seeds, greedy, record)
                for i, new, new_logprobs in zip(running, turns, logprobs):
                    self._advance(episodes[i], new, new_logprobs)
        finally:
            model.train(was_training)
        for e in episodes:
            if not e.done:  # the turn limit ended it
                e.truncated, e.done, e.reward = True, True, e.env.final_reward()
        self.last_metrics = episode_metrics(episodes)
        return episode_batch(episodes, [p for p, _ in rows], columns, group_size, self.tokenizer.pad_token_id,
                             self.device, sampler_logprobs=record)

    def sync_weights(self, model: torch.nn.Module) -> None:
        """After every policy update: a copy is re-cast (the training model samples live)."""
        self.rollout_copy.sync(model)

    def replay(self, prompts: Sequence[Any], columns: dict[str, list[Any]],
               scripts: Sequence[Sequence[str]]) -> RolloutBatch:
        """Episodes whose model turns are given as text (demonstrations for a warm start):
        assembled into tokens as sampled episodes are, the environment answering each
        turn. A script must end its episode within the limits."""
        episodes = []
        for i, (prompt, script) in enumerate(zip(prompts, scripts)):
            e = self._start(prompt, {k: v[i] for k, v in columns.items()})
            for text in script:
                if e.done:
                    break
                if e.turns == self.max_turns:
                    e.truncated = True
                    break
                tokens = self.tokenizer(text, add_special_tokens=False)["input_ids"] + self.eos_ids[:1]
                self._advance(e, tokens if len(tokens) <= self.cfg.max_new_tokens else tokens[: self.cfg.max_new_tokens])
            if e.truncated or not e.done:
                raise ConfigError(f"a demonstration of {len(script)} turns does not end its "
                                  f"rollout.environment={self.cfg.environment} episode within rollout.max_turns="
                                  f"{self.max_turns}, rollout.max_new_tokens={self.cfg.max_new_tokens} and the "
                                  f"episode's {self.budget} tokens; raise them or shorten the demonstration")
            episodes.append(e)
        return episode_batch(episodes, list(prompts), columns, 1, self.tokenizer.pad_token_id, self.device)

    # -- one episode --------------------------------------------------------------------
    def _start(self, prompt: Any, row: dict[str, Any]) -> Episode:
        env = build_environment(self.cfg.environment)
        conversation = env.reset(list(prompt), row)
        ids = self.tokenizer(prompt_texts(self.tokenizer, [conversation])[0], add_special_tokens=False)["input_ids"]
        return Episode(env=env, prompt_ids=ids)

    @torch.inference_mode()
    def _model_turns(self, model: torch.nn.Module, episodes: list[Episode], seeds: list[int] | None,
                     greedy: bool, record: bool = False) -> tuple[list[list[int]], list[list[float] | None]]:
        """One assistant turn for each episode: its new tokens, up to and including EOS,
        and (``record``) the sampler's log-prob of each."""
        sequences = [e.prompt_ids + e.tokens for e in episodes]
        width = max(len(s) for s in sequences)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in sequences], device=self.device)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences], device=self.device)
        processors = None if greedy else sampling_processors(
            self.cfg.temperature, self.cfg.top_k, self.cfg.top_p, seeds, record_logprobs=record)
        sampling = {} if processors is None else {"logits_processor": processors}
        # rollout.min_new_tokens holds for every sampled turn, as for a one-turn rollout;
        # greedy (held-out) turns stop at EOS, as held-out answers do.
        output = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, pad_token_id=pad,
                                eos_token_id=self.eos_ids, max_new_tokens=self.cfg.max_new_tokens,
                                min_new_tokens=0 if greedy else self.cfg.min_new_tokens,
                                synced_gpus=False, **sampling)
        # One [rows] tensor per decoding step: step k drew each row's k-th new token.
        drawn = torch.stack(processors[-1].logprobs, dim=1).tolist() if record and processors[-1].logprobs else None
        turns, logprobs = [], []
        for r, row in enumerate(output[:, width:].tolist()):
            end = next((k + 1 for k, t in enumerate(row) if t in self.eos_ids), len(row))
            turns.append(row[:end])
            logprobs.append(drawn[r][:end] if drawn is not None else None)
        return turns, logprobs

    def _advance(self, e: Episode, new: list[int], logprobs: list[float] | None = None) -> None:
        """Adds a model turn (and the sampler's log-probs of its tokens, if kept), then the
        environment's answer (or the end) to ``e``."""
        room = self.budget - len(e.tokens)
        ended = bool(new) and new[-1] in self.eos_ids
        if len(new) > room:
            new, ended = new[:room], False
        e.tokens += new
        e.from_env += [0] * len(new)
        e.sampler_logprobs += logprobs[: len(new)] if logprobs is not None else [0.0] * len(new)
        e.turns += 1
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        e.messages.append({"role": "assistant", "content": text})
        if not ended:  # cut by max_new_tokens or the episode budget
            e.truncated, e.done, e.reward = True, True, e.env.final_reward()
            return
        step = e.env.step(text)
        for k, v in step.info.items():
            e.info[k] = e.info.get(k, 0.0) + float(v)
        if step.done or step.observation is None:
            e.done, e.reward = True, float(step.reward)
            return
        observed = self.observation_tokens(step.observation)
        if len(e.tokens) + len(observed) >= self.budget:  # no room left to answer it
            e.truncated, e.done, e.reward = True, True, e.env.final_reward()
            return
        e.tokens += observed
        e.from_env += [1] * len(observed)
        e.sampler_logprobs += [0.0] * len(observed)
        e.messages.append(dict(step.observation))



def episode_batch(episodes: list[Episode], prompts: list[Any], columns: dict[str, list[Any]],
                  group_size: int, pad: int, device: torch.device, sampler_logprobs: bool = False) -> RolloutBatch:
    """The batch of finished episodes (``prompts``: one per episode; ``columns``: one
    value per prompt, repeated over its group); ``sampler_logprobs``: with the sampler's
    log-probs of the tokens (a copy sampled them)."""
    p_width = max(len(e.prompt_ids) for e in episodes)
    c_width = max(1, max(len(e.tokens) for e in episodes))
    prompt_ids = torch.tensor([[pad] * (p_width - len(e.prompt_ids)) + e.prompt_ids for e in episodes])
    prompt_mask = torch.tensor([[0] * (p_width - len(e.prompt_ids)) + [1] * len(e.prompt_ids) for e in episodes])
    completion_ids = torch.tensor([e.tokens + [pad] * (c_width - len(e.tokens)) for e in episodes])
    env_mask = torch.tensor([e.from_env + [0] * (c_width - len(e.tokens)) for e in episodes])
    real = torch.tensor([[1] * len(e.tokens) + [0] * (c_width - len(e.tokens)) for e in episodes])
    repeat = lambda items: [x for x in items for _ in range(group_size)]  # noqa: E731
    logprobs = None
    if sampler_logprobs:
        logprobs = torch.tensor([e.sampler_logprobs + [0.0] * (c_width - len(e.tokens)) for e in episodes],
                                dtype=torch.float32).to(device)
    return RolloutBatch(
        prompt_ids=prompt_ids.to(device),
        prompt_mask=prompt_mask.to(device),
        completion_ids=completion_ids.to(device),
        completion_mask=(real * (1 - env_mask)).to(device),
        env_mask=env_mask.to(device),
        sampling_logprobs=logprobs,
        truncated=torch.tensor([e.truncated for e in episodes], device=device),
        prompts=prompts,
        completions=[e.messages for e in episodes],
        completion_texts=[conversation_text(e.messages) for e in episodes],
        columns={**{k: repeat(v) for k, v in columns.items()}, "env_reward": [e.reward for e in episodes]},
        group_size=group_size,
    )


def conversation_text(messages: list[dict[str, str]]) -> str:
    """A readable episode for samples: one ``[role] content`` line per message."""
    return "\n".join(f"[{m['role']}] {m['content']}" for m in messages)


def episode_metrics(episodes: list[Episode]) -> dict[str, float]:
    """Per-step means over this process's episodes (``episodes/*``)."""
    n = len(episodes)
    keys = sorted({"tool_calls", "tool_errors"} | {k for e in episodes for k in e.info})
    metrics = {
        "episodes/turns": sum(e.turns for e in episodes) / n,
        "episodes/truncated_fraction": sum(e.truncated for e in episodes) / n,
        "episodes/env_tokens": sum(sum(e.from_env) for e in episodes) / n,
        "episodes/env_reward": sum(e.reward for e in episodes) / n,
    }
    metrics.update({f"episodes/{k}": sum(e.info.get(k, 0.0) for e in episodes) / n for k in keys})
    return metrics
