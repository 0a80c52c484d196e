"""Resuming rewinds the per-problem evaluation records with the metrics: a step redone
after a resume appears once in eval_problems.jsonl, its first try kept aside."""

import json

from grpo_lab.trainer.rollback import rewind_records


def _lines(path, steps, per_step):
    path.write_text("".join(json.dumps({"step": s, "problem_id": f"p{i}", "correct": True}) + "\n"
                            for s in steps for i in range(per_step)))


def test_rewind_keeps_problem_records_up_to_the_checkpoint(tmp_path):
    _lines(tmp_path / "metrics.jsonl", [0, 1, 2, 3], 1)
    _lines(tmp_path / "eval_problems.jsonl", [0, 2, 3], 3)
    moved = rewind_records(tmp_path, 2)
    assert moved == {"metrics.jsonl": 1, "eval_problems.jsonl": 3}
    kept = [json.loads(x)["step"] for x in (tmp_path / "eval_problems.jsonl").read_text().splitlines()]
    aside = [json.loads(x)["step"] for x in (tmp_path / "eval_problems.superseded.jsonl").read_text().splitlines()]
    assert kept == [0, 0, 0, 2, 2, 2] and aside == [3, 3, 3]
