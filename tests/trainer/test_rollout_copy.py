"""Sampling from a copy of the policy in another dtype (rollout.dtype): the copy follows
the policy, the mismatch is measured and corrected, and runs without a copy are as before."""

import math

import pytest
import torch

from grpo_lab.rollout.packed_linear import pack_linears, packing_available
from grpo_lab.rollout.sampling import InverseCDFSampler
from grpo_lab.rollout.weight_copy import make_rollout_copy
from grpo_lab.trainer import Trainer
from tests.trainer.test_train_tiny import LENGTH_REWARD

SAMPLING_KEYS = (
    "sampling/sampling_logp_difference/mean", "sampling/sampling_logp_difference/max",
    "sampling/mismatch_kl", "sampling/raw_ratio/max",
    "sampling/importance_sampling_ratio/min", "sampling/importance_sampling_ratio/mean",
    "sampling/importance_sampling_ratio/max",
)


def test_the_sampler_records_the_log_prob_of_each_drawn_token():
    torch.manual_seed(0)
    scores = torch.randn(5, 11)
    sampler = InverseCDFSampler(record_logprobs=True)
    drawn = sampler(None, scores.clone()).argmax(dim=-1)
    expected = torch.log_softmax(scores, dim=-1).gather(1, drawn.unsqueeze(1)).squeeze(1)
    torch.testing.assert_close(sampler.logprobs[0], expected)


def test_the_bf16_copy_follows_the_policy_after_every_update(tiny_config):
    trainer = Trainer(tiny_config(*LENGTH_REWARD, "rollout.dtype=bfloat16", "trainer.max_steps=3",
                                  "trainer.lr=1e-2", "logger=local"))
    generate = trainer.rollout.generate
    gaps = []

    def checked(model, *args, **kwargs):
        batch = generate(model, *args, **kwargs)
        copy = trainer.rollout.copy
        assert copy is not None and copy is not trainer.policy
        policy = dict(trainer.policy.named_parameters())
        gaps.append(max(float((p.float() - policy[n].detach().to(torch.bfloat16).float()).abs().max())
                        for n, p in copy.named_parameters()))
        assert all(p.dtype == torch.bfloat16 and not p.requires_grad for p in copy.parameters())
        assert copy.config._attn_implementation == "eager"  # faster than sdpa in bf16 on a CPU
        if trainer.rollout.packed:  # packed again after every update: the copy computes as a fresh cast
            fresh = make_rollout_copy(trainer.policy, torch.bfloat16, attention="eager")
            ids = torch.randint(3, copy.config.vocab_size, (2, 9))
            with torch.inference_mode():
                torch.testing.assert_close(copy(input_ids=ids).logits, fresh(input_ids=ids).logits, rtol=0, atol=0)
        return batch

    trainer.rollout.generate = checked
    first = {n: p.detach().clone() for n, p in trainer.policy.named_parameters()}
    trainer.train()
    assert gaps == [0.0, 0.0, 0.0]  # at every rollout, the copy is the policy of that moment
    assert any(not torch.equal(first[n], p) for n, p in trainer.policy.named_parameters())
    assert next(trainer.policy.parameters()).dtype == torch.float32  # the trainer's weights stay fp32


def test_a_bf16_copy_logs_a_mismatch_and_weighs_within_the_cap(tiny_config):
    trainer = Trainer(tiny_config(*LENGTH_REWARD, "rollout.dtype=bfloat16", "rollout.importance_sampling_max=1.01",
                                  "logger=local"))
    trainer.train()
    for record in trainer.history:
        assert all(math.isfinite(record[k]) for k in SAMPLING_KEYS)
        assert record["sampling/sampling_logp_difference/max"] > 0  # bf16 and fp32 differ
        assert record["sampling/mismatch_kl"] >= 0
        assert record["sampling/importance_sampling_ratio/max"] <= 1.01
        assert record["sampling/importance_sampling_ratio/min"] <= record["sampling/importance_sampling_ratio/mean"]


def test_an_fp32_copy_samples_what_the_policy_would_with_no_mismatch(tiny_config):
    trainer = Trainer(tiny_config(*LENGTH_REWARD, "rollout.dtype=float32", "trainer.max_steps=1", "logger=local"))
    trainer.train()
    record = trainer.history[-1]
    # Incremental decoding and the training forward differ only in float rounding.
    assert record["sampling/sampling_logp_difference/max"] < 1e-4
    assert record["sampling/mismatch_kl"] < 1e-8
    assert record["sampling/importance_sampling_ratio/mean"] == pytest.approx(1.0, abs=1e-4)


def test_without_a_copy_batches_carry_no_sampler_log_probs_and_no_sampling_metrics(tiny_config):
    trainer = Trainer(tiny_config(*LENGTH_REWARD, "trainer.max_steps=1", "logger=local"))
    prompts, columns = trainer.sampler.next_batch()
    assert trainer.rollout.generate(trainer.policy, prompts, columns, group_size=2).sampling_logprobs is None
    trainer.train()
    assert trainer.rollout.copy is None
    assert not [k for k in trainer.history[-1] if k.startswith("sampling/")]


