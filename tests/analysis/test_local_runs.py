"""Reading run folders that are not a clean finished sweep."""

import json

import pytest

from grpo_lab.analysis import find_latest_sweep, find_run_dirs, load_runs


def write_run(path, rewards, overrides=(), tail=""):
    path.mkdir(parents=True)
    (path / ".hydra").mkdir()
    (path / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    lines = [json.dumps({"step": i + 1, "reward": r}) for i, r in enumerate(rewards)]
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n" + tail)


def test_job_folders_sort_numerically(tmp_path):
    for job in ("10", "2", "1"):
        write_run(tmp_path / job, [1.0])
    assert [p.name for p in find_run_dirs(tmp_path)] == ["1", "2", "10"]


def test_a_run_killed_mid_write_loses_only_its_cut_line(tmp_path):
    write_run(tmp_path / "0", [1.0, 2.0], ["trainer.seed=3"], tail='{"step": 3, "rew')
    frame = load_runs(tmp_path)
    assert frame["value"].tolist() == [1.0, 2.0]
    assert frame["seed"].tolist() == [3, 3]  # from the override when no config was written


def test_a_corrupt_line_inside_the_file_names_file_and_line(tmp_path):
    write_run(tmp_path / "0", [1.0], tail='garbage\n{"step": 2, "reward": 1.0}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2 is not a JSON record"):
        load_runs(tmp_path)


def test_missing_folder_and_latest_sweep(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_runs(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no multirun folder"):
        find_latest_sweep(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "multirun.yaml").write_text("{}")
    assert find_latest_sweep(tmp_path) == tmp_path / "a"


def _with_max_steps(path, max_steps):
    (path / "config.yaml").write_text(f"trainer:\n  max_steps: {max_steps}\n  seed: 0\n")


def test_report_leaves_out_runs_that_have_not_reached_max_steps(tmp_path):
    from grpo_lab.analysis.report import write_report

    # Jobs 0 and 1 ran their 2 steps; job 2 is still going (1 of 2): its last record is
    # not an end of training, so it is no outcome.
    for job, rewards, arm in (("0", [0.1, 0.5], "a"), ("1", [0.2, 0.3], "b"), ("2", [0.9], "b")):
        write_run(tmp_path / job, rewards, [f"arm={arm}"])
        _with_max_steps(tmp_path / job, 2)
    text = write_report(tmp_path).read_text()
    assert text.startswith("# Comparison of 2 runs")
    assert "**Left out:** 1 run(s) that have not finished: short of their `trainer.max_steps`" in text
    assert "`2` (step 1 of 2)" in text
    assert "| arm=b | 1 | 0.3000 |" in text  # job 1's final reward only, not job 2's 0.9


def test_report_with_no_finished_run_says_so(tmp_path):
    from grpo_lab.analysis.report import write_report

    write_run(tmp_path / "0", [0.1])
    _with_max_steps(tmp_path / "0", 3)
    with pytest.raises(ValueError, match="no run under .* has reached its trainer.max_steps yet"):
        write_report(tmp_path)


def test_a_run_stopped_or_killed_in_its_last_step_is_not_an_outcome(tmp_path):
    """A stop in the last step leaves its held-out evaluation to the run that resumes it,
    and a kill in the final evaluation leaves no summary: both runs' records reach
    max_steps, but their last evaluation is an earlier one."""
    import json

    from grpo_lab.analysis.report import write_report

    for job, rewards, arm in (("0", [0.1, 0.5], "a"), ("1", [0.2, 0.3], "b"), ("2", [0.8, 0.9], "b"),
                              ("3", [0.6, 0.7], "a")):
        write_run(tmp_path / job, rewards, [f"arm={arm}"])
        _with_max_steps(tmp_path / job, 2)
    (tmp_path / "2" / "summary.json").write_text(json.dumps({"stopped_by": "SIGTERM"}))
    (tmp_path / "3" / "summary.json").unlink(missing_ok=True)
    (tmp_path / "3" / "manifest.json").write_text(json.dumps({"grpo_lab": {"commit": "0" * 40},
                                                              "hardware": {"cpu": "some CPU"}}))
    text = write_report(tmp_path).read_text()
    assert text.startswith("# Comparison of 2 runs")
    assert "`2` (step 2 of 2, stopped by SIGTERM)" in text and "`3` (step 2 of 2, no summary yet)" in text
    assert "| arm=b | 1 | 0.3000 |" in text  # job 1's outcome alone, not job 2's 0.9
