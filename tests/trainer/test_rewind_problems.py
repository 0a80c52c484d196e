"""Resuming rewinds the per-problem evaluation records with the metrics: a step redone
after a resume appears once in eval_problems.jsonl, its first try kept aside."""

import json

from grpo_lab.trainer.rollback import rewind_records


def _lines(path, steps, per_step):
    path.write_text("".join(json.dumps({"step": s, "problem_id": f"p{i}", "correct": True}) + "\n"
                            for s in steps for i in range(per_step)))


def _metrics(path, steps, evaluated):
    """A step record per step, and a scores line (``eval/*`` keys) for each evaluated step."""
    path.write_text("".join(json.dumps({"step": s, "reward": 0.5}) + "\n"
                            + (json.dumps({"step": s, "eval/accuracy": 0.25}) + "\n" if s in evaluated else "")
                            for s in steps))


def _steps(path):
    return [json.loads(x)["step"] for x in path.read_text().splitlines()]


def test_rewind_keeps_problem_records_up_to_the_checkpoint(tmp_path):
    _metrics(tmp_path / "metrics.jsonl", [0, 1, 2, 3], evaluated={0, 2, 3})
    _lines(tmp_path / "eval_problems.jsonl", [0, 2, 3], 3)
    moved = rewind_records(tmp_path, 2)
    assert moved == {"metrics.jsonl": 2, "eval_problems.jsonl": 3}
    assert _steps(tmp_path / "eval_problems.jsonl") == [0, 0, 0, 2, 2, 2]
    assert _steps(tmp_path / "eval_problems.superseded.jsonl") == [3, 3, 3]


def test_problem_lines_of_an_evaluation_without_its_scores_line_are_moved_aside(tmp_path):
    """The scores line is written after the problem lines: a kill in between leaves
    problem lines of step 2 (maybe a part of them) and no scores for it."""
    _metrics(tmp_path / "metrics.jsonl", [0, 1, 2], evaluated={0})
    _lines(tmp_path / "eval_problems.jsonl", [0], 3)
    with open(tmp_path / "eval_problems.jsonl", "a") as f:
        f.write(json.dumps({"step": 2, "problem_id": "p0", "correct": False}) + "\n")
    moved = rewind_records(tmp_path, 2)
    assert moved == {"eval_problems.jsonl": 1}
    assert _steps(tmp_path / "eval_problems.jsonl") == [0, 0, 0]
    assert _steps(tmp_path / "eval_problems.superseded.jsonl") == [2]
