"""Sampling with a vLLM engine colocated with training on the same GPU.

As TRL's ``vllm_mode="colocate"``: the engine lives in the training process
(``distributed_executor_backend="external_launcher"``: it joins this process's
torch.distributed job instead of starting workers of its own), takes
``rollout.vllm.gpu_memory_utilization`` of the GPU, and after every policy update the
trainer calls :meth:`VLLMBackend.sync_weights`, which copies the policy's weights into
the engine's model in place (LoRA adapters merged in on the fly).

The engine is built at the first ``generate`` from the policy's own config with
``load_format="dummy"`` (no checkpoint is read) and then receives the policy's weights,
so it starts from exactly what is being trained: random-init test models, resumed
checkpoints and LoRA policies alike.

vLLM's kernels differ numerically from the training model's, so its samples are
slightly off-policy: ``samples_off_policy = True`` makes the trainer recompute the
sampling log-probs with the training model. vLLM's own log-probs of the sampled tokens
are kept on the batch (``RolloutBatch.sampling_logprobs``).

Written against vLLM 0.10-0.11 (V1 engine); the engine's model is reached as TRL does
(``llm_engine.model_executor.driver_worker.model_runner``), with ``LLM.apply_model`` as
the fallback where that attribute path is gone.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import os
import re
import socket
import tempfile
from typing import Any, Iterable, Iterator, Sequence

import torch
from transformers import PreTrainedTokenizerBase

from grpo_lab.errors import ConfigError
from grpo_lab.models.lora import is_lora
from grpo_lab.rollout.assemble import (
    assemble_batch,
    encode_prompts,
    eos_token_ids,
    right_pad,
)
from grpo_lab.rollout.batch import RolloutBatch

ENGINE_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


class VLLMBackend:
    # vLLM's kernels are not the training model's: the trainer recomputes the sampling
    # log-probs with the training model before the update.
    samples_off_policy = True

    def __init__(self, cfg: Any, tokenizer: PreTrainedTokenizerBase, device: torch.device):
        if device.type != "cuda":
            raise ConfigError(
                f"rollout.backend=vllm needs a CUDA GPU (trainer.device={device}); "
                "use rollout.backend=hf on CPU"
            )
        if importlib.util.find_spec("vllm") is None:
            raise ConfigError("rollout.backend=vllm needs vllm: pip install 'grpo-lab[vllm]'")
        try:
            import vllm  # noqa: F401  (fail here, before training starts, not at the first step)
        except ImportError as err:
            raise ConfigError(
                f"rollout.backend=vllm: vllm is installed but does not import "
                f"({str(err).splitlines()[0]}); reinstall it for this torch: pip install 'grpo-lab[vllm]'"
            ) from None
        vcfg = cfg.vllm
        if not 0.0 < vcfg.gpu_memory_utilization <= 1.0:
            raise ConfigError(
                f"rollout.vllm.gpu_memory_utilization={vcfg.gpu_memory_utilization} must be in (0, 1]"
            )
        if vcfg.dtype != "auto" and vcfg.dtype not in ENGINE_DTYPES:
            raise ConfigError(f"rollout.vllm.dtype={vcfg.dtype!r}; allowed: auto, {', '.join(ENGINE_DTYPES)}")
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.device = device
        self.eos_ids = eos_token_ids(tokenizer)
        self.llm: Any = None  # built at the first generate, from the policy
        self.dtype: torch.dtype | None = None
        self._model_dir: tempfile.TemporaryDirectory | None = None
        self._sleeping: set[str] = set()  # sleep-mode tags now released

    # -- sampling -----------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        model: torch.nn.Module,
        prompts: Sequence[Any],
        columns: dict[str, list[Any]],
        group_size: int,
        row_seeds: Sequence[int] | None = None,
    ) -> RolloutBatch:
        """``group_size`` samples of each prompt, laid out as the HF backend lays them out.
        ``row_seeds`` (one per sample) become per-request seeds."""
        if self.llm is None:
            self._start_engine(model)
        # Tokenized here, as the HF backend does, so both backends train on the same prompt ids.
        encoded = encode_prompts(self.tokenizer, prompts, self.device)
        prompt_ids = encoded["input_ids"].repeat_interleave(group_size, dim=0)
        prompt_mask = encoded["attention_mask"].repeat_interleave(group_size, dim=0)
        # One request per sample: its sample is a function of its own seed, and the
        # engine's prefix cache still computes each prompt once for its group.
        requests = [{"prompt_token_ids": ids} for ids in unpadded(prompt_ids, prompt_mask)]
        seeds = [None] * len(requests) if row_seeds is None else [int(s) for s in row_seeds]
        if len(seeds) != len(requests):
            raise ValueError(f"{len(seeds)} row seeds for {len(requests)} samples")
        params = [self._sampling_params(seed) for seed in seeds]
        self._wake("weights", "kv_cache")
        outputs = self.llm.generate(requests, sampling_params=params, use_tqdm=False)
        if self.cfg.vllm.sleep_mode:
            self._sleep()
        samples = [out.outputs[0] for out in outputs]
        return batch_from_token_lists(
            self.tokenizer, self.eos_ids, prompts, columns, group_size, prompt_ids, prompt_mask,
            [list(s.token_ids) for s in samples], sampled_token_logprobs(samples),
        )

    def _sampling_params(self, seed: int | None) -> Any:
        from vllm import SamplingParams

        cfg = self.cfg
        return SamplingParams(
            n=1,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            top_k=cfg.top_k if cfg.top_k > 0 else -1,  # -1: vLLM's "no top-k" in every version
            max_tokens=cfg.max_new_tokens,
            min_tokens=cfg.min_new_tokens,
            seed=seed,
            # Stop on exactly the EOS set the completion masks cut at.
            stop_token_ids=list(self.eos_ids),
            logprobs=0,  # the sampled token's log-prob only
            detokenize=False,  # texts are decoded from the ids, as for the HF backend
        )

    # -- the engine -----------------------------------------------------------------------
    def _start_engine(self, model: torch.nn.Module) -> None:
        from vllm import LLM, EngineArgs

        vcfg = self.cfg.vllm
        self.dtype = self._engine_dtype(model)
        self._model_dir = tempfile.TemporaryDirectory(prefix="grpo-lab-vllm-")
        write_engine_model_dir(model, self.tokenizer, self._model_dir.name)
        set_distributed_env(self.device)
        args: dict[str, Any] = dict(
            model=self._model_dir.name,
            load_format="dummy",
            dtype=str(self.dtype).removeprefix("torch."),
            gpu_memory_utilization=vcfg.gpu_memory_utilization,
            max_model_len=vcfg.max_model_len,
            enable_sleep_mode=vcfg.sleep_mode,
            enforce_eager=vcfg.enforce_eager,
            enable_prefix_caching=True,
            distributed_executor_backend="external_launcher",
            seed=0,  # every training request carries its own seed
            # As TRL: recent vLLM's memory profiler overestimates with the default budget.
            max_num_batched_tokens=4096,
        )
        if "logprobs_mode" in {f.name for f in dataclasses.fields(EngineArgs)}:
            # Log-probs of the distribution actually sampled (after temperature, top-k/p).
            args["logprobs_mode"] = "processed_logprobs"
        self.llm = LLM(**args)
        self._load_weights(model)

    def _engine_dtype(self, model: torch.nn.Module) -> torch.dtype:
        if self.cfg.vllm.dtype != "auto":
            return ENGINE_DTYPES[self.cfg.vllm.dtype]
        policy_dtype = next(model.parameters()).dtype
        if policy_dtype in (torch.bfloat16, torch.float16):
            return policy_dtype
        # fp32 (master) weights: decode in 16 bits, the point of an inference engine.
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    @torch.no_grad()
    def sync_weights(self, model: torch.nn.Module) -> None:
        """Copy the policy's current weights into the engine (after every update)."""
        if self.llm is None:
            return  # no engine yet: it is built from the current weights at the next generate
        self._wake("weights")
        self._load_weights(model)
        # Prompt KV cached before the update was computed with the old weights.
        self.llm.reset_prefix_cache()

    def _load_weights(self, model: torch.nn.Module) -> None:
        weights = ((name, tensor.to(self.dtype)) for name, tensor in policy_weights(model))
        load_into_engine(self.llm, weights)

    def _wake(self, *tags: str) -> None:
        asleep = [t for t in tags if t in self._sleeping]
        if asleep:
            torch.cuda.empty_cache()  # give the training step's cached blocks back first
            self.llm.wake_up(tags=asleep)
            self._sleeping.difference_update(asleep)

    def _sleep(self) -> None:
        # Level 1 keeps a CPU copy of the weights: level 2 drops them, and models whose
        # weights are post-processed after loading can wake up wrong (vLLM issue 29341).
        self.llm.sleep(level=1)
        self._sleeping = {"weights", "kv_cache"}


