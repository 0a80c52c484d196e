"""grpo-lab-rescore: recorded held-out answers checked again with the current checker, the
metrics built on them rewritten, the checker recorded; the report refuses runs scored by
different checkers."""

import json
import shutil
import subprocess
import sys

import pytest

from grpo_lab.analysis.report import write_report
from grpo_lab.eval.answers import ANSWER_CHECKER, FIRST_CHECKER
from grpo_lab.eval.evaluator import verdict_metrics
from grpo_lab.eval.rescore import main, rescore_run
from tests.analysis.test_declared_report import write_sweep
from tests.conftest import REPO

RESTATED = "To calculate 60 * 22, use the formula 60 * 22 = 1200. For 60 * 22, you can call the following:"
# Per step: (completion, answer, length, the verdict recorded by answers-v1).
RECORDS = {
    0: [(RESTATED, "1320", 30, True),                 # credited by v1: 60*22 evaluates to 1320
        ("<answer>12</answer>", "12", 5, True),
        ("<answer>7</answer>", "8", 6, False),
        ("I do not know", "3", 10, False)],
    5: [("<answer>1320</answer>", "1320", 4, True),
        ("<answer>12</answer>", "12", 5, True),
        ("<answer>8</answer>", "8", 6, True),
        ("<answer>2</answer>", "3", 8, False)],
}


def recorded_metrics(step):
    rows = RECORDS[step]
    return verdict_metrics([r[3] for r in rows], [r[2] for r in rows])


