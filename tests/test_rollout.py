"""The HF rollout backend: groups, masks, and the shared prompt prefill."""

import torch

from grpo_lab.trainer import Trainer


def test_prefill_once_per_group_samples_the_same_tokens(tiny_config):
    trainer = Trainer(tiny_config("rollout.max_new_tokens=10"))
    prompts, columns = trainer.sampler.next_batch()

    def sample(shared):
        trainer.rollout.cfg.share_prompt_prefill = shared
        torch.manual_seed(123)
        return trainer.rollout.generate(trainer.policy, prompts, columns, group_size=4)

    plain, shared = sample(False), sample(True)
    assert torch.equal(plain.completion_ids, shared.completion_ids)
    assert torch.equal(plain.prompt_ids, shared.prompt_ids)
    assert plain.completion_texts == shared.completion_texts


def test_groups_are_contiguous_and_masks_end_at_eos(tiny_config):
    trainer = Trainer(tiny_config("rollout.max_new_tokens=10"))
    prompts, columns = trainer.sampler.next_batch()
    batch = trainer.rollout.generate(trainer.policy, prompts, columns, group_size=4)
    assert batch.size == 4 * len(prompts)
    assert batch.prompts[:4] == [prompts[0]] * 4 and batch.columns["answer"][4] == columns["answer"][1]
    eos = trainer.tokenizer.eos_token_id
    for ids, mask in zip(batch.completion_ids, batch.completion_mask):
        n = int(mask.sum())
        assert (ids[: n - 1] != eos).all() and mask[:n].all() and not mask[n:].any()