def test_the_precision_is_printed_and_recorded_in_the_manifest(tiny_config, tmp_path, capsys):
    import json

    trainer = Trainer(tiny_config(*LENGTH_REWARD, "rollout.dtype=bfloat16", "trainer.mixed_precision=bf16",
                                  "trainer.max_steps=1", "logger=local"))
    trainer.train()
    precision = json.loads((tmp_path / "run" / "manifest.json").read_text())["precision"]
    assert precision["training"] == "bf16 autocast over float32 weights, eager attention"  # on a CPU
    assert precision["sampling"] == "a bfloat16 copy of the policy, re-cast after every update"
    assert precision["correction"] == "token_truncate (max 2.0)"
    assert f"training {precision['training']}; sampling from {precision['sampling']}" in capsys.readouterr().out


def test_the_default_precision_says_the_training_model_samples(tiny_config):
    described = Trainer(tiny_config()).precision
    assert (described["training"], described["sampling"], described["correction"]) == (
        "float32", "the training model", "none needed")


def test_bf16_training_passes_on_a_cpu_attend_eagerly_and_evaluation_keeps_the_models_kernel(tiny_config):
    """Under bf16 autocast on a CPU the step's passes (policy, reference) use eager
    attention, faster there than SDPA; outside the step the models have their own again,
    and fp32 runs never switch."""
    seen = {}

    def recording(trainer):
        update = trainer.train_module.forward

        def forward(*args, **kwargs):
            seen.setdefault("update", set()).add(trainer.policy.config._attn_implementation)
            seen.setdefault("reference", set()).add(trainer.reference.config._attn_implementation)
            return update(*args, **kwargs)
        trainer.train_module.forward = forward

    bf16 = Trainer(tiny_config(*LENGTH_REWARD, "precision=bf16", "kl=k3", "trainer.max_steps=2", "logger=local"))
    own = bf16.policy.config._attn_implementation
    assert own == "sdpa"
    recording(bf16)
    bf16.train()
    assert seen == {"update": {"eager"}, "reference": {"eager"}}
    assert bf16.policy.config._attn_implementation == bf16.reference.config._attn_implementation == own

    seen.clear()
    fp32 = Trainer(tiny_config(*LENGTH_REWARD, "precision=fp32", "kl=k3", "trainer.max_steps=1", "logger=local"))
    recording(fp32)
    fp32.train()
    assert seen == {"update": {own}, "reference": {own}}
    assert "attention" not in fp32.precision["training"]


def test_eager_and_sdpa_attention_give_the_same_log_probs_under_bf16_autocast():
    """The switch changes the kernel, not the math: log-probs agree to bf16 rounding."""
    from grpo_lab.engine.forward import completion_forward
    from grpo_lab.models.loading import load_policy_and_tokenizer
    from grpo_lab.trainer.precision import attention_implementation
    from tests.conftest import TINY, compose_config

    model, _ = load_policy_and_tokenizer(compose_config(TINY).model, torch.device("cpu"), torch.float32)
    torch.manual_seed(0)
    ids = torch.randint(3, model.config.vocab_size, (4, 12))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # a left-padded row
    completion = ids[:, -5:]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        sdpa = completion_forward(model, ids, mask, completion).logp
        with attention_implementation([model], "eager"):
            eager = completion_forward(model, ids, mask, completion).logp
    assert model.config._attn_implementation == "sdpa"
    torch.testing.assert_close(eager, sdpa, rtol=0.0, atol=0.05)


@pytest.mark.skipif(not packing_available(torch.device("cpu"), torch.bfloat16),
                    reason="this CPU's oneDNN has no bf16 kernels")
def test_packed_linears_compute_what_the_unpacked_copy_does():
    """A bf16 copy's linears on weights packed once give the unpacked layers' numbers,
    and every bf16 nn.Linear of the model is packed (the tied LM head included)."""
    from grpo_lab.models.loading import load_policy_and_tokenizer
    from tests.conftest import TINY, compose_config

    model, _ = load_policy_and_tokenizer(compose_config(TINY).model, torch.device("cpu"), torch.float32)
    plain, packed = (make_rollout_copy(model, torch.bfloat16, attention="eager") for _ in range(2))
    linears = sum(type(m) is torch.nn.Linear for m in packed.modules())
    assert pack_linears(packed) == linears > 0
    assert packed.get_output_embeddings().forward.__func__.__name__ == "_packed_forward"
    torch.manual_seed(0)
    ids = torch.randint(3, model.config.vocab_size, (3, 11))
    with torch.inference_mode():
        torch.testing.assert_close(packed(input_ids=ids).logits, plain(input_ids=ids).logits, rtol=0, atol=0)
    assert set(dict(packed.named_parameters())) == set(dict(plain.named_parameters()))  # refreshed by name as before