def write_run(run, manifest=True):
    """A finished run as the trainer writes it, its verdicts by answers-v1: evaluations at
    steps 0 and 5, a training row between them."""
    run.mkdir(parents=True)
    problems = [{"step": step, "problem_id": f"p{i}", "question": f"q{i}", "answer": answer, "correct": ok,
                 "length": length, "completion": text}
                for step, rows in RECORDS.items() for i, (text, answer, length, ok) in enumerate(rows)]
    (run / "eval_problems.jsonl").write_text("".join(json.dumps(p) + "\n" for p in problems))
    rows = [{"step": 0, "eval/num_examples": 4.0, **recorded_metrics(0), "eval/time": 1.5},
            {"step": 1, "reward": 0.5},
            {"step": 5, "reward": 0.75, "eval/num_examples": 4.0, **recorded_metrics(5), "eval/time": 1.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {"steps": 5, "reward_final": 0.75, **{k: v for k, v in rows[2].items() if k.startswith("eval/")},
               **{k.replace("eval/", "eval_start/"): v for k, v in rows[0].items() if k.startswith("eval/")}}
    (run / "summary.json").write_text(json.dumps(summary, indent=2))
    if manifest:
        (run / "manifest.json").write_text(json.dumps({"grpo_lab": {"commit": "abc"}}, indent=2))
    return run


def test_rescoring_rewrites_the_verdicts_and_the_metrics_built_on_them(tmp_path):
    run = write_run(tmp_path / "run")
    result = rescore_run(run)
    assert result.checker_before == FIRST_CHECKER
    assert result.changed == {0: 1, 5: 0}
    assert result.accuracy[0] == (0.5, 0.25)
    problems = [json.loads(line) for line in (run / "eval_problems.jsonl").read_text().splitlines()]
    assert [p["correct"] for p in problems if p["step"] == 0] == [False, True, False, False]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # Step 0: one right answer of 5 tokens; wrong ones 30, 6 and 10 tokens.
    assert metrics[0]["eval/accuracy"] == 0.25
    assert metrics[0]["eval/mean_length_correct"] == 5.0
    assert metrics[0]["eval/mean_length_wrong"] == pytest.approx(46 / 3)
    assert metrics[0]["eval/time"] == 1.5 and metrics[1] == {"step": 1, "reward": 0.5}
    assert metrics[2] == {"step": 5, "reward": 0.75, "eval/num_examples": 4.0, **recorded_metrics(5),
                          "eval/time": 1.0}
    summary = json.loads((run / "summary.json").read_text())
    assert summary["eval_start/accuracy"] == 0.25 and summary["eval_start/mean_length_wrong"] == pytest.approx(46 / 3)
    assert summary["eval/accuracy"] == 0.75 and summary["reward_final"] == 0.75
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["answer_checker"] == ANSWER_CHECKER
    assert manifest["rescored"] == [{"from": FIRST_CHECKER, "to": ANSWER_CHECKER, "verdicts_changed": 1,
                                     "date": manifest["rescored"][0]["date"]}]
    assert manifest["grpo_lab"] == {"commit": "abc"}

    # Again: nothing to change, nothing written (no second stamp).
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    again = rescore_run(run)
    assert again.checker_before == ANSWER_CHECKER and sum(again.changed.values()) == 0
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_a_committed_run_keeps_every_metric_where_no_verdict_changed(tmp_path):
    """A real run's records (precision_cpu job 0): the metrics rebuilt from its verdicts are
    the evaluator's own numbers, so steps without a changed verdict stay as written."""
    source = REPO / "experiments" / "results" / "precision_cpu" / "runs" / "0"
    run = shutil.copytree(source, tmp_path / "0")
    before = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    result = rescore_run(run)
    after = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    problems = [json.loads(line) for line in (run / "eval_problems.jsonl").read_text().splitlines()]
    assert len(before) == len(after)
    evaluated = [row for row in after if "eval/accuracy" in row]
    assert [row["step"] for row in evaluated] == sorted(result.changed)
    for old, new in zip(before, after):
        if result.changed.get(old["step"], 0) == 0:
            assert new == old
    for row in evaluated:
        verdicts = [p["correct"] for p in problems if p["step"] == row["step"]]
        assert row["eval/accuracy"] == sum(verdicts) / len(verdicts)


def test_a_grpo_lab_eval_folder_is_rescored_in_its_eval_json(tmp_path):
    run = tmp_path / "eval"
    run.mkdir()
    rows = RECORDS[0]
    (run / "eval_problems.jsonl").write_text("".join(
        json.dumps({"problem_id": f"p{i}", "answer": a, "correct": ok, "length": n, "completion": t}) + "\n"
        for i, (t, a, n, ok) in enumerate(rows)))
    (run / "eval.json").write_text(json.dumps({"task": "arithmetic", **recorded_metrics(0), "eval/mean_length": 12.75}))
    assert rescore_run(run).changed == {None: 1}
    scores = json.loads((run / "eval.json").read_text())
    assert scores["eval/accuracy"] == 0.25 and scores["eval/mean_length"] == 12.75
    assert scores["answer_checker"] == ANSWER_CHECKER and scores["rescored"][0]["verdicts_changed"] == 1


def test_refusals_are_one_line_and_change_nothing(tmp_path, capsys):
    run = write_run(tmp_path / "sampled")
    text = (run / "eval_problems.jsonl").read_text().replace('"completion"', '"samples_correct": [true], "completion"')
    (run / "eval_problems.jsonl").write_text(text)
    with pytest.raises(SystemExit) as exit_:
        main([str(run)])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"grpo-lab-rescore: error: {run / 'eval_problems.jsonl'} holds sampled verdicts (samples_correct) without "
        "their texts: they cannot be rescored")
    assert (run / "eval_problems.jsonl").read_text() == text

    with pytest.raises(SystemExit):
        main([str(tmp_path / "nothing")])
    assert "holds no eval_problems.jsonl: nothing to rescore" in capsys.readouterr().err

    # A live run holds the folder (its lock, taken by another process): refused, unchanged.
    live = write_run(tmp_path / "live")
    before = {p.name: p.read_bytes() for p in live.iterdir()}
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from grpo_lab.run_lock import RunFolderLock; "
                               f"lock = RunFolderLock.acquire({str(live)!r}); print('held', flush=True); time.sleep(60)"],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SystemExit):
            main([str(live)])
        assert "is in use by a running grpo-lab run" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert {p.name: p.read_bytes() for p in live.iterdir() if p.name != ".grpo-lab.lock"} == before


def test_the_report_names_the_checker_and_refuses_mixed_ones(tmp_path):
    root = write_sweep(tmp_path / "runs")
    for run in root.iterdir():
        (run / "manifest.json").write_text(json.dumps({"answer_checker": ANSWER_CHECKER}))
    text = write_report(root, tmp_path / "out").read_text()
    assert f"Held-out answers checked by `{ANSWER_CHECKER}` (grpo_lab/eval/answers.py), the current checker." in text

    (root / "4" / "manifest.json").write_text(json.dumps({}))  # recorded before the manifest named it
    with pytest.raises(ValueError, match=f"runs were scored by different answer checkers \\({FIRST_CHECKER} in 4, "
                                         f"{ANSWER_CHECKER} in 0 and 7 more\\); bring them all to {ANSWER_CHECKER} "
                                         "with grpo-lab-rescore <folder>"):
        write_report(root, tmp_path / "out")

    for run in root.iterdir():
        (run / "manifest.json").write_text(json.dumps({}))
    text = write_report(root, tmp_path / "out").read_text()
    assert (f"**Held-out answers checked by `{FIRST_CHECKER}`, not by the current `{ANSWER_CHECKER}`** "
            f"(grpo_lab/eval/answers.py): `grpo-lab-rescore {root}` checks the recorded answers again.") in text
