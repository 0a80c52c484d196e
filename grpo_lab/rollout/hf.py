"""Sampling with transformers ``generate`` (CPU and GPU)."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from grpo_lab.rollout.assemble import (
    assemble_batch,
    encode_prompts,
    eos_token_ids,
)
from grpo_lab.rollout.batch import RolloutBatch
from grpo_lab.rollout.sampling import sampling_processors
from grpo_lab.rollout.weight_copy import RolloutCopy
from grpo_lab.models.inputs import cache_kwargs, output_cache, position_ids_from_mask, with_spare_room


class HFGenerateBackend:
    # Samples with the training model, or with a copy of it in another dtype
    # (rollout.dtype). Either way the trainer's policy has not moved since sampling, so
    # no old-policy pass is needed at one iteration: the training forward gives pi_old,
    # and a copy's own log-probs (kept on the batch) give the importance weights.
    samples_off_policy = False

    def __init__(self, cfg: Any, tokenizer: PreTrainedTokenizerBase, device: torch.device):
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.device = device
        self.eos_ids = eos_token_ids(tokenizer)
        self.rollout_copy = RolloutCopy(cfg.get("dtype"), device)

    @property
    def copy(self) -> torch.nn.Module | None:
        """The ``rollout.dtype`` copy that samples (None: the training model samples)."""
        return self.rollout_copy.model

    @property
    def packed(self) -> bool:
        return self.rollout_copy.packed

    def generate(
        self,
        model: torch.nn.Module,
        prompts: Sequence[Any],
        columns: dict[str, list[Any]],
        group_size: int,
        row_seeds: Sequence[int] | None = None,
    ) -> RolloutBatch:
        """``group_size`` samples of each prompt. ``row_seeds`` (one per sample, prompt
        by prompt) make each sample a function of its seed alone (see InverseCDFSampler)."""
        encoded = encode_prompts(self.tokenizer, prompts, self.device)
        model = self.rollout_copy.sampler(model)
        copied = model is self.copy
        # Greedy decoding over a processor that draws the token: exact sampling, minus the cost of
        # torch.multinomial (see rollout/sampling.py). A copy's log-probs are recorded.
        processors = sampling_processors(self.cfg.temperature, self.cfg.top_k, self.cfg.top_p,
                                         None if row_seeds is None else list(row_seeds), record_logprobs=copied)
        sampling = dict(
            do_sample=False,
            logits_processor=processors,
            max_new_tokens=self.cfg.max_new_tokens,
            min_new_tokens=self.cfg.min_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.eos_ids,
            # Each process samples its own rows alone: never wait for the others' (under
            # fsdp the weights are gathered whole first; transformers would otherwise sync
            # every decoding step of an FSDP model across processes).
            synced_gpus=False,
        )
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():  # no autograd bookkeeping at all while sampling
                if self.cfg.share_prompt_prefill and group_size > 1 and encoded["input_ids"].shape[1] > 1:
                    output = self._generate_from_shared_prefill(model, encoded, group_size, sampling)
                else:
                    output = model.generate(
                        input_ids=encoded["input_ids"].repeat_interleave(group_size, dim=0),
                        attention_mask=encoded["attention_mask"].repeat_interleave(group_size, dim=0),
                        **sampling,
                    )
        finally:
            model.train(was_training)
        # A normal tensor again: training saves the token ids for its backward, which
        # inference-mode tensors refuse.
        output = output.clone()
        prompt_len = encoded["input_ids"].shape[1]
        completion_ids = output[:, prompt_len:]
        sampling_logprobs = self._recorded_logprobs(processors[-1].logprobs, completion_ids) if copied else None
        return assemble_batch(
            self.tokenizer, self.eos_ids, prompts, columns, group_size,
            prompt_ids=encoded["input_ids"].repeat_interleave(group_size, dim=0),
            prompt_mask=encoded["attention_mask"].repeat_interleave(group_size, dim=0),
            completion_ids=completion_ids,
            sampling_logprobs=sampling_logprobs,
        )

    def _recorded_logprobs(self, drawn: list[torch.Tensor], completion_ids: torch.Tensor) -> torch.Tensor:
        """The sampler's log-probs, one per decoding step, aligned with the completion tokens."""
        if not drawn:  # no decoding step
            return torch.zeros(completion_ids.shape, dtype=torch.float32, device=self.device)
        return torch.stack(drawn, dim=1).to(self.device)

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Called after every policy update: the training model samples with its live
        weights; a copy is re-cast from them."""
        self.rollout_copy.sync(model)

    def _generate_from_shared_prefill(
        self, model: torch.nn.Module, encoded: Any, group_size: int, sampling: dict[str, Any]
    ) -> torch.Tensor:
        """``generate`` for G copies of each prompt with the prompt prefilled once.

        ``num_return_sequences`` copies the prompts before the prefill, so each is run
        G times. Instead the prompts (all but their last token) go through the model
        once, their KV cache is expanded to the group, and ``generate`` continues from
        it: the same tokens (greedy outputs are identical, tested), a G-th of the
        prefill compute.
        """
        ids, mask = encoded["input_ids"], encoded["attention_mask"]
        positions = position_ids_from_mask(mask)
        # Only the cache is wanted: logits_to_keep=1 spares the LM head over the prompt.
        prefill = model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1],
                        position_ids=positions[:, :-1], use_cache=True, logits_to_keep=1)
        cache = with_spare_room(output_cache(prefill), group_size, ids.shape[1] + sampling["max_new_tokens"])
        return model.generate(
            input_ids=ids.repeat_interleave(group_size, dim=0),
            attention_mask=mask.repeat_interleave(group_size, dim=0),
            **cache_kwargs(model, cache),
            **sampling,
        )
