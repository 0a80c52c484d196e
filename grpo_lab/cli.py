"""``grpo-lab-train``: the only Hydra entry point."""

from __future__ import annotations

import logging
import signal
import sys

import hydra
from omegaconf import DictConfig

from grpo_lab.config import register_configs
from grpo_lab.config.registration import CONFIG_DIR
from grpo_lab.console import TRANSCRIPT, quiet_library_bars, say
from grpo_lab.errors import exit_on_user_error

log = logging.getLogger("grpo_lab")
register_configs()


def format_summary(summary: dict) -> str:
    lines = [f"grpo-lab: {summary['steps']} steps of {summary['algorithm']} on {summary['model']}"]
    if "reward_first_fifth" in summary:
        lines.append(
            f"  mean reward, first fifth of steps: {summary['reward_first_fifth']:.3f}   "
            f"last fifth: {summary['reward_last_fifth']:.3f}"
        )
        lines.append(
            f"  mean step time: {summary['mean_step_time_s']:.1f} s   "
            f"peak memory: {summary['peak_memory_mb']:.0f} MiB"
        )
    from grpo_lab.eval.readable import heldout_lines

    start = {"eval/" + k[len("eval_start/"):]: v for k, v in summary.items() if k.startswith("eval_start/")}
    end = {k: v for k, v in summary.items() if k.startswith("eval/")}
    lines.extend(f"  {line}" for line in heldout_lines(end, start))
    lines.append(f"  records: {summary['output_dir']}")
    return "\n".join(lines)


def _sweep_dir() -> str:
    from hydra.core.hydra_config import HydraConfig

    return str(HydraConfig.get().sweep.dir)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    from grpo_lab.trainer.sweep_jobs import in_multirun

    if not in_multirun():
        return run(cfg, multirun=False)
    from grpo_lab.trainer.job_failures import failure_ends_this_job_only

    with failure_ends_this_job_only(cfg):
        return run(cfg, multirun=True)
    return None  # this job failed: said and recorded; the sweep goes on (trainer/job_failures.py)


def run(cfg: DictConfig, multirun: bool) -> float | None:
    """One run, or one job of a multirun: its outcome for sweepers that optimize one."""
    from grpo_lab.config.validate import validate_config

    with exit_on_user_error("grpo-lab", records=cfg.paths.output_dir):
        # Before the trainer's imports (seconds of transformers, datasets, peft): a bad
        # value is reported at once.
        validate_config(cfg)
    # Heavy imports after the config is known to be usable.
    from accelerate import PartialState

    from grpo_lab.trainer import train
    from grpo_lab.trainer.job_process import (
        train_in_fresh_process,
        trains_in_fresh_process,
    )
    from grpo_lab.trainer.sweep_jobs import job_label, plan_job

    if multirun:  # a job folder may hold this job's run already: a sweep run again, or grown
        with exit_on_user_error("grpo-lab"):
            plan = plan_job(cfg, cfg.paths.output_dir)
        if plan.action == "skip":
            # Printed, not said: a finished job's folder (its cli.log too) stays as it was.
            print(f"grpo-lab: {job_label(cfg)} already finished in {cfg.paths.output_dir}: skipped", flush=True)
            return plan.summary.get("reward_last_fifth")
        if plan.action == "resume":  # the trainer says from which step
            say(f"{job_label(cfg)} stopped in {cfg.paths.output_dir}: continuing it", sys.stdout)
    if trains_in_fresh_process(cfg):  # a multirun job: its costs must be its own
        summary = train_in_fresh_process(cfg)
        if summary is None:  # its training process was killed: said and recorded, the sweep goes on
            return None
    else:
        quiet_library_bars(cfg.trainer.progress_bar)
        with exit_on_user_error("grpo-lab", records=cfg.paths.output_dir):
            summary = train(cfg)
    if PartialState().is_main_process:  # one summary per run, not one per process
        print(format_summary(summary), flush=True)
        TRANSCRIPT.info(format_summary(summary))
    if summary.get("stopped_by"):
        how = (f"run the multirun again with hydra.sweep.dir={_sweep_dir()}: finished jobs are skipped, "
               "stopped ones continue" if multirun else f"continue with trainer.resume={summary['output_dir']}")
        if PartialState().is_main_process:  # said once, every process exits so
            say(f"stopped by {summary['stopped_by']}; {how}")
        sys.exit(128 + signal.Signals[summary["stopped_by"]].value)
    # Returned for sweepers (e.g. Optuna) that optimize the run's outcome.
    return summary.get("reward_last_fifth")


if __name__ == "__main__":
    main()
