"""Dataclass schemas behind ``conf/``.

``conf/train.yaml`` lists ``train_schema`` first in its defaults, so every group option
and every command-line override is merged onto these typed, closed dataclasses: a typo
(``kl.cof=0.1``) or a wrong type (``trainer.max_steps=abc``) fails when the config is
composed, with the key named. Comments here are the reference for each option (and
``--help``'s text for it: grpo_lab/config/key_help.py). A leaf: registering these with
Hydra, and the resolvers the configs use, are grpo_lab/config/registration.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

DEFAULT_SYSTEM_PROMPT = (
    "Answer the question. Put your short reasoning in <reasoning> tags and the final "
    "number in <answer> tags, like this:\n<reasoning>2 + 3 = 5</reasoning>\n<answer>5</answer>"
)


@dataclass
class LoraConfig:
    # Train LoRA adapters (Hu et al. 2021, arXiv:2106.09685) through `peft`; the base
    # weights stay frozen. With kl.coef > 0 the reference model is the base with the
    # adapters disabled, so no second copy of the model is kept in memory.
    enabled: bool = False
    # Rank and scaling (the update is alpha / r * B @ A).
    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.0
    # Module names to adapt; "all-linear" adapts every linear layer but the LM head.
    target_modules: List[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


@dataclass
class ModelConfig:
    # Short label used in run names and logs.
    name: str = MISSING
    # Hub id ("Qwen/Qwen2.5-0.5B-Instruct"), local directory, or "embedded:<name>" for a
    # model shipped in a Python package (converted once, cached as safetensors).
    path: str = MISSING
    revision: Optional[str] = None
    # Random weights with the architecture of `path` (shrunk by config_overrides): for tests.
    random_init: bool = False
    config_overrides: Dict[str, Any] = field(default_factory=dict)
    trust_remote_code: bool = False
    # Where converted embedded models are cached.
    cache_dir: str = "${oc.env:GRPO_LAB_CACHE,'~/.cache/grpo-lab'}"
    # Low-rank adapters (peft) instead of full fine-tuning; see LoraConfig.
    lora: LoraConfig = field(default_factory=lambda: LoraConfig())


@dataclass
class TaskConfig:
    # Registered task: arithmetic | gsm8k | tldr, or your own builder by import path,
    # "my_pkg.module:fn" (fn(task_cfg) -> datasets.Dataset; see grpo_lab/tasks/base.py).
    name: str = MISSING
    # System message of question tasks' chat prompts (tldr rows bring their own prompts).
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    # Rows kept (arithmetic: rows generated); null keeps all.
    num_examples: Optional[int] = None
    seed: int = 0
    # arithmetic: operands drawn uniformly from [min_operand, max_operand].
    min_operand: int = 0
    max_operand: int = 10
    num_operands: int = 2
    operations: List[str] = field(default_factory=lambda: ["+", "-"])
    # arithmetic: share of the distinct problems reserved for the test split (chosen by
    # a hash of the expression, so train and test never share a problem).
    heldout_fraction: float = 0.2
    # gsm8k: hub id or local .jsonl file with `question` and `answer` fields.
    # tldr: hub id (trl-lib/tldr), local dataset folder, or .jsonl / .parquet file with
    # `prompt` and `completion` columns.
    path: Optional[str] = None
    subset: Optional[str] = "main"
    # train | test (arithmetic: the two disjoint parts of the problem space; hub
    # datasets: the split loaded). Evaluation sets it to eval.split.
    split: str = "train"


@dataclass
class RewardConfig:
    # Reward name -> weight; the step reward is the weighted sum. Names come from the
    # registry (correctness, correctness_lenient, format) or from `functions`.
    weights: Dict[str, float] = field(default_factory=dict)
    # Extra reward functions by import path, TRL signature: {"name": "pkg.module:fn"}.
    functions: Dict[str, str] = field(default_factory=dict)
    # A reward function that raises or returns NaN/inf for a sample: error (stop with a
    # message naming the function and sample) | skip (treat as "not applicable") | zero.
    # Faults are counted per step in reward_faults/<name>.
    on_fault: str = "error"
    # Learned reward models (sequence classification, one logit) by hub id or local dir:
    # {"name": "path"}; each scores prompt + completion and is weighted by weights.<name>.
    models: Dict[str, str] = field(default_factory=dict)
    # Completions per reward-model forward pass, and the token limit of one input.
    model_batch_size: int = 16
    model_max_length: int = 1024
    # Reward models' device ("cuda:1", "cpu") and dtype (float32 | bfloat16 | float16);
    # null: the policy's.
    model_device: Optional[str] = None
    model_dtype: Optional[str] = None
    # Standardize each reward model's scores by the running mean and std of all its
    # scores so far (kept in checkpoints).
    model_normalize: bool = False
    # DAPO's overlong reward shaping (arXiv:2503.14476, eq. 13): a completion longer than
    # rollout.max_new_tokens - overlong_buffer tokens loses overlong_penalty x the share
    # of the buffer it used (the full penalty at max_new_tokens). 0: off. Logged as
    # rewards/overlong/mean.
    overlong_buffer: int = 0
    overlong_penalty: float = 1.0


@dataclass
class AdvantageConfig:
    # group_std (DeepSeekMath GRPO) | group_mean (Dr. GRPO) | batch_std | rloo
    # (leave-one-out, Ahmadian et al. 2024) | reinforce_plus_plus (batch whitening, Hu et
    # al. 2025) | reinforce_plus_plus_baseline (group mean, then batch whitening) |
    # pass_at_k (trains pass@k, Chen et al. 2025), or your own estimator by import path,
    # "my_pkg.module:fn" (signature: grpo_lab/algos/advantages.py).
    normalization: str = "group_std"
    # Added to the std before dividing; >= 0. A tie (a group, or for reinforce_plus_plus the
    # whole batch, whose rewards are all equal) gets exactly 0 at every eps, 0 included.
    eps: float = 1e-4
    # pass_at_k only: the k of pass@k, 1 <= k < algorithm.group_size (k = 1 is group
    # mean/std with the population std).
    pass_k: int = 2
    # pass_at_k only: a completion with reward >= this counts as solved. 1.0 splits the
    # built-in math mixes (a right answer earns >= 1.0, a wrong one at most 0.8 of format).
    pass_threshold: float = 1.0


@dataclass
class KLConfig:
    # Weight of KL(policy || reference) in the loss (DeepSeekMath beta). 0 loads no
    # reference model at all.
    coef: float = 0.0
    # k1 | k2 | k3 (Schulman, "Approximating KL Divergence") | abs (|log ratio|) |
    # k3_k2grad (k3's value, k2's gradient: verl's "k3+").
    estimator: str = "k3"
    # loss: beta * KL added to the per-token loss (GRPO, DeepSeekMath eq. 3).
    # reward: -beta * KL(rollout policy, reference) added to each token's reward (classic
    # RLHF PPO; for GRPO, summed per completion and subtracted from its reward).
    placement: str = "loss"
    # placement=loss only: multiply each token's estimate by the importance ratio
    # pi_theta / pi_old, kept differentiable (TRL use_bias_correction_kl, default True
    # there; DeepSeek-V3.2's unbiased KL estimate): the gradient becomes that of the
    # reverse KL(policy || reference), on-policy too. Off: DeepSeekMath's eq. 4 and
    # verl's form. See grpo_lab/algos/kl.py.
    bias_correction: bool = False
    # placement=reward only: adapt coef each step towards this KL (measured as
    # target_measure), coef *= 1 + clip(kl / target - 1, -0.2, 0.2) * completions / horizon
    # (Ziegler et al. 2019, arXiv:1909.08593, sec. 2.2). null: coef stays fixed. The
    # coefficient is logged as kl_coef and kept in checkpoints.
    target: Optional[float] = None
    # Completions over which the controller closes the gap (its time constant).
    horizon: float = 10000.0
    # Which KL `target` is: token_mean (the logged `kl`, a mean over the step's tokens) |
    # seq_mean (verl: the mean over completions of each one's token mean) | seq_sum
    # (Ziegler et al.: the mean over completions of each one's summed KL; their target 6
    # nats is one). The last two are logged as kl/seq_mean, kl/seq_sum.
    target_measure: str = "token_mean"


@dataclass
class DynamicSamplingConfig:
    # DAPO's dynamic sampling (Yu et al. 2025, arXiv:2503.14476, sec. 3.2): groups whose
    # rewards are all equal (no signal for group advantages) are dropped and more prompts
    # are sampled until trainer.batch_size groups have signal, or `max_rounds` rounds of
    # generation are spent (then the batch is filled with the latest dropped groups).
    # Every round's generation counts in budget/* and time/generation.
    enabled: bool = False
    max_rounds: int = 3


@dataclass
class CriticConfig:
    # separate: a critic as large as the policy, initialized from its weights, own
    # optimizer. shared: a value head on the policy backbone (cheaper; see PPO's docs).
    mode: str = "separate"
    # Learning rate of the separate critic.
    lr: float = 1e-5
    # Steps at the start that train only the critic (policy frozen); mode=separate only.
    warmup_steps: int = 0


@dataclass
class AlgorithmConfig:
    # grpo | ppo (grpo_lab/methods).
    name: str = "grpo"
    # Completions sampled per prompt (G; TRL num_generations). Must be >= 2.
    group_size: int = 4
    # Clip range of the importance ratio: [1 - epsilon_low, 1 + epsilon_high] (DAPO).
    epsilon_low: float = 0.2
    epsilon_high: float = 0.2
    # Policy updates per batch of rollouts (mu in DeepSeekMath; TRL num_iterations).
    num_iterations: int = 1
    # Optimizer steps per iteration: the batch is split into this many mini-batches.
    num_minibatches: int = 1
    # seq_mean (GRPO) | token_mean (DAPO) | dr_grpo (constant normalizer) |
    # seq_mean_token_sum (per-sequence token sums, mean over sequences; verl's
    # seq-mean-token-sum).
    loss_aggregation: str = "seq_mean"
    # Per-token policy loss: clip (PPO's clipped surrogate with epsilon_low/high) |
    # dual_clip (Ye et al. 2020; dual_clip_c) | gspo (sequence-level ratio, Zheng et al.
    # 2025) | cispo (clipped IS-weight REINFORCE, MiniMax-M1) | sapo (soft gate, Gao et al.
    # 2025; sapo_tau_pos/neg), or your own by import path, "my_pkg.module:fn" (signature:
    # grpo_lab/algos/policy_loss.py).
    policy_loss: str = "clip"
    # dual_clip: the loss of a token with A < 0 is capped at -dual_clip_c * A (> 1).
    dual_clip_c: float = 3.0
    # sapo: gate temperatures for tokens with A > 0 and A <= 0.
    sapo_tau_pos: float = 1.0
    sapo_tau_neg: float = 1.05
    # Entropy bonus: - entropy_coef * entropy per token, aggregated as the policy loss
    # (verl entropy_coeff). 0: none.
    entropy_coef: float = 0.0
    # How the entropy bonus is aggregated: null (as loss_aggregation, verl) or one of
    # loss_aggregation's values; token_mean is TRL's (a mean over the tokens whatever its
    # loss_type).
    entropy_aggregation: Optional[str] = None
    # Leave completions that hit rollout.max_new_tokens without EOS out of the policy
    # loss (DAPO's overlong filtering, arXiv:2503.14476 sec. 3.4).
    mask_truncated: bool = False
    # DAPO's dynamic sampling; see DynamicSamplingConfig.
    dynamic_sampling: DynamicSamplingConfig = field(default_factory=DynamicSamplingConfig)
    # PPO only: GAE discount and lambda (Schulman et al. 2016), value clip range,
    # value-loss weight for the shared head, advantage whitening, the critic.
    gamma: float = 1.0
    lam: float = 0.95
    value_clip: float = 0.2
    vf_coef: float = 0.1
    whiten_advantages: bool = True
    critic: CriticConfig = field(default_factory=CriticConfig)


@dataclass
class VLLMConfig:
    # Share of the GPU's total memory the engine takes for its weights and KV cache; the
    # rest is left to training (held for the whole run unless sleep_mode is on).
    gpu_memory_utilization: float = 0.3
    # Between generations, offload the engine's weights to CPU and drop its KV cache
    # (vLLM sleep level 1): frees GPU memory for the update, costs a copy back per step.
    sleep_mode: bool = False
    # Longest prompt + completion in tokens; null: the model's context length.
    max_model_len: Optional[int] = None
    # Engine weights: auto (the training dtype if 16-bit, else bfloat16, or float16 on
    # GPUs without bf16) | bfloat16 | float16 | float32.
    dtype: str = "auto"
    # Skip CUDA-graph capture and compilation: starts faster, decodes slower.
    enforce_eager: bool = False


@dataclass
class RolloutConfig:
    # hf: transformers `generate` (CPU and GPU). vllm: a vLLM engine on the training
    # GPU, policy weights copied into it after every update (see `vllm`).
    backend: str = "hf"
    # Engine settings for backend=vllm.
    vllm: VLLMConfig = field(default_factory=VLLMConfig)
    # Tokens per model turn (one completion, or one turn of a multi-turn episode).
    max_new_tokens: int = 64
    # Multi-turn episodes (grpo_lab/rollout/multi_turn.py): an environment registered by
    # name (calculator | retry) or package.module:Class; null: one completion per sample.
    environment: Optional[str] = None
    # Model turns per episode, at most.
    max_turns: int = 4
    # Tokens after the prompt per episode (model and environment); null: max_turns x
    # max_new_tokens.
    max_episode_tokens: Optional[int] = None
    # Forces at least this many tokens (0: stop at EOS as usual); benchmarks set it to
    # max_new_tokens so every framework generates exactly the same amount of work.
    min_new_tokens: int = 0
    temperature: float = 1.0
    top_p: float = 1.0
    # 0 disables top-k filtering.
    top_k: int = 0
    # Prefill each prompt once and share its KV cache across the group's samples
    # (same tokens, a G-th of the prefill); false lets generate copy the prompts first.
    share_prompt_prefill: bool = True
    # What backend=hf samples from. null: the training model itself (its own numerics,
    # exact: no correction needed). bfloat16 | float16 | float32: a copy of the policy in
    # that dtype, made at the first rollout and re-cast after every update, as a rollout
    # engine holds its own copy (bf16 decoding is faster on CPUs with bf16 units and on
    # GPUs); its sampling log-probs are kept, the mismatch is logged (sampling/*) and
    # corrected by importance_sampling. vLLM's own dtype is rollout.vllm.dtype. auto
    # (precision=auto, the default): bfloat16 or null, chosen before the run starts
    # (grpo_lab/config/auto_precision.py).
    dtype: Optional[str] = None
    # Correction of the gap between the sampler's and the trainer's log-probs (a dtype
    # copy, vLLM), a weight on each token's policy loss (truncated importance sampling,
    # Yao et al. 2025; TRL's vllm_importance_sampling_mode, verl's rollout_is):
    # token_truncate: min(pi/mu, max) per token | token_mask: tokens whose ratio leaves
    # [min, max] get weight 0 | sequence_truncate / sequence_mask: the same with one ratio
    # per completion (the product of its tokens') | none. Inert when the training model samples.
    importance_sampling: str = "token_truncate"
    # The cap C of the ratio (null: none); Yao et al. and verl use 2.
    importance_sampling_max: Optional[float] = 2.0
    # The floor of the ratio (null: none); *_mask modes drop tokens below it.
    importance_sampling_min: Optional[float] = None


@dataclass
class TrainerConfig:
    max_steps: int = 40
    # Prompts per step; each is sampled `algorithm.group_size` times.
    batch_size: int = 4
    # Completions per forward/backward chunk (gradient accumulation inside a step);
    # bounds activation memory, does not change the loss.
    micro_batch_size: int = 16
    # adamw | adam | sgd.
    optimizer: str = "adamw"
    lr: float = 1e-5
    weight_decay: float = 0.0
    adam_betas: List[float] = field(default_factory=lambda: [0.9, 0.99])
    # constant | linear | cosine (transformers schedulers), after warmup_steps.
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    # Gradient-norm clip; 0 disables.
    max_grad_norm: float = 1.0
    seed: int = 0
    # auto (cuda when available) | cpu | cuda | cuda:N.
    device: str = "auto"
    # Weights' dtype: auto (float32; a frozen LoRA base in bfloat16 on a GPU that has it)
    # | float32 | bfloat16 | float16. 16-bit weights trained in place lose most updates at
    # RL's learning rates (warned at the start); precision=auto adds bf16 autocast on a GPU.
    dtype: str = "auto"
    # CPU threads for torch; null keeps torch's default.
    num_threads: Optional[int] = None
    # Compute per-token entropy for the logs (in the same pass over the logits as the log-probs).
    log_entropy: bool = True
    # Run each group's shared prompt once in training forward passes (same results,
    # less compute); false runs every prompt + completion row in full.
    share_prompt_prefix: bool = True
    # no | bf16 | fp16: autocast over float32 master weights (accelerate; fp16 adds loss
    # scaling). For pure low-precision weights set trainer.dtype instead. auto
    # (precision=auto, the default): bf16 or no, chosen with rollout.dtype.
    mixed_precision: str = "no"
    # With several processes (accelerate launch, torchrun, SLURM tasks): ddp keeps a whole
    # copy of every model, optimizer state and gradient on each process; fsdp shards them
    # over the processes (PyTorch FSDP2; engine/sharding.py): 1/N each, gathered layer by
    # layer for training and whole for sampling and evaluation. One process: no effect.
    distributed: str = "ddp"
    # Recompute activations in the backward pass (less memory, ~30% more compute);
    # turns off the prompt sharing of training passes, which needs the KV cache.
    gradient_checkpointing: bool = False
    # In a multirun, train each job in a fresh process (trainer/job_process.py), so its
    # peak memory and step times are its own, not inherited from the jobs before it.
    process_per_job: bool = True
    # true: a tqdm bar over the training steps. all: also the libraries' own bars while
    # the run is set up (datasets' Map), quiet otherwise so that a setup error is the only
    # line printed. false: no bar.
    progress_bar: Any = True
    # Stop with an error after this many consecutive steps whose loss or gradient was
    # NaN/inf (each such update is skipped and counted); 0 never stops.
    max_nonfinite_steps: int = 3
    # Save a checkpoint (paths.output_dir/checkpoints/step_N) every N steps and at the
    # end; 0: only at the end. Each is written to a temporary folder and renamed, so a
    # crash mid-save leaves the previous one intact.
    checkpoint_every: int = 0
    # Also save after the first step that ends this many minutes of training after the
    # previous save (or the start): bounds what a hard kill (OOM killer, node failure,
    # kill -9) can lose, whatever a step costs; 0: off. Short runs never reach it.
    checkpoint_every_minutes: float = 30.0
    # Checkpoints kept (the newest ones); 0 keeps all.
    checkpoint_keep: int = 2
    # Save at all; false writes no checkpoint.
    save_checkpoints: bool = True
    # null: start fresh (a single run; an earlier run in the folder is set aside). In a
    # multirun every job first looks at its folder: a finished run of the same config is
    # skipped, a stopped one continues from its newest checkpoint (as auto), a finished
    # run of another config is refused (grpo_lab/trainer/sweep_jobs.py). auto: continue
    # from the newest checkpoint in paths.output_dir/checkpoints (start fresh if there
    # is none). A path: that checkpoint folder, or a run folder (its newest checkpoint).
    # A checkpoint must have been saved by the same config (only trainer.max_steps and
    # the record, progress and checkpoint settings may differ).
    resume: Optional[str] = None


@dataclass
class WandbConfig:
    # online | offline | disabled. online without an API key falls back to offline (runs
    # are kept under paths.output_dir/wandb for `wandb sync`). logger=wandb sets this from
    # $WANDB_MODE when it is set; logger=local sets disabled.
    mode: str = "online"
    project: str = "grpo-lab"
    # W&B user or team; null: the API key's default entity.
    entity: Optional[str] = None
    # Run name; null: the job's command-line overrides ("advantage=group_mean,trainer.seed=1").
    name: Optional[str] = None
    # Run group; null: the experiment name, plus the sweep folder in a multirun, so each
    # sweep is one group.
    group: Optional[str] = None
    # null: the algorithm name (grpo, ppo), so runs can be filtered by algorithm.
    job_type: Optional[str] = None
    # Added to the automatic tags: algorithm, model, task and experiment names.
    tags: List[str] = field(default_factory=list)
    notes: Optional[str] = None


@dataclass
class LoggerConfig:
    # Write sample completions every N steps (0: never).
    sample_every: int = 10
    num_samples: int = 4
    # Weights & Biases; local files (metrics.jsonl, ...) are written in every mode.
    wandb: WandbConfig = field(default_factory=WandbConfig)


@dataclass
class EvalConfig:
    # Held-out evaluation: before the first step (recorded as step 0), every N steps
    # (0: never during training), after the listed steps, and/or at the end. Experiment
    # files turn start and end on: held-out scores are the outcome of a comparison.
    at_start: bool = False
    every: int = 0
    # And after these steps (1 .. trainer.max_steps): an outcome read from the last few
    # evaluations needs only those, e.g. steps=[15] with at_end for max_steps=20.
    steps: List[int] = field(default_factory=list)
    at_end: bool = False
    # Problems evaluated: null (default) scores the whole held-out set; N caps it at the
    # first N on purpose (a quick look; a comparison wants every problem).
    num_examples: Optional[int] = None
    # Greedy decoding -> eval/accuracy.
    greedy: bool = True
    # n samples per problem at rollout.temperature -> eval/pass@k for k = 1..n (unbiased
    # estimator) and eval/mean@n; 0: none.
    num_samples: int = 0
    # Per answer, and per model turn of an episode (rollout.environment); null: rollout.max_new_tokens.
    max_new_tokens: Optional[int] = None
    # Prompts per generate call.
    batch_size: int = 16
    # Seed of the sampling (eval never touches the training RNG streams).
    seed: int = 1234
    # grpo-lab-eval only: a checkpoint folder (or a run folder: its newest checkpoint)
    # to score; its saved model config is used. null: score `model` as configured.
    checkpoint: Optional[str] = None
    # The held-out set is the training task with these changes: `split` (hub datasets),
    # `path` (required when task.path is a local file: eval.path=/data/gsm8k/test.jsonl),
    # seed=task.seed+1 (arithmetic), and any other task keys in `task`
    # (+eval.task.max_operand=20).
    split: str = "test"
    path: Optional[str] = None
    task: Dict[str, Any] = field(default_factory=dict)


@dataclass
class ProbeConfig:
    # Gradient-noise probe (grpo_lab/trainer/grad_probe.py): at the chosen steps, after
    # the step's update (where held-out evaluation runs), the parameters are held fixed
    # and `num_batches` independent rollout batches (fresh prompts and samples, the run's
    # batch and group size) each give the policy-loss gradient the update would compute;
    # logged as probe/grad_snr (one batch's gradient SNR, |G|^2 / tr(Sigma_B)),
    # probe/grad_cosine (mean pairwise cosine), probe/grad_norm_mean, probe/grad_var_trace,
    # probe/num_batches, probe/time. The run's records and weights are the same with and
    # without it; its tokens and seconds stay out of the budget/* axes.
    # Probe every N steps (0: never).
    every: int = 0
    # And at these steps (1 .. trainer.max_steps).
    steps: List[int] = field(default_factory=list)
    # K, batch gradients per probe point (>= 2: a variance needs two).
    num_batches: int = 8
    # Also before the first step (the untrained policy), recorded as step 0.
    at_start: bool = False


@dataclass
class ComparisonConfig:
    # The comparison an experiment file declares before its runs, read by the report
    # (grpo-lab-compare) so the verdict is the one registered, not one picked afterwards.
    # Reference arm: a variant label or the value of the swept key (`ppo_matched`,
    # `arm=ppo_matched`); each other arm is compared with it (A: the arm, B: the
    # reference). null: every pair of arms, the better mean first.
    reference: Optional[str] = None
    # The outcome metric: null -> held-out accuracy when the runs were evaluated (the
    # held-out reward for tasks without answers), else the training reward; or any
    # recorded metric, e.g. eval/mean_length_wrong for a claim about length.
    metric: Optional[str] = None
    # Outcome estimator: `last` (the last held-out evaluation), `last_k` (the mean of the
    # last `last_k` evaluations), `mean_at_n` (sampled mean@n at the end: eval.num_samples).
    outcome: str = "last"
    last_k: int = 2
    # `superiority`, `non_inferiority` (A no more than `margin` worse than the reference)
    # or `equivalence` (within +-margin: two one-sided tests, Schuirmann 1987).
    hypothesis: str = "superiority"
    # Margin delta in the outcome's units (0.05 = 5 accuracy points): the largest
    # difference that does not matter. null: none (superiority verdicts only); the
    # non_inferiority and equivalence hypotheses need one.
    margin: Optional[float] = None
    # Error rate of each verdict, family-wise over the pairs of a report (Holm 1979).
    alpha: float = 0.05
    # Target power of the "seeds needed" figures.
    power: float = 0.8
    # `problems`: two-level paired bootstrap (seeds, then the shared held-out problems);
    # `seeds`: paired over seeds only.
    analysis: str = "seeds"
    # true when a higher outcome is better (accuracy, reward).
    higher_is_better: bool = True


@dataclass
class WarmStartConfig:
    # Supervised steps on demonstrations before the first RL step
    # (grpo_lab/trainer/warm_start.py): puts a behaviour the policy never samples (a tool
    # call, an answer format) within RL's reach, as an SFT stage does. The KL reference is
    # the warm-started policy. 0: off.
    steps: int = 0
    # Demonstrations per step, drawn from the training set in an order of their own.
    batch_size: int = 8
    # Learning rate of the warm start's own AdamW (RL's optimizer starts fresh after it).
    lr: float = 1.0e-5
    # The assistant turns of a good episode, from a row: a built-in (tagged_answer: one
    # tagged answer; calculator: a calculate call, then the answer) or
    # `package.module:function` (row -> list of turn texts). See grpo_lab/envs/demonstrations.py.
    demonstrations: str = "tagged_answer"


@dataclass
class PathsConfig:
    # Everything a run writes goes here; defaults to Hydra's run folder. When set, a single
    # run's Hydra folder follows it (conf/train.yaml: hydra.run.dir), so .hydra/ lands in
    # the run folder and nothing is written into the working directory.
    output_dir: str = "${hydra:runtime.output_dir}"


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    advantage: AdvantageConfig = field(default_factory=AdvantageConfig)
    kl: KLConfig = field(default_factory=KLConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)
    comparison: ComparisonConfig = field(default_factory=ComparisonConfig)
    # Set by experiment files (`# @package _global_`), for run grouping.
    experiment_name: Optional[str] = None
