"""A failure in held-out evaluation loses neither the trained step's record nor its
checkpoint: the evaluation runs after both are written, a failing one checkpoints the
step when no checkpoint was due, and ``trainer.resume=auto`` evaluates the step again.
Readers see each step once (the evaluation is a record of its own for the same step)."""

import json

import pytest

from grpo_lab.analysis.local import local_records, merge_steps, reached_max_steps, read_metrics
from grpo_lab.analysis import load_runs
from grpo_lab.eval.evaluator import Evaluator
from grpo_lab.trainer import train
from grpo_lab.trainer.checkpoint import list_checkpoints
from grpo_lab.trainer.metrics import measures_machine
from grpo_lab.trainer.sweep_jobs import finished_run

EVAL = ["eval.num_examples=4", "trainer.checkpoint_every_minutes=0"]


def failing_evaluations(monkeypatch, fail_calls):
    """Evaluator.evaluate raises (as out of memory would) on the calls numbered in ``fail_calls``."""
    real, calls = Evaluator.evaluate, []

    def evaluate(self, policy):
        calls.append(1)
        if len(calls) in fail_calls:
            raise RuntimeError("CUDA out of memory (injected)")
        return real(self, policy)

    monkeypatch.setattr(Evaluator, "evaluate", evaluate)


def comparable(records):
    return [{k: v for k, v in r.items() if not measures_machine(k)} for r in records]


def test_a_failing_final_evaluation_keeps_the_last_step_and_resume_evaluates_it(
        tiny_config, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    failing_evaluations(monkeypatch, {1})
    with pytest.raises(RuntimeError, match="out of memory"):
        train(tiny_config(*EVAL, "eval.at_end=true"))
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2]
    assert [s for s, _ in list_checkpoints(run)] == [2]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["budget/optimizer_steps"] == 2
    # Its records reach max_steps, but the last evaluation is missing: not a finished run
    # (a sweep grown over it resumes it; a report leaves it out).
    assert summary["failed"] is True and finished_run(run) is None
    assert not reached_max_steps(local_records(run)[0])
    assert (f"grpo-lab: held-out evaluation after step 2 failed; step 2 is recorded and checkpointed; "
            f"trainer.resume=auto continues from it and evaluates it again ({run})") in capsys.readouterr().err

    monkeypatch.undo()
    summary = train(tiny_config(*EVAL, "eval.at_end=true", "trainer.resume=auto"))
    written = read_metrics(run / "metrics.jsonl")
    assert [r["step"] for r in written] == [1, 2, 2]
    assert set(written[2]) == {"step", *(k for k in written[2] if k.startswith("eval/"))}
    assert summary["steps"] == 2 and summary["eval/accuracy"] == written[2]["eval/accuracy"]
    assert "failed" not in json.loads((run / "summary.json").read_text()) and finished_run(run) is not None
    assert not (run / "metrics.superseded.jsonl").exists()
    assert sorted({p["step"] for p in read_metrics(run / "eval_problems.jsonl")}) == [2]
    # Readers see each step once: the history and the tidy frame.
    (record,) = local_records(run)
    assert [e["step"] for e in record.history] == [1, 2] and "eval/accuracy" in record.history[1]
    frame = load_runs(run)
    assert not frame.duplicated(["run", "step", "metric"]).any()

    # Resumed once more, the recorded evaluation is not repeated but rejoins the summary.
    again = train(tiny_config(*EVAL, "eval.at_end=true", "trainer.resume=auto"))
    assert len(read_metrics(run / "metrics.jsonl")) == 3 and again["eval/accuracy"] == summary["eval/accuracy"]


@pytest.mark.parametrize("algorithm", ["grpo", "ppo"])
def test_a_failing_evaluation_mid_run_checkpoints_its_step_and_the_resumed_run_equals_an_uninterrupted_one(
        tiny_config, tmp_path, monkeypatch, algorithm):
    overrides = [*EVAL, f"algorithm={algorithm}", "eval.every=1", "trainer.max_steps=3", "trainer.lr=1e-2",
                 "+reward.weights.length=1.0", "+reward.functions.length=tests.helpers:completion_length_reward"]
    straight = train(tiny_config(*overrides, f"paths.output_dir={tmp_path / 'straight'}"))

    run = tmp_path / "run"
    failing_evaluations(monkeypatch, {1})
    with pytest.raises(RuntimeError):
        train(tiny_config(*overrides))
    # No checkpoint was due after step 1 (only at the end): the failure saved one.
    assert [s for s, _ in list_checkpoints(run)] == [1]
    monkeypatch.undo()
    resumed = train(tiny_config(*overrides, "trainer.resume=auto"))
    assert comparable(merge_steps(read_metrics(run / "metrics.jsonl"))) == \
        comparable(merge_steps(read_metrics(tmp_path / "straight" / "metrics.jsonl")))
    assert resumed["eval/accuracy"] == straight["eval/accuracy"] and resumed["steps"] == 3


def test_an_evaluation_cut_short_by_a_kill_is_done_again_on_resume(tiny_config, tmp_path):
    """A kill -9 in the middle of writing an evaluation's per-problem lines: the problem
    lines are written before the scores line, so the scores' absence marks the cut; resume
    moves the partial problem lines aside and evaluates the step again. (With the scores
    written first, the resumed run took the evaluation as done and its step kept a part
    of its problems.)"""
    run = tmp_path / "run"
    overrides = [*EVAL, "eval.at_end=true", "eval.at_start=true"]
    first = train(tiny_config(*overrides))
    problems = read_metrics(run / "eval_problems.jsonl")
    assert [p["step"] for p in problems] == [0] * 4 + [2] * 4
    metrics_lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    # The state a kill after the second of step 2's problem lines leaves.
    (scores,) = [i for i, line in enumerate(metrics_lines)
                 if json.loads(line)["step"] == 2 and "eval/accuracy" in json.loads(line)]
    assert scores == len(metrics_lines) - 1  # the scores line came last
    (run / "metrics.jsonl").write_text("".join(metrics_lines[:scores]))
    cut = (run / "eval_problems.jsonl").read_text().splitlines(keepends=True)[:6]
    (run / "eval_problems.jsonl").write_text("".join(cut))
    (run / "summary.json").unlink()

    resumed = train(tiny_config(*overrides, "trainer.resume=auto"))
    assert [p["step"] for p in read_metrics(run / "eval_problems.jsonl")] == [0] * 4 + [2] * 4
    assert [p["step"] for p in read_metrics(run / "eval_problems.superseded.jsonl")] == [2, 2]
    assert read_metrics(run / "eval_problems.jsonl")[4:] == problems[4:]  # greedy: the same evaluation
    assert resumed["eval/accuracy"] == first["eval/accuracy"] and finished_run(run) is not None