# -- pure helpers (tested on CPU) ---------------------------------------------------------
def batch_from_token_lists(
    tokenizer: PreTrainedTokenizerBase,
    eos_ids: Sequence[int],
    prompts: Sequence[Any],
    columns: dict[str, list[Any]],
    group_size: int,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    token_rows: Sequence[Sequence[int]],
    logprob_rows: Sequence[Sequence[float]] | None = None,
) -> RolloutBatch:
    """The RolloutBatch of sampled token lists (one per row, EOS included when sampled):
    right-padded with the pad token, then cut and masked exactly as the HF backend's."""
    device = prompt_ids.device
    completion_ids = right_pad(token_rows, tokenizer.pad_token_id, torch.long, device)
    logprobs = None if logprob_rows is None else right_pad(logprob_rows, 0.0, torch.float32, device)
    return assemble_batch(tokenizer, eos_ids, prompts, columns, group_size,
                          prompt_ids, prompt_mask, completion_ids, logprobs)


def unpadded(ids: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
    """Each row's tokens without its padding."""
    return [row[m.bool()].tolist() for row, m in zip(ids.cpu(), mask.cpu())]


def sampled_token_logprobs(samples: Sequence[Any]) -> list[list[float]] | None:
    """Per sample (a vLLM ``CompletionOutput``), the log-prob of each sampled token;
    None when the engine returned none."""
    rows = []
    for sample in samples:
        if sample.logprobs is None:
            return None
        rows.append([step[token].logprob for token, step in zip(sample.token_ids, sample.logprobs)])
    return rows


def base_model(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model inside a peft wrapper (the trainer passes its unwrapped
    policy, never the data-parallel wrapper)."""
    return model.get_base_model() if is_lora(model) else model


def write_engine_model_dir(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, path: str) -> None:
    """The engine's model folder: the policy's config and tokenizer, no weights (they
    come from the policy itself once the engine is up)."""
    base = base_model(model)
    config = copy.deepcopy(base.config)
    # The engine picks its model class by this name; a model built from a config has none.
    config.architectures = [type(base).__name__]
    config.save_pretrained(path)
    tokenizer.save_pretrained(path)


def checkpoint_name(name: str) -> str:
    """A peft parameter name as the plain transformers checkpoint names it."""
    name = name.removeprefix("base_model.model.").replace(".base_layer.", ".")
    return re.sub(r"\.modules_to_save\.[^.]+\.", ".", name)


@torch.no_grad()
def policy_weights(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` for every parameter of the policy, named as its plain
    transformers checkpoint names it. A LoRA policy's adapters are merged into their base
    weights out of place (``W + scale * B @ A``): the trained weights are never touched,
    where an in-place merge and unmerge would round 16-bit base weights at every sync."""
    if not is_lora(model):
        for name, param in model.named_parameters():
            yield name, param.detach()
        return
    from peft.tuners.lora import LoraLayer

    layers = {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer)}
    for name, param in model.named_parameters():
        if ".lora_" in name or ".original_module." in name:
            continue  # adapter factors (merged below); frozen originals of modules_to_save
        tensor = param.detach()
        layer = layers.get(name.removesuffix(".base_layer.weight")) if name.endswith(".base_layer.weight") else None
        if layer is not None and not layer.merged and not layer.disable_adapters:
            for adapter in layer.active_adapters:
                if adapter in layer.scaling:
                    tensor = tensor + layer.get_delta_weight(adapter)
        yield checkpoint_name(name), tensor


def load_into_engine(llm: Any, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
    """Copy ``weights`` into the engine's model in place (its ``load_weights`` maps
    checkpoint names onto its fused layers)."""
    executor = getattr(llm.llm_engine, "model_executor", None)
    runner = getattr(getattr(executor, "driver_worker", None), "model_runner", None)
    if runner is not None:
        # The in-process engine's own module, as TRL's colocate mode reaches it;
        # get_model() unwraps the CUDA-graph wrapper where there is one.
        engine_model = runner.get_model() if hasattr(runner, "get_model") else runner.model
        engine_model.load_weights(weights)
    else:
        # Later vLLM: run the load inside the worker (in this process under external_launcher).
        llm.apply_model(lambda engine_model: engine_model.load_weights(weights))


def set_distributed_env(device: torch.device) -> None:
    """external_launcher makes the engine join this process's torch.distributed job (one
    engine per training process). Launchers (accelerate, torchrun) set these variables;
    a single process names itself rank 0 of 1 here, on the training GPU."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    for key, value in {"RANK": "0", "LOCAL_RANK": str(index), "WORLD_SIZE": "1",
                       "MASTER_ADDR": "127.0.0.1"}.items():
        os.environ.setdefault(key, value)
    if "MASTER_PORT" not in os.environ:
        with socket.socket() as s:  # a free port, so concurrent runs do not collide
            s.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(s.getsockname()[1])
