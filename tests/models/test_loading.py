"""Loading a policy: a checkpoint's own generation settings (an instruct model's
repetition penalty, top_p, top_k) do not reach rollouts or held-out decoding, which would
then draw from another distribution than the policy the loss and the KL assume; weights
are scored in the dtype they were trained in."""

import json

import torch

from grpo_lab.models.loading import load_policy_and_tokenizer
from grpo_lab.models.synthetic import TINY_QWEN2, write_synthetic_model
from tests.test_one_line_errors import model_config


def greedy(model, tokenizer) -> list[int]:
    ids = tokenizer(["1 + 1 = 2, 2 + 2 = 4"], return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=24, min_new_tokens=24)
    return out[0, ids.shape[1]:].tolist()


def test_the_checkpoints_generation_settings_are_said_and_not_applied(tmp_path, capsys):
    folder = write_synthetic_model(tmp_path / "m", TINY_QWEN2)
    settings = json.loads((folder / "generation_config.json").read_text())
    settings.update(repetition_penalty=5.0, top_k=20, top_p=0.8, temperature=0.7)
    (folder / "generation_config.json").write_text(json.dumps(settings))
    cfg, cpu = model_config(folder), torch.device("cpu")

    torch.manual_seed(0)
    policy, tokenizer = load_policy_and_tokenizer(cfg, cpu, torch.float32)
    assert "its generation_config sets repetition_penalty=5.0, temperature=0.7, top_k=20, top_p=0.8; not applied" \
        in capsys.readouterr().err
    assert policy.generation_config.repetition_penalty in (None, 1.0)  # none
    assert (policy.generation_config.eos_token_id, policy.generation_config.pad_token_id) == \
        (settings["eos_token_id"], settings["pad_token_id"])  # the token ids stay

    torch.manual_seed(0)  # the same weights, the checkpoint's settings kept (as an export keeps them)
    kept, _ = load_policy_and_tokenizer(cfg, cpu, torch.float32, checkpoint_generation_config=True)
    assert kept.generation_config.repetition_penalty == 5.0
    plain = greedy(policy, tokenizer)
    assert len(set(plain)) < len(plain)  # a tiny model's greedy text repeats itself ...
    assert greedy(kept, tokenizer) != plain  # ... which the penalty would have changed, greedy or not


def test_weights_are_scored_in_the_dtype_they_were_trained_in(monkeypatch):
    """trainer.dtype=auto keeps full fine-tuning's weights in float32 on a GPU with bf16
    too (bf16 would round most updates away), a frozen LoRA base in bf16; grpo-lab-eval
    loads a checkpoint by the same rule (it took bf16 on such a GPU)."""
    from omegaconf import OmegaConf

    from grpo_lab.models.loading import weights_dtype

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    gpu = torch.device("cuda")
    full, lora = (OmegaConf.create({"lora": {"enabled": on}}) for on in (False, True))
    auto = OmegaConf.create({"dtype": "auto"})
    assert weights_dtype(auto, full, gpu) == torch.float32
    assert weights_dtype(auto, lora, gpu) == torch.bfloat16
    assert weights_dtype(OmegaConf.create({"dtype": "bfloat16"}), full, gpu) == torch.bfloat16
    assert weights_dtype(auto, lora, torch.device("cpu")) == torch.float32
