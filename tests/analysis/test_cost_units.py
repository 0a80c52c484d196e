"""Memory figures say their unit (MiB: 2**20 bytes, what the records hold) and the critic's
memory share says it is an estimate from the parameter count, not a measurement."""

from grpo_lab.analysis.frame import RunRecord, runs_frame
from grpo_lab.analysis.report import _cost_sections
from grpo_lab.analysis.stats import cost_table
from grpo_lab.cli import format_summary


def ppo_and_grpo_runs():
    records = []
    for algo, peak in (("ppo", 6000.0), ("grpo", 4921.0)):
        for seed in (0, 1):
            history = [{"step": 1, "time/step": 2.0, "memory/peak_mb": peak}]
            if algo == "ppo":
                history[0].update({"time/critic": 0.5, "critic/time_share": 0.25, "critic/memory_mb": 1500.0,
                                   "critic/memory_share": 0.25})
            records.append(RunRecord(run=f"{algo}-{seed}", overrides=[f"algorithm={algo}", f"trainer.seed={seed}"],
                                     seed=seed, history=history))
    return runs_frame(records)


def test_cost_table_names_units_and_the_estimate():
    table = cost_table(ppo_and_grpo_runs()).set_index("variant")
    assert table.loc["algorithm=grpo", "peak_memory_mib"] == 4921.0  # MiB, as recorded
    assert table.loc["algorithm=ppo", "critic_memory_share_estimate"] == 0.25
    assert not any(c.endswith("_mb") or c == "critic_memory_share" for c in table.columns)


def test_report_cost_section_says_mib_and_estimate():
    text = "\n".join(_cost_sections(ppo_and_grpo_runs(), alpha=0.05))
    assert "peak memory (MiB)" in text and "(MB)" not in text and "GB" not in text
    assert "an estimate from its parameter count" in text


def test_run_summary_prints_mib():
    text = format_summary({"steps": 2, "algorithm": "grpo", "model": "tiny", "output_dir": "/x",
                           "reward_first_fifth": 0.1, "reward_last_fifth": 0.2, "mean_step_time_s": 1.0,
                           "peak_memory_mb": 4921.0})
    assert "peak memory: 4921 MiB" in text
