"""Loading policies and tokenizers: hub ids, local directories, embedded packages."""

from grpo_lab.models.embedded import EMBEDDED_MODELS, materialize_embedded
from grpo_lab.models.loading import load_policy_and_tokenizer, resolve_model_path, resolve_dtype

__all__ = [
    "EMBEDDED_MODELS",
    "load_policy_and_tokenizer",
    "materialize_embedded",
    "resolve_dtype",
    "resolve_model_path",
]
