"""Gradient-noise probe: the variance of the policy update, measured at fixed parameters.

"Group-relative advantages lower the variance of the updates" (and Dr. GRPO's claim
about the std normalization, Liu et al. 2025, arXiv:2503.20783 sec. 3.1) is a claim
about the gradient estimate at given parameters, not about how the gradient norm
swings over a run. At the steps ``probe`` chooses the probe holds the parameters fixed
and draws K (``probe.num_batches``) independent rollout batches, each of the run's
``trainer.batch_size`` prompts x ``algorithm.group_size`` completions, sampled and
scored as the step samples its own (DAPO's dynamic sampling and overlong shaping
included). Each batch's policy-loss gradient is computed by the update itself
(:func:`~grpo_lab.engine.update.policy_update`, with an optimizer that records the
gradient instead of applying it): the run's advantages (GRPO's estimator, PPO's GAE
from the current critic), policy loss, aggregation, truncation mask, entropy bonus and
KL term, in the run's autocast. From the K gradients (grpo_lab/algos/grad_noise.py):

- ``probe/grad_snr``: one batch's gradient SNR, ``|G|^2 / tr(Sigma_B)``, both unbiased:
  ``(|gbar|^2 - tr/K) / tr`` with ``tr = sum_k |g_k - gbar|^2 / (K - 1)``; the SNR of
  the K-batch mean would be K times it;
- ``probe/grad_cosine``: mean pairwise cosine between the batch gradients;
- ``probe/grad_norm_mean``, ``probe/grad_var_trace`` (``tr(Sigma_B)``),
  ``probe/grad_signal`` (``|G|^2``), ``probe/num_batches`` (finite gradients used),
  ``probe/nonfinite_batches``, ``probe/time`` (seconds).

What the gradient is, exactly: that of the step's loss on the whole batch at the
sampling parameters (ratio 1, so the clip is inactive), before gradient clipping. With
``num_iterations = num_minibatches = 1`` (GRPO's default) it is the update's gradient;
with several mini-batches or epochs (PPO) it is the full-batch gradient whose
mini-batch pieces the first epoch follows. For PPO only the policy loss is
differentiated (the shared value head's loss and the separate critic are left out).

When: after the step's update, where held-out evaluation runs, so the probe at step s
measures the policy the first s updates produced; ``probe.at_start`` adds step 0 (the
untrained policy), recorded like ``eval.at_start``. During PPO's critic warm-up the
probe still measures the gradient the policy loss would have.

The run is unchanged by it: the probe draws prompts from samplers of its own and
samples with seeds of its own (functions of the run seed, the step and the batch
alone, so a resumed run probes the same batches), forks every random stream (Python,
NumPy, torch CPU and CUDA) and restores it, scores with the reward models' running
statistics frozen, restores module train/eval modes and the gradients it found, and
touches neither the optimizer, the scheduler, the KL controller nor the critic. Its
completions and seconds are not added to the budget (tracking/budget.py); ``time/step``
does not include it. It runs on every process (the gradient is the global batch's,
averaged over processes as data parallelism averages it).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from grpo_lab.algos.grad_noise import GradientMoments
from grpo_lab.engine.forward import TrainForward
from grpo_lab.engine.kl_term import KLTerm
from grpo_lab.engine.update import UpdateBatch, policy_update
from grpo_lab.rollout.batch import RolloutBatch
from grpo_lab.trainer.checkpoint_schedule import every_or_listed
from grpo_lab.trainer.data import PromptSampler
from grpo_lab.trainer.rng import capture_rng, restore_rng
from grpo_lab.trainer.rollout_rounds import sample_step

if TYPE_CHECKING:
    from grpo_lab.trainer.loop import Trainer

PREFIX = "probe/"
# First entropy words of the probe's seeds: no probe seed coincides with a seed of the
# run's own streams (trainer/rng.py sample_seeds: [seed, step, row]).
SAMPLING_STREAM = 0x70726F62
PROMPT_STREAM = SAMPLING_STREAM + 1


def probe_row_seeds(seed: int, step: int, batch: int, rows: Iterable[int]) -> list[int]:
    """One sampling seed per completion row (global index) of probe batch ``batch`` at
    ``step``: a function of those alone, as the run's rows are of (seed, step, row)."""
    return [int(np.random.SeedSequence([SAMPLING_STREAM, seed, step, batch, row]).generate_state(1)[0])
            for row in rows]


def probe_prompt_seed(seed: int, step: int, batch: int) -> int:
    """The seed of probe batch ``batch``'s own prompt sampler at ``step``."""
    return int(np.random.SeedSequence([PROMPT_STREAM, seed, step, batch]).generate_state(1)[0])


class GradientCapture(torch.optim.Optimizer):
    """Stands in for the optimizer of :func:`policy_update`: its step applies nothing and
    keeps the accumulated gradients (one tensor per parameter, zeros where a parameter
    got none). The update's clipping is turned off (``max_grad_norm=0``), and a
    non-finite gradient skips the step (see ``optimizer_step``): nothing is kept then."""

    def __init__(self, params: Sequence[torch.nn.Parameter]):
        super().__init__(list(params), {})
        self.grads: list[torch.Tensor] | None = None

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> None:
        self.grads = [p.grad if p.grad is not None else torch.zeros_like(p)
                      for group in self.param_groups for p in group["params"]]


