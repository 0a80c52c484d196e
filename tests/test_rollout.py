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


def test_gumbel_argmax_samples_the_softmax_distribution():
    from grpo_lab.rollout.sampling import sampling_processors

    torch.manual_seed(0)
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, float("-inf")]]).repeat(40_000, 1)
    processors = sampling_processors(temperature=0.7, top_k=0, top_p=1.0)
    draws = processors(None, logits.clone()).argmax(dim=-1)
    frequencies = torch.bincount(draws, minlength=5).float() / len(draws)
    expected = torch.softmax(logits[0] / 0.7, dim=-1)
    torch.testing.assert_close(frequencies, expected, atol=0.01, rtol=0)
    assert frequencies[4] == 0  # a filtered (-inf) token is never drawn


def test_top_k_and_top_p_filter_before_sampling():
    from grpo_lab.rollout.sampling import sampling_processors

    logits = torch.tensor([[3.0, 2.9, 0.0, -5.0]]).repeat(2000, 1)
    top_k = sampling_processors(1.0, top_k=2, top_p=1.0)(None, logits.clone()).argmax(-1)
    top_p = sampling_processors(1.0, top_k=0, top_p=0.5)(None, logits.clone()).argmax(-1)
    assert set(top_k.tolist()) == {0, 1}
    assert set(top_p.tolist()) <= {0, 1}


def test_row_seeds_make_each_sample_independent_of_the_rest_of_the_batch(tiny_config):
    """What lets N processes sample exactly what 1 process samples from the same batch."""
    trainer = Trainer(tiny_config("rollout.max_new_tokens=10", "trainer.batch_size=4"))
    prompts, columns = trainer.sampler.next_batch()
    seeds = list(range(100, 116))
    whole = trainer.rollout.generate(trainer.policy, prompts, columns, 4, seeds)
    second_half = trainer.rollout.generate(trainer.policy, prompts[2:], {k: v[2:] for k, v in columns.items()},
                                           4, seeds[8:])
    assert whole.completion_texts[8:] == second_half.completion_texts
    reseeded = trainer.rollout.generate(trainer.policy, prompts, columns, 4, [s + 1 for s in seeds])
    assert reseeded.completion_texts != whole.completion_texts


def test_spare_room_cache_layer_holds_what_concatenation_holds():
    from transformers.cache_utils import DynamicLayer

    from grpo_lab.models.inputs import SpareRoomLayer

    torch.manual_seed(0)
    prompt_k, prompt_v = torch.randn(4, 3, 5, 8), torch.randn(4, 3, 5, 8)
    plain = DynamicLayer()
    plain.update(prompt_k, prompt_v)
    spare = SpareRoomLayer(prompt_k, prompt_v, capacity=7)
    for _ in range(6):  # past the capacity: the buffers grow
        k, v = torch.randn(4, 3, 1, 8), torch.randn(4, 3, 1, 8)
        expected, got = plain.update(k, v), spare.update(k, v)
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    assert spare.get_seq_length() == plain.get_seq_length() == 11


def test_both_backends_implement_the_rollout_protocol():
    from grpo_lab.rollout import ROLLOUT_BACKENDS, RolloutBackend

    for name in ("hf", "vllm"):
        cls = ROLLOUT_BACKENDS.get_entry(name)
        assert isinstance(cls.samples_off_policy, bool)
        assert callable(cls.generate) and callable(cls.sync_weights), name
    # An instance is checked structurally (the vLLM one needs a GPU to construct).
    hf_backend = object.__new__(ROLLOUT_BACKENDS.get_entry("hf"))
    assert isinstance(hf_backend, RolloutBackend)
