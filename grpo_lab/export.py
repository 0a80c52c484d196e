"""``grpo-lab-export``: a checkpoint's policy as a transformers model folder.

    grpo-lab-export outputs/run/checkpoints/step_00000040 exported/
    grpo-lab-export outputs/run exported/        # the run's newest intact checkpoint

The folder holds the config, the weights (``model.safetensors``, tied embeddings
written once) and the tokenizer, and loads with ``AutoModelForCausalLM.from_pretrained``
and vLLM. Every checkpoint exports the same way, a sharded run's (``trainer.distributed=
fsdp``) included: its policy weights are written whole. LoRA adapters are merged into
the base weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

from grpo_lab.errors import ConfigError, exit_on_user_error


def export_policy(checkpoint: str | Path, out: str | Path) -> Path:
    """Writes ``checkpoint``'s policy (a checkpoint folder or a run folder) into ``out``;
    returns the checkpoint folder that was exported."""
    import torch

    from grpo_lab.checkpoint_folder import CONFIG_FILE, load_policy_weights, resolve_resume
    from grpo_lab.config.schema import ModelConfig
    from grpo_lab.models.loading import load_policy_and_tokenizer, resolve_dtype

    folder = resolve_resume(str(checkpoint), ".", key="checkpoint")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"export folder {out} is not empty; name a new or empty folder")
    saved = OmegaConf.load(folder / CONFIG_FILE)
    model_cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.to_container(saved.model, resolve=True))
    cpu = torch.device("cpu")
    policy, tokenizer = load_policy_and_tokenizer(model_cfg, cpu, resolve_dtype(saved.trainer.dtype, cpu),
                                                  checkpoint_generation_config=True)
    load_policy_weights(policy, folder)
    if model_cfg.lora.enabled:
        policy = policy.merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    policy.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="grpo-lab-export", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a checkpoint folder, or a run folder (its newest intact checkpoint)")
    parser.add_argument("out", help="the folder to write (new or empty)")
    args = parser.parse_args(argv)
    with exit_on_user_error("grpo-lab-export"):
        folder = export_policy(args.checkpoint, args.out)
    print(f"grpo-lab-export: {folder} -> {args.out}", file=sys.stdout)


if __name__ == "__main__":
    main()
