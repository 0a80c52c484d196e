"""Every committed experiment report is what ``grpo-lab-compare`` computes today from the
committed runs beside it: the claims table's verdicts stay re-computable, and a change to
the analysis code that would move a committed figure or verdict fails here instead of
leaving the report and the code saying different things."""

from pathlib import Path

import pytest

from tests.conftest import REPO

REPORTS = sorted((REPO / "experiments" / "results").glob("*/runs/report.md"))


def test_the_claim_experiments_have_committed_reports():
    names = {path.parent.parent.name for path in REPORTS}
    assert {"grpo_vs_ppo_cpu", "dr_grpo_length_cpu", "sparse_reward_cpu"} <= names, names


@pytest.mark.parametrize("report", REPORTS, ids=[p.parent.parent.name for p in REPORTS])
def test_a_committed_report_is_what_the_committed_runs_give_today(report: Path, tmp_path):
    from grpo_lab.analysis.compare_cli import main

    assert main([str(report.parent), "--out", str(tmp_path)]) == 0
    computed = (tmp_path / "report.md").read_text(encoding="utf-8").splitlines()
    committed = report.read_text(encoding="utf-8").splitlines()
    differing = [(n, a, b) for n, (a, b) in enumerate(zip(committed, computed), 1) if a != b]
    first = differing[0] if differing else (min(len(committed), len(computed)) + 1, "(end)", "(end)")
    assert computed == committed, (
        f"{report.relative_to(REPO)} differs from what grpo-lab-compare computes now, first at line {first[0]}:\n"
        f"  committed: {first[1]}\n  computed:  {first[2]}\n"
        f"check the verdicts, then write it again: grpo-lab-compare {report.parent.relative_to(REPO)}")
