"""The analysis on a real tiny sweep: what it loads and reports matches the metrics files."""

import json
import math
import re
import subprocess

import numpy as np
import pytest

from grpo_lab.analysis import find_run_dirs, final_table, load_runs, load_wandb_runs
from grpo_lab.analysis.compare_cli import main as compare_main
from grpo_lab.analysis.wandb_api import wandb_filters
from tests.conftest import COMPARE_CMD


def rewards_of(run_dir):
    return [json.loads(line)["reward"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def expected_finals(root):
    """Final reward per variant, from the metrics files alone: mean of the last fifth."""
    by_variant = {}
    for run_dir in find_run_dirs(root):
        choices = {"algorithm": "grpo", "advantage": "group_std"}
        for line in (run_dir / ".hydra" / "overrides.yaml").read_text().splitlines():
            key, _, value = line.removeprefix("- ").partition("=")
            if key in choices:
                choices[key] = value
        rewards = rewards_of(run_dir)
        fifth = max(1, len(rewards) // 5)
        by_variant.setdefault((choices["advantage"], choices["algorithm"]), []).append(np.mean(rewards[-fifth:]))
    return by_variant


def section_rows(report_text, heading, width):
    """The rows of the first pipe table under ``heading``: {first cell: [other cells]}."""
    section = report_text.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == width and cells[0] not in ("variant", "A", "---"):
            rows.setdefault(cells[0], cells[1:])
    return rows


def report_rows(report_text):
    """The outcome table of report.md: {variant: [runs, mean, iqm, ci_low, ci_high, std, min, max]}."""
    return {variant: [float("nan") if c == "–" else float(c) for c in cells]
            for variant, cells in section_rows(report_text, "## Outcome: reward", 9).items()}


def test_runs_load_in_job_order_with_their_variants(sweep_root):
    frame = load_runs(sweep_root)
    assert frame["run"].unique().tolist() == ["adv/0", "adv/1", "adv/2", "adv/3", "ppo/0", "ppo/1"]
    assert sorted(frame["variant"].unique()) == [
        "advantage=group_mean,algorithm=grpo", "advantage=group_std,algorithm=grpo", "advantage=group_std,algorithm=ppo"]
    assert sorted(frame.groupby("run")["seed"].first().tolist()) == [0, 0, 0, 1, 1, 1]
    for run in ("adv/2", "ppo/1"):
        loaded = frame[(frame["run"] == run) & (frame["metric"] == "reward")].sort_values("step")
        assert loaded["value"].tolist() == pytest.approx(rewards_of(sweep_root / run))
        assert loaded["step"].tolist() == [1, 2, 3]


def test_one_run_folder_loads_alone(sweep_root):
    frame = load_runs(sweep_root / "adv" / "1")
    assert frame["run"].unique().tolist() == ["1"] and frame["variant"].unique().tolist() == ["default"]


def test_compare_command_report_matches_the_metrics_files(sweep_root, tmp_path):
    result = subprocess.run([*COMPARE_CMD, str(sweep_root), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "report.md").read_text()
    rows = report_rows(text)
    expected = expected_finals(sweep_root)
    assert len(rows) == len(expected) == 3
    for (advantage, algorithm), finals in expected.items():
        runs, mean, iqm, ci_low, ci_high, std, low, high = rows[f"advantage={advantage},algorithm={algorithm}"]
        assert runs == len(finals) == 2
        assert mean == pytest.approx(np.mean(finals), abs=1e-4)
        assert std == pytest.approx(np.std(finals, ddof=1), abs=1e-4)
        assert math.isnan(iqm)  # fewer than 4 seeds
        assert (low, high) == (pytest.approx(min(finals), abs=1e-4), pytest.approx(max(finals), abs=1e-4))
        assert low - 1e-4 <= ci_low <= mean <= ci_high <= high + 1e-4  # the band stays in the data
    assert "fewer than 3 seeds" in text
    # Every pair of the three variants has a verdict, per step and at equal budgets.
    pairs = section_rows(text, "## Paired comparisons", 11)
    assert len(pairs) == 2 and all(cells[-2] for cells in pairs.values())
    # ... and the seeds a verdict would need: a count, inf (no difference) or – (unpaired).
    assert all(re.fullmatch(r"[0-9]+|inf|–", cells[-1]) for cells in pairs.values())
    for axis in ("step", "generated tokens", "wall-clock seconds"):
        assert re.search(rf"### At [0-9.]+ {axis}", text), axis
    for png in ("reward_by_step.png", "reward_by_generated_tokens.png", "reward_by_wall_s.png",
                "training_metrics.png"):
        assert f"]({png})" in text
        data = (tmp_path / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_multirun_report_hook_wrote_the_sweeps_own_report(sweep_root):
    rows = report_rows((sweep_root / "adv" / "report.md").read_text())
    expected = {f"advantage={a}": v for (a, _), v in expected_finals(sweep_root / "adv").items()}
    assert rows.keys() == expected.keys()
    for variant, finals in expected.items():
        assert rows[variant][1] == pytest.approx(np.mean(finals), abs=1e-4)
    assert "comparison report:" in (sweep_root / "adv.log").read_text()


def test_compare_on_a_folder_without_runs_is_one_line(tmp_path, capsys):
    assert compare_main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"grpo-lab-compare: error: no runs under {tmp_path} (a run folder holds metrics.jsonl)")


def test_compare_with_an_unknown_axis_is_one_line(tmp_path, capsys):
    assert compare_main([str(tmp_path), "--x", "step,tokens"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--x 'tokens'" in err and "generated_tokens" in err and "\n" not in err


class StoredRun:
    """A W&B API run (``wandb.apis.public.Run``'s attributes) holding what grpo-lab logs:
    the resolved config plus ``hydra`` overrides/choices, and history rows keyed ``_step``."""

    def __init__(self, run_dir, run_id):
        import yaml

        self.id, self.name = run_id, run_dir.name
        hydra = yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]
        self.config = {**yaml.safe_load((run_dir / "config.yaml").read_text()),
                       "hydra": {"overrides": hydra["overrides"]["task"], "choices": hydra["runtime"]["choices"]}}
        self.summary = json.loads((run_dir / "summary.json").read_text())
        self.rows = [{"_step": r.pop("step"), "_runtime": 1.0, "completions": {"_type": "table-file"}, **r}
                     for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())]

    def scan_history(self):
        return iter(self.rows)


class StoredApi:
    def __init__(self, runs):
        self.stored, self.calls = runs, []

    def runs(self, path, filters=None):
        self.calls.append((path, filters))
        return self.stored


def test_wandb_runs_give_the_same_frame_as_the_local_folders(sweep_root):
    dirs = find_run_dirs(sweep_root)
    api = StoredApi([StoredRun(d, f"id{i}") for i, d in enumerate(dirs)])
    remote = load_wandb_runs("grpo-lab", entity="me", group="adv_norm/x", tags=["grpo"], api=api)
    assert api.calls == [("me/grpo-lab", {"group": "adv_norm/x", "tags": {"$in": ["grpo"]}, "state": "finished"})]
    local = load_runs(sweep_root)
    columns = [c for c in local.columns if c != "run"]
    assert remote[columns].reset_index(drop=True).equals(local[columns].reset_index(drop=True))
    assert final_table(remote).drop(columns="variant").equals(final_table(local).drop(columns="variant"))


def test_wandb_filters():
    assert wandb_filters() == {}
    assert wandb_filters(tags=("a", "b"), state=None) == {"tags": {"$in": ["a", "b"]}}
