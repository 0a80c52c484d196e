"""The trainer core shared by every algorithm.

One step: draw ``batch_size`` prompts -> sample ``group_size`` completions each ->
score them with the reward mix (more rounds of prompts with DAPO's dynamic sampling,
see trainer/rollout_rounds.py) -> (old / reference log-probs only when the settings
need them) -> ``algorithm.advantages`` -> policy update -> the algorithm's own update
(PPO's critic) -> records. The loop does no algorithm math: advantages come from the
algorithm (grpo_lab/methods), the KL from its owner (engine/kl_term.py), the loss
from the update (engine/update.py).

Departures from textbook GRPO (DeepSeekMath, arXiv:2402.03300), stated here once:
- With ``num_iterations == 1`` and one mini-batch the policy has not moved since
  sampling, so the old-policy log-probs equal the current ones (detached) and are not
  recomputed; the ratio is exactly 1 and the loss reduces to the policy gradient.
- The reference model is the initial policy, loaded only when ``kl.coef > 0``.
- std in ``group_std`` is the unbiased sample std (as TRL).

With several processes (``accelerate launch``), see engine/distributed.py: each
samples and scores a contiguous share of the prompts, advantages and metrics are global.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from grpo_lab.algos.overlong import drop_truncated
from grpo_lab.checkpoint_folder import resolve_resume
from grpo_lab.config.device import resolve_device
from grpo_lab.config.unused import unused_settings
from grpo_lab.config.validate import validate_config
from grpo_lab.console import say
from grpo_lab.engine.distributed import Parallel
from grpo_lab.engine.forward import (
    TrainForward,
    batched_forward,
    batched_logprobs,
    prefix_group_size,
)
from grpo_lab.engine.kl_term import KLTerm
from grpo_lab.engine.optim import build_optimizer, build_scheduler
from grpo_lab.engine.update import UpdateBatch, UpdateSettings, policy_update
from grpo_lab.errors import ConfigError, TrainingDivergedError
from grpo_lab.eval.evaluator import Evaluator, question_of
from grpo_lab.methods import build_algorithm
from grpo_lab.models.loading import load_policy_and_tokenizer, weights_dtype
from grpo_lab.models.lora import build_reference
from grpo_lab.rewards.mix import RewardMix
from grpo_lab.rollout.base import build_rollout_backend
from grpo_lab.run_lock import RunFolderLock
from grpo_lab.tasks import build_task
from grpo_lab.tasks.heldout import evaluates
from grpo_lab.tracking import build_trackers
from grpo_lab.tracking.base import Trackers
from grpo_lab.tracking.budget import Budget
from grpo_lab.tracking.manifest import build_manifest
from grpo_lab.tracking.run_identity import current_hydra_job
from grpo_lab.trainer.checkpoint import (
    check_checkpoint_folder,
    load_checkpoint,
    save_checkpoint,
)
from grpo_lab.trainer.checkpoint_schedule import CheckpointSchedule, every_or_listed
from grpo_lab.trainer.data import PromptSampler
from grpo_lab.trainer.grad_probe import GradientProbe
from grpo_lab.trainer.metrics import (
    advantage_metrics,
    completion_metrics,
    peak_memory_mb,
    reward_metrics,
)
from grpo_lab.trainer.precision import (
    attention_implementation,
    autocast_attention,
    describe_precision,
    lost_update_warning,
    precision_line,
)
from grpo_lab.trainer.rng import sample_seeds
from grpo_lab.trainer.rollback import one_run_per_folder
from grpo_lab.trainer.rollout_rounds import Scored, StepSamples, add_overlong_penalty, sample_step
from grpo_lab.trainer.run_data import fingerprints
from grpo_lab.trainer.sampling_memory import check_sampling_fits
from grpo_lab.trainer.signals import GracefulStop
from grpo_lab.trainer.warm_start import warm_start


def enable_activation_checkpointing(model: torch.nn.Module) -> None:
    # Non-reentrant: works with frozen inputs (LoRA) and kwargs; transformers >= 5
    # renamed the method.
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    def __init__(self, cfg: DictConfig):
        self.run_lock: RunFolderLock | None = None
        try:
            self._build(cfg)
        except BaseException:
            self.release_run_folder()
            raise

    def _build(self, cfg: DictConfig) -> None:
        validate_config(cfg)
        self.cfg = cfg
        trainer_cfg = cfg.trainer
        if trainer_cfg.num_threads:
            torch.set_num_threads(trainer_cfg.num_threads)
        seed_everything(trainer_cfg.seed)
        device = resolve_device(trainer_cfg.device)
        self.parallel = Parallel(trainer_cfg.mixed_precision, cpu=device.type == "cpu",
                                 strategy=trainer_cfg.distributed)
        # With several processes each takes the device accelerate assigns it (cuda:<local rank>).
        self.device = self.parallel.device if self.parallel.world_size > 1 else device
        self.dtype = weights_dtype(trainer_cfg, cfg.model, self.device)

        # Everything that can fail on user input is built before the model is loaded.
        self.dataset = build_task(cfg.task)
        self.rewards = RewardMix.from_config(cfg.reward, self.device, self.dtype, self.parallel.sum)
        # Multi-turn episodes add the environment's own reward as a column.
        episode_columns = ["env_reward"] if cfg.rollout.environment else []
        self.rewards.check_columns([c for c in self.dataset.column_names if c != "prompt"] + episode_columns,
                                   cfg.task.name)
        self.sampler = PromptSampler(self.dataset, trainer_cfg.batch_size, trainer_cfg.seed)
        # This process's prompts of a step; fails early if the batch does not split.
        self.local_prompts = len(range(trainer_cfg.batch_size)[self.parallel.local_slice(trainer_cfg.batch_size)])
        # Every process's Hydra computes its own run folder (timestamps can differ by a
        # second): the main process's is the run's.
        self.output_dir = Path(self.parallel.broadcast(str(cfg.paths.output_dir)))
        # One live run per folder (grpo_lab/run_lock.py), before anything in it is read or
        # moved; a checkpoints folder that cannot be written is refused now, not at the
        # first save.
        self._lock_run_folder(check_checkpoints=trainer_cfg.save_checkpoints)
        # One run's records per folder: rewound to the checkpoint on resume, an earlier
        # run set aside on a fresh start, before the trackers open the record files for
        # appending (see trainer/rollback.py).
        self.resume_from = resolve_resume(trainer_cfg.resume, self.output_dir, cfg)  # saved by this config
        if self.parallel.is_main:
            one_run_per_folder(self.output_dir, self.resume_from)
        # Only the main process writes records.
        self.trackers = build_trackers(cfg, self.output_dir) if self.parallel.is_main else Trackers([])

        self.policy, self.tokenizer = load_policy_and_tokenizer(cfg.model, self.device, self.dtype)
        # Fills the padding added when rounds of dynamic sampling are joined (masked out).
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.policy.train()
        if trainer_cfg.gradient_checkpointing:
            enable_activation_checkpointing(self.policy)
        # Supervised steps on demonstrations, before the reference is copied (it is the
        # warm-started policy); None when warm_start.steps=0.
        self.warm_start = warm_start(self.policy, self.tokenizer, self.dataset, cfg, self.device)
        self.kl = KLTerm.from_config(cfg.kl)
        self.reference = None
        if self.kl.enabled:  # with LoRA: the policy with adapters disabled, no copy
            self.reference = self.parallel.shard(build_reference(self.policy))
        self.algorithm = build_algorithm(cfg, self.policy, self.device, self.parallel)
        self.rollout = build_rollout_backend(cfg.rollout, self.tokenizer, self.device)
        self.autocast_attention = autocast_attention(cfg, self.device)
        self.precision = describe_precision(cfg, next(self.policy.parameters()).dtype, self.autocast_attention)
        # A group too large to sample is refused now, not ended by the OOM killer mid-step.
        check_sampling_fits(self.policy, cfg, self.local_prompts, self.device)
        updates_per_step = cfg.algorithm.num_iterations * cfg.algorithm.num_minibatches
        # What the policy loss trains, DDP-wrapped with several processes (or sharded in
        # place under fsdp); generation and the no-grad passes use self.policy directly.
        self.train_module = self.parallel.prepare_model(TrainForward(self.policy, self.algorithm.value_head))
        warning = lost_update_warning(self.train_module.parameters(), trainer_cfg.lr)
        if warning is not None:  # said with the precision line, and recorded in the manifest
            self.precision["warning"] = warning
        self.optimizer = self.parallel.prepare_optimizer(build_optimizer(self.train_module.parameters(), trainer_cfg))
        self.scheduler = build_scheduler(self.optimizer, trainer_cfg, trainer_cfg.max_steps * updates_per_step)
        self.update_generator = torch.Generator().manual_seed(trainer_cfg.seed + 1)
        # Forward passes run each group's shared prompt once (see completion_forward).
        self.prefix_group_size = prefix_group_size(cfg)
        self.update_settings = UpdateSettings.from_config(cfg, self.prefix_group_size)
        self.history: list[dict[str, float]] = []
        self.budget = Budget()
        self.start_eval: dict[str, float] = {}  # held-out scores before training (eval.at_start)
        self._data_fingerprints: dict[str, Any] | None = None
        self.stopped_by: str | None = None  # the signal that ended the run early
        # Held-out evaluation runs on the main process (the others wait at the next step;
        # under fsdp they first gather the policy whole with it, see _evaluation);
        # problems that are also training questions are left out of the held-out set.
        self.evaluates = evaluates(cfg)
        self.evaluator = (
            Evaluator(cfg, self.tokenizer, self.device,
                      training_questions={question_of(p) for p in self.dataset["prompt"]},
                      reward_mix=lambda: self.rewards)
            if self.evaluates and self.parallel.is_main else None
        )
        # Gradient-noise probe (probe.*), None when off: see trainer/grad_probe.py.
        self.probe = GradientProbe.from_config(self)
        self.step_faults: dict[str, int] = {}  # reward faults of the step's rounds (step())
        # Last completed step; a resumed run continues after it with every state restored.
        self.start_step = 0
        if self.resume_from is not None:
            self.start_step = load_checkpoint(self, self.resume_from)

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """The region of the training passes: the run's autocast, and the attention kernel
        that is faster under it (trainer/precision.py) for every model the step runs."""
        roots = (self.policy, self.reference, *self.algorithm.modules().values())
        with self.parallel.autocast(), attention_implementation(roots, self.autocast_attention):
            yield

    def _lock_run_folder(self, check_checkpoints: bool) -> None:
        """The main process locks the run folder (and checks that checkpoints can be
        written into it); a refusal stops every process."""
        refusal = None
        if self.parallel.is_main:
            try:
                self.run_lock = RunFolderLock.acquire(self.output_dir)
                if check_checkpoints:
                    check_checkpoint_folder(self.output_dir)
            except ConfigError as err:
                refusal = str(err)
        refusal = self.parallel.broadcast(refusal)
        if refusal is not None:
            raise ConfigError(refusal)

    def release_run_folder(self) -> None:
        """Lets another run into the folder (done when ``train`` ends)."""
        if self.run_lock is not None:
            self.run_lock.release()
            self.run_lock = None

    # -- one step -------------------------------------------------------------------
    def _rollout_passes(self, batch: Any) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """No-grad passes over the rollouts, only where needed: the sampling policy's
        log-probs when the policy moves before the last use of this batch, when the
        samples came from another engine or when the KL term asks for them; the
        reference's when KL is on. The policy pass also returns its last hidden states
        when a value head sits on the policy (PPO's values come from the same pass).

        Returns (old log-probs, reference log-probs, policy hidden states), each or None."""
        cfg = self.cfg
        algo = cfg.algorithm
        needs_old = (algo.num_iterations > 1 or algo.num_minibatches > 1 or self.rollout.samples_off_policy
                     or self.kl.needs_sampling_logp)
        args = (batch.input_ids, batch.attention_mask, batch.completion_ids,
                cfg.trainer.micro_batch_size, cfg.rollout.temperature, self.prefix_group_size)
        needs_hidden = self.algorithm.value_head is not None
        old_logp = hidden = None
        if needs_old or needs_hidden:
            policy = batched_forward(self.policy, *args, with_hidden=needs_hidden)
            old_logp = policy.logp if needs_old else None
            hidden = policy.hidden
        ref_logp = batched_logprobs(self.reference, *args) if self.reference is not None else None
        return old_logp, ref_logp, hidden

    def _draw_round(self, step: int, round_: int, sampler: PromptSampler | None = None,
                    row_seeds: Any = None) -> tuple[Scored, float, float]:
        """One round of fresh prompts sampled and scored: (scored rows of this process,
        generation seconds, reward seconds). Round r > 0 (dynamic sampling) seeds its
        rows after the rows of the rounds before it. ``sampler`` and ``row_seeds`` (global
        rows -> sampling seeds): streams other than the run's (the gradient probe's)."""
        cfg = self.cfg
        t0 = time.perf_counter()
        # Every process draws the same global batch and keeps its share of the prompts.
        prompts, columns = (sampler or self.sampler).next_batch()
        mine = self.parallel.local_slice(len(prompts))
        prompts, columns = prompts[mine], {k: v[mine] for k, v in columns.items()}
        group_size = cfg.algorithm.group_size
        first = round_ * cfg.trainer.batch_size * group_size
        rows = range(first + mine.start * group_size, first + mine.stop * group_size)
        seeds = row_seeds(rows) if row_seeds is not None else sample_seeds(cfg.trainer.seed, step, rows)
        with self.parallel.full_weights(self.policy):  # under fsdp: gathered once, not per token
            batch = self.rollout.generate(self.policy, prompts, columns, group_size, seeds)
        t_gen = time.perf_counter()
        rewards, per_function = self.rewards(batch.prompts, batch.completions, batch.columns)
        for name, count in self.rewards.faults.items():
            self.step_faults[name] = self.step_faults.get(name, 0) + count
        scored = add_overlong_penalty(Scored(batch, rewards, per_function), cfg.rollout.max_new_tokens,
                                      cfg.reward.overlong_buffer, cfg.reward.overlong_penalty)
        return scored, t_gen - t0, time.perf_counter() - t_gen

    def step(self, step: int) -> dict[str, float]:
        cfg = self.cfg
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        t0 = time.perf_counter()
        dynamic = cfg.algorithm.dynamic_sampling
        self.step_faults = {}
        sampled = sample_step(lambda r: self._draw_round(step, r), self.local_prompts, dynamic.enabled,
                              dynamic.max_rounds, self.parallel, self.pad_id)
        batch, rewards, per_function = sampled.batch, sampled.rewards, sampled.per_function
        t_reward = time.perf_counter()

        old_logp, ref_logp, policy_hidden = self._rollout_passes(batch)
        penalty, kl_metrics = self.kl.reward_penalty(old_logp, ref_logp, batch.completion_mask, self.parallel)
        t_ref = time.perf_counter()

        adv = self.algorithm.advantages(batch, rewards, penalty, policy_hidden)
        update: dict[str, float] = {}
        trains_policy = self.algorithm.trains_policy(step)
        if trains_policy:
            update = policy_update(
                self.train_module, self.optimizer, self.scheduler,
                UpdateBatch(batch.input_ids, batch.attention_mask, batch.completion_ids,
                            self._loss_mask(batch), adv.advantages.to(self.device), old_logp,
                            ref_logp, batch.sampling_logprobs),
                self.update_settings, self.kl, self.update_generator, self.parallel,
                self.algorithm.auxiliary_loss(adv),
            )
            self.rollout.sync_weights(self.policy)
        critic = self.algorithm.after_update(batch, adv)
        t_end = time.perf_counter()

        step_time = t_end - t0
        lengths = self.parallel.gather(batch.completion_mask.sum(dim=1).float().cpu())
        metrics = {
            **self._batch_metrics(sampled, lengths),
            **kl_metrics,
            **update,
            **self.parallel.mean_metrics(adv.metrics),
            **advantage_metrics(adv.advantages, batch.completion_mask, self.parallel.sum),
            **self.parallel.mean_metrics(critic),
            **sampled.metrics,
            **self.parallel.mean_metrics(getattr(self.rollout, "last_metrics", {})),  # multi-turn episodes
            "learning_rate": self.scheduler.get_last_lr()[0],
            "time/generation": sampled.generation_s,
            "time/reward": sampled.reward_s,
            "time/old_and_ref_logprobs": t_ref - t_reward,
            "time/update": t_end - t_ref,
            "time/step": step_time,
            "tokens_per_second": float(sampled.generated_lengths.sum()) / step_time,
            "memory/peak_mb": self.parallel.max([peak_memory_mb(self.device)])[0],
            **self._spend(sampled, lengths, update if trains_policy else None, step_time),
        }
        metrics["num_tokens"] = metrics["budget/input_tokens"]  # TRL's name for the running count
        metrics.update(self.algorithm.step_metrics(metrics))
        self._log_samples(step, batch, rewards, per_function, adv.advantages)
        return metrics

    def _loss_mask(self, batch: Any) -> torch.Tensor:
        """The completion tokens the policy loss sees: all, or (``algorithm.mask_truncated``)
        all but those of completions that hit the length limit (DAPO's overlong filtering)."""
        if self.cfg.algorithm.mask_truncated:
            return drop_truncated(batch.completion_mask, batch.truncated)
        return batch.completion_mask

    def _spend(self, sampled: StepSamples, trained: torch.Tensor, update: dict[str, float] | None,
               step_time: float) -> dict[str, float]:
        """Adds a step's spending to the budget totals (tracking/budget.py): ``sampled``
        holds the lengths of every completion sampled and of its prompt (every round of
        dynamic sampling); ``trained``, the completion lengths of the batch trained on.
        ``update``: the policy update's metrics, None when the policy did not train
        (critic warm-up)."""
        algo = self.cfg.algorithm
        applied = 0
        if update is not None:
            skipped = update.get("nonfinite/skipped_updates", 0) + update.get("mixed_precision/overflow_updates", 0)
            applied = int(algo.num_iterations * algo.num_minibatches - skipped)
        generated = sampled.generated_lengths
        return self.budget.add(samples=len(generated), generated_tokens=int(generated.sum()),
                               prompt_tokens=int(sampled.prompt_lengths.sum()),
                               trained_tokens=int(trained.sum()) * algo.num_iterations if update is not None else 0,
                               optimizer_steps=applied, wall_s=step_time)

    def _batch_metrics(self, sampled: Any, lengths: torch.Tensor) -> dict[str, float]:
        """Reward, completion and reward-fault metrics of the step (every process's rows
        gathered); ``lengths`` (of the batch trained on) already gathered. Rewards are of
        every row drawn: with dynamic sampling they include the groups set aside (as an arm
        that keeps every group reports them), and ``dynamic_sampling/reward_trained`` is
        the batch's; faults are of every round."""
        gather, batch = self.parallel.gather, sampled.batch
        drawn = sampled.drawn_rewards if sampled.drawn_rewards is not None else sampled.rewards
        drawn_per_function = sampled.drawn_per_function if sampled.drawn_per_function is not None \
            else sampled.per_function
        # Every process sums the same names (a name only one process saw would not line up).
        names = sorted(self.rewards.functions)
        fault_counts = self.parallel.sum([float(self.step_faults.get(n, 0)) for n in names])
        metrics = {
            **reward_metrics(gather(drawn), {n: gather(v) for n, v in drawn_per_function.items()}, batch.group_size),
            **completion_metrics(lengths, gather(batch.truncated.float().cpu())),
            **{f"reward_faults/{n}": c for n, c in zip(names, fault_counts) if c},
        }
        if sampled.drawn_rewards is not None:
            metrics["dynamic_sampling/reward_trained"] = gather(sampled.rewards).mean().item()
        return metrics

    def _log_samples(self, step: int, batch: Any, rewards: torch.Tensor,
                     per_function: dict[str, torch.Tensor], advantages: torch.Tensor) -> None:
        every = self.cfg.logger.sample_every
        if not every or (step % every and step != self.cfg.trainer.max_steps):
            return
        samples = []
        for i in range(min(self.cfg.logger.num_samples, batch.size)):
            prompt = batch.prompts[i]
            samples.append({
                "prompt": prompt[-1]["content"] if isinstance(prompt, list) else prompt,
                "completion": batch.completion_texts[i],
                "reward": rewards[i].item(),
                **{f"rewards/{n}": (None if math.isnan(s[i].item()) else s[i].item())
                   for n, s in per_function.items()},
                "advantage": advantages[i].flatten()[0].item(),
                # What each reward model scored: its chat template applied to prompt + completion.
                **{f"reward_inputs/{n}": texts[i] for n, texts in self.rewards.inputs().items()},
            })
        self.trackers.log_samples(samples, step)

    # -- the run --------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        cfg = self.cfg
        failed = True
        bar = tqdm(range(self.start_step + 1, cfg.trainer.max_steps + 1), desc="grpo-lab", unit="step",
                   disable=not (cfg.trainer.progress_bar and self.parallel.is_main), dynamic_ncols=True,
                   initial=self.start_step, total=cfg.trainer.max_steps)
        nonfinite_in_a_row = 0
        checkpoints = CheckpointSchedule.from_config(cfg.trainer)
        try:
            # Inside the try: a tracker that fails to start still gets local files closed.
            self.trackers.log_config(OmegaConf.to_container(cfg, resolve=True), self._manifest())
            if self.parallel.is_main:  # the mix a run optimizes and its numerics, stated before it starts
                say(self.rewards.describe(), sys.stdout)
                say(precision_line(self.precision), sys.stdout)
                if "warning" in self.precision:
                    say(f"warning: {self.precision['warning']}", level=logging.WARNING)
                for unused in unused_settings(cfg):  # set, but never read by this run (config/unused.py)
                    say(f"warning: {unused.line()}", level=logging.WARNING)
                if self.warm_start is not None:
                    say(self.warm_start.line(cfg.warm_start.demonstrations), sys.stdout)
            if cfg.eval.at_start and self.start_step == 0 and self.evaluates:
                # The untrained policy's scores: step 0 of every held-out curve.
                self._on_main_with_whole_policy(self._start_evaluation)
            if self.probe is not None and self.probe.at_start and self.start_step == 0:
                # The untrained policy's gradient noise, a step-0 record of its own.
                self.trackers.log_metrics({**self.probe.measure(0), **self.budget.metrics()}, 0)
            if self.start_step > 0 and self.evaluates:
                if self.parallel.is_main:  # the untrained policy's scores, for the summary's start -> end
                    self.start_eval = self._recorded_scores(0)
                self._on_main_with_whole_policy(lambda: self._resumed_evaluation(self.start_step))
            with GracefulStop() as stop:
                for step in bar:
                    with self.autocast():
                        metrics = self.step(step)
                    if self.probe is not None and self.probe.due(step):  # after the update, as evaluation
                        metrics.update(self.probe.measure(step))
                    self.history.append(metrics)
                    self.trackers.log_metrics(metrics, step)
                    bar.set_postfix(reward=f"{metrics['reward']:.3f}", step_s=f"{metrics['time/step']:.1f}")
                    # After the step's record is written: a checkpoint never runs ahead of it.
                    # A signal to any process stops them all after the same step.
                    stop_now = self.parallel.any(stop.requested)
                    # Agreed by every process: under fsdp each writes its shards.
                    due = self.parallel.any(checkpoints.due(step)) or stop_now
                    saved = bool(cfg.trainer.save_checkpoints and due
                                 and (self.parallel.is_main or self.parallel.sharded))
                    if saved:
                        save_checkpoint(self, step, cfg.trainer.checkpoint_keep)
                        checkpoints.saved()
                    if stop_now:  # a due evaluation is done by the run that resumes this one
                        self.stopped_by = stop.name or "SIGTERM"
                        break
                    # Held-out evaluation after the step's record and checkpoint: a failure
                    # in it (out of memory, say) loses neither (see _evaluate).
                    if self._evaluation_due(step) and self.evaluates:
                        self._on_main_with_whole_policy(lambda: self._evaluate(step, checkpointed=saved))
                    skipped = metrics.get("nonfinite/skipped_updates", 0) > 0
                    nonfinite_in_a_row = nonfinite_in_a_row + 1 if skipped else 0
                    if nonfinite_in_a_row >= cfg.trainer.max_nonfinite_steps > 0:
                        raise TrainingDivergedError(
                            f"{nonfinite_in_a_row} steps in a row had a NaN/inf loss or gradient "
                            f"(trainer.max_nonfinite_steps={cfg.trainer.max_nonfinite_steps}); "
                            "lower trainer.lr or check the rewards"
                        )
            self.parallel.barrier()
            failed = False
        finally:
            summary = self.summary()
            if failed:  # an error ended it: not a finished run, even when its records reach max_steps
                summary["failed"] = True
            try:
                self.trackers.finish(summary, failed=failed)
            finally:
                self.release_run_folder()
        return summary

    def _on_main_with_whole_policy(self, evaluation: Callable[[], None]) -> None:
        """Runs ``evaluation`` where held-out evaluation runs: on the main process alone
        (the one with an evaluator), so under fsdp every process first gathers the policy
        whole with it (the evaluation then needs no collective)."""
        with self.parallel.full_weights(self.policy):
            if self.evaluator is not None:
                evaluation()

    def _start_evaluation(self) -> None:
        self.start_eval = self.evaluator.evaluate(self.policy)
        # The per-problem lines first, the scores line last: the scores mark a complete
        # evaluation (a run killed in between is evaluated again on resume: rollback.py).
        self.trackers.log_problems(self.evaluator.last_problems, 0)
        self.trackers.log_metrics({**self.start_eval, **self.budget.metrics()}, 0)

    def _evaluate(self, step: int, checkpointed: bool) -> None:
        """Held-out evaluation after ``step``, whose record (and checkpoint when one was
        due: ``checkpointed``) is already written. The scores are a record of their own for
        the same step, holding only ``eval/*`` keys (readers merge a step's records:
        grpo_lab/analysis/local.py); in memory they join the step's metrics. When the
        evaluation fails the step is checkpointed (if checkpoints are on and none was due),
        so that ``trainer.resume=auto`` continues from it and evaluates it again."""
        try:
            scores = self.evaluator.evaluate(self.policy)
        except Exception:
            kept = "recorded"
            # Under fsdp a checkpoint needs every process, and only this one failed.
            if self.cfg.trainer.save_checkpoints and not self.parallel.sharded:
                if not checkpointed:
                    save_checkpoint(self, step, self.cfg.trainer.checkpoint_keep)
                kept = "recorded and checkpointed; trainer.resume=auto continues from it and evaluates it again"
            say(f"held-out evaluation after step {step} failed; step {step} is {kept} ({self.output_dir})",
                level=logging.ERROR)
            raise
        self.history[-1].update(scores)
        self.trackers.log_problems(self.evaluator.last_problems, step)  # before the scores, as above
        self.trackers.log_metrics(scores, step)

    def _resumed_evaluation(self, step: int) -> None:
        """A run resumed from the checkpoint of ``step``: that checkpoint was saved before
        the step's held-out evaluation. Its scores, when recorded, rejoin the step's
        metrics (for the summary); when they are missing (the evaluation failed, or a
        signal stopped the run first) and an evaluation is due at ``step``, it is done now."""
        recorded = self._recorded_scores(step)
        if recorded:
            if self.history:
                self.history[-1].update(recorded)
        elif self._evaluation_due(step) and self.history:
            self._evaluate(step, checkpointed=True)

    def _recorded_scores(self, step: int) -> dict[str, Any]:
        """The held-out scores this run's records hold for ``step`` (none: {})."""
        recorded: dict[str, Any] = {}
        for line in self._record_lines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("step") == step:
                # NaN is written as null (grpo_lab/tracking/local.py).
                recorded.update({k: math.nan if v is None else v for k, v in record.items() if k.startswith("eval/")})
        return recorded

    def _record_lines(self) -> list[str]:
        path = self.output_dir / "metrics.jsonl"
        return path.read_text(encoding="utf-8").splitlines() if path.is_file() else []

    def data_fingerprints(self) -> dict[str, Any]:
        """Rows and SHA-256 of the training data and (where evaluated) the held-out data,
        computed once: what a checkpoint records and a resume compares."""
        if self._data_fingerprints is None:
            heldout = self.evaluator.dataset if self.evaluator is not None else None
            self._data_fingerprints = fingerprints(self.dataset, heldout)
        return self._data_fingerprints

    def _manifest(self) -> dict[str, Any] | None:
        if not self.parallel.is_main:
            return None
        return build_manifest(self.cfg, self.output_dir, self.data_fingerprints(), current_hydra_job().overrides,
                              self.precision)

    def _evaluation_due(self, step: int) -> bool:
        """Whether held-out evaluation is due after ``step`` (every ``eval.every`` steps,
        after ``eval.steps``, and at the end)."""
        ev = self.cfg.eval
        return every_or_listed(ev, step) or (ev.at_end and step == self.cfg.trainer.max_steps)

    def summary(self) -> dict[str, Any]:
        rewards = [m["reward"] for m in self.history]
        fifth = max(1, len(rewards) // 5)
        summary: dict[str, Any] = {
            "steps": len(rewards),
            "algorithm": self.cfg.algorithm.name,
            "model": self.cfg.model.name,
            "output_dir": str(self.output_dir),
        }
        if self.stopped_by:
            summary["stopped_by"] = self.stopped_by
        if self.warm_start is not None:
            summary["warm_start"] = self.warm_start.summary()
        if rewards:
            summary.update({
                "reward_first_fifth": sum(rewards[:fifth]) / fifth,
                "reward_last_fifth": sum(rewards[-fifth:]) / fifth,
                "reward_final": rewards[-1],
                "mean_step_time_s": sum(m["time/step"] for m in self.history) / len(rewards),
                "peak_memory_mb": max(m["memory/peak_mb"] for m in self.history),
            })
            evaluated = [m for m in self.history if any(k.startswith("eval/") for k in m)]
            if evaluated:  # the latest held-out scores
                summary.update({k: v for k, v in evaluated[-1].items() if k.startswith("eval/")})
            summary.update({k.replace("eval/", "eval_start/", 1): v for k, v in self.start_eval.items()})
            summary.update(self.budget.metrics())
        return summary


def train(cfg: DictConfig) -> dict[str, Any]:
    """Builds a Trainer from a composed config, runs it, returns the summary."""
    return Trainer(cfg).train()