@dataclass
class ProbeBatch:
    """One probe batch: its rollouts, rewards and advantages, and the policy-loss
    gradient (one tensor per trained policy parameter; None if it was not finite)."""

    batch: RolloutBatch
    rewards: torch.Tensor
    advantages: torch.Tensor
    grads: list[torch.Tensor] | None


class GradientProbe:
    """The probe of one run (see the module docstring); built by the trainer when
    ``probe.every``, ``probe.steps`` or ``probe.at_start`` asks for it."""

    def __init__(self, trainer: "Trainer"):
        self.trainer = trainer
        self.cfg = trainer.cfg.probe
        # The whole batch as one mini-batch, one pass, no clipping (see the module docstring).
        self.settings = replace(trainer.update_settings, num_iterations=1, num_minibatches=1, max_grad_norm=0.0)
        self.forward = TrainForward(trainer.policy)  # the policy loss only, no value head
        self.params = [p for p in trainer.policy.parameters() if p.requires_grad]
        self.generator = torch.Generator()  # mini-batch order: unused with one mini-batch

    @classmethod
    def from_config(cls, trainer: "Trainer") -> "GradientProbe | None":
        probe = trainer.cfg.probe
        return cls(trainer) if probe.every or probe.steps or probe.at_start else None

    @property
    def at_start(self) -> bool:
        return bool(self.cfg.at_start)

    def due(self, step: int) -> bool:
        return every_or_listed(self.cfg, step)  # probe.every, and probe.steps

    def measure(self, step: int) -> dict[str, float]:
        """The ``probe/...`` metrics at the current parameters (``step``: the updates so far)."""
        start = time.perf_counter()
        moments = GradientMoments()
        nonfinite = 0
        with self._isolated():
            for k in range(self.cfg.num_batches):
                grads = self.batch_gradient(step, k).grads
                if grads is None:
                    nonfinite += 1
                else:
                    moments.add(grads)
                del grads
        if moments.count >= 2:
            stats = moments.statistics()
        else:
            stats = dict.fromkeys(("grad_norm_mean", "grad_var_trace", "grad_signal", "grad_snr", "grad_cosine"),
                                  math.nan)
            stats["num_batches"] = float(moments.count)
        stats["nonfinite_batches"] = float(nonfinite)
        stats["time"] = time.perf_counter() - start
        return {PREFIX + name: value for name, value in stats.items()}

    def batch_gradient(self, step: int, k: int) -> ProbeBatch:
        """Probe batch ``k`` at ``step``: sampled, scored, its advantages, and its
        policy-loss gradient (global over processes). Call inside :meth:`_isolated`."""
        t = self.trainer
        cfg = t.cfg
        seed = cfg.trainer.seed
        sampler = PromptSampler(t.dataset, cfg.trainer.batch_size, probe_prompt_seed(seed, step, k))
        dynamic = cfg.algorithm.dynamic_sampling
        sampled = sample_step(
            lambda r: t._draw_round(step, r, sampler, lambda rows: probe_row_seeds(seed, step, k, rows)),
            t.local_prompts, dynamic.enabled, dynamic.max_rounds, t.parallel, t.pad_id,
        )
        batch = sampled.batch
        old_logp, ref_logp, hidden = t._rollout_passes(batch)
        # The run's KL term without its adaptive controller: the coefficient in use, never moved.
        kl = KLTerm(t.kl.coef, t.kl.estimator, t.kl.placement, t.kl.bias_correction)
        penalty, _ = kl.reward_penalty(old_logp, ref_logp, batch.completion_mask, t.parallel)
        adv = t.algorithm.advantages(batch, sampled.rewards, penalty, hidden)
        capture = GradientCapture(self.params)
        policy_update(
            self.forward, capture, None,
            UpdateBatch(batch.input_ids, batch.attention_mask, batch.completion_ids, t._loss_mask(batch),
                        adv.advantages.to(t.device), None, ref_logp,
                        batch.sampling_logprobs),
            self.settings, kl, self.generator, t.parallel,
        )
        return ProbeBatch(batch, sampled.rewards, adv.advantages, self._global(capture.grads))

    def _global(self, grads: list[torch.Tensor] | None) -> list[torch.Tensor] | None:
        """The global batch's gradient: each process holds the gradient of its share of
        the loss, whose mean over processes is the whole batch's (as DDP averages it).
        None on every process when any process's was not finite."""
        parallel = self.trainer.parallel
        if parallel.world_size == 1:
            return grads
        finite = grads is not None and all(bool(torch.isfinite(g).all()) for g in grads)
        if parallel.sum([float(finite)])[0] < parallel.world_size:
            return None
        return [parallel.accelerator.reduce(g.contiguous(), reduction="mean") for g in grads]

    @contextlib.contextmanager
    def _isolated(self) -> Iterator[None]:
        """Everything the probe could change, restored: random streams, module modes,
        the gradients held by the trained modules; reward models' statistics frozen."""
        t = self.trainer
        rng = capture_rng({})
        modules = {id(m): m for root in (t.train_module, t.reference, *t.algorithm.modules().values())
                   if isinstance(root, torch.nn.Module) for m in root.modules()}
        modes = [(m, m.training) for m in modules.values()]
        held = [(p, p.grad) for p in t.train_module.parameters()]
        for p, _ in held:
            p.grad = None
        try:
            with t.rewards.frozen(), t.autocast():
                yield
        finally:
            for p, grad in held:
                p.grad = grad
            for m, training in modes:
                m.training = training
            restore_rng(rng, {})
