"""Held-out evaluation: scoring plumbing, GSM8K lines, evaluation during training, and
``grpo-lab-eval`` on a checkpoint."""

import json
import re

import pytest
import torch

from grpo_lab.analysis.local import merge_steps, read_metrics
from grpo_lab.config.validate import validate_config
from grpo_lab.errors import ConfigError
from grpo_lab.eval.cli import evaluate
from grpo_lab.eval.evaluator import Evaluator, heldout_task_config
from grpo_lab.models.loading import load_policy_and_tokenizer
from grpo_lab.tasks import build_task
from grpo_lab.trainer import Trainer, train
from grpo_lab.trainer.checkpoint import list_checkpoints
from grpo_lab.trainer.metrics import measures_machine
from tests.conftest import GSM8K_DIR, TINY, compose_config

FAST = ["logger.wandb.mode=disabled", "trainer.num_threads=1"]
needs_gsm8k = pytest.mark.skipif(not (GSM8K_DIR / "test.jsonl").is_file(), reason="shared GSM8K copy absent")


def gsm8k_lines(tmp_path, n=4):
    """The first n lines of the shared GSM8K train and test files, copied to tmp."""
    paths = {}
    for split in ("train", "test"):
        lines = (GSM8K_DIR / f"{split}.jsonl").read_text().splitlines()[:n]
        paths[split] = tmp_path / f"{split}.jsonl"
        paths[split].write_text("\n".join(lines) + "\n")
    return paths


class AnswersFromTable:
    """A stand-in policy whose 'generation' is a fixed text per prompt, so the scoring
    path (prompt formatting, decoding, EOS cutting, answer checking) is tested alone."""

    def __init__(self, tokenizer, texts_by_question):
        self.tokenizer, self.texts, self.training = tokenizer, texts_by_question, False

    def eval(self):
        self.training = False

    def train(self, mode=True):
        self.training = mode

    def generate(self, input_ids, attention_mask, num_return_sequences, **kwargs):
        rows = []
        for prompt_ids in input_ids:
            prompt = self.tokenizer.decode(prompt_ids, skip_special_tokens=True)
            text = next(t for q, t in self.texts.items() if q in prompt)
            answer_ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
            rows += [list(prompt_ids) + answer_ids] * num_return_sequences
        width = max(map(len, rows))
        return torch.tensor([r + [self.tokenizer.pad_token_id] * (width - len(r)) for r in rows])


@needs_gsm8k
def test_gsm8k_scoring_counts_right_answers(tmp_path):
    paths = gsm8k_lines(tmp_path)
    cfg = compose_config([*TINY, *FAST, "task=gsm8k", f"task.path={paths['train']}",
                          f"eval.path={paths['test']}", "eval.num_samples=2", "eval.batch_size=3"])
    _, tokenizer = load_policy_and_tokenizer(cfg.model, torch.device("cpu"), torch.float32)
    evaluator = Evaluator(cfg, tokenizer, torch.device("cpu"))
    rows = list(evaluator.dataset)
    assert [r["answer"] for r in rows] == [
        json.loads(x)["answer"].split("####")[-1].strip().replace(",", "")
        for x in paths["test"].read_text().splitlines()
    ]
    # Right on the first three problems (tagged, boxed, plain), wrong on the fourth.
    texts = {rows[0]["question"]: f"<answer>{rows[0]['answer']}</answer>",
             rows[1]["question"]: f"so \\boxed{{{rows[1]['answer']}}}",
             rows[2]["question"]: f"The total is {rows[2]['answer']}.",
             rows[3]["question"]: "<answer>-1</answer>"}
    metrics = evaluator.evaluate(AnswersFromTable(tokenizer, texts))
    assert metrics["eval/num_examples"] == 4
    assert metrics["eval/accuracy"] == pytest.approx(0.75)
    assert metrics["eval/pass@2"] == pytest.approx(0.75)
    assert metrics["eval/mean@2"] == pytest.approx(0.75)


@needs_gsm8k
def test_gsm8k_training_with_evaluation(tmp_path):
    paths = gsm8k_lines(tmp_path)
    run = tmp_path / "run"
    summary = train(compose_config([
        *TINY, *FAST, f"paths.output_dir={run}", "task=gsm8k", f"task.path={paths['train']}",
        f"eval.path={paths['test']}", "eval.every=1", "eval.num_samples=2",
    ]))
    records = merge_steps(read_metrics(run / "metrics.jsonl"))
    for r in records:
        assert r["eval/num_examples"] == 4
        assert 0 <= r["eval/accuracy"] <= 1 and 0 <= r["eval/mean@2"] <= r["eval/pass@2"] <= 1
    assert summary["eval/accuracy"] == records[-1]["eval/accuracy"]


def test_local_gsm8k_file_needs_a_heldout_file(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"question": "1 + 1?", "answer": "#### 2"}\n')
    cfg = compose_config([*TINY, "task=gsm8k", f"task.path={path}", "eval.at_end=true"])
    with pytest.raises(ConfigError, match="eval.path"):
        heldout_task_config(cfg)


@pytest.mark.parametrize("change, key", [
    (["eval.split=train"], "eval.split='train'"),
    (["+eval.task.heldout_fraction=0.5"], "eval.task.heldout_fraction=0.5"),
])
def test_a_heldout_set_of_training_data_is_refused_before_the_run(tmp_path, change, key):
    # Validation refuses it, so no run folder is set aside and no tracker opens.
    cfg = compose_config([*TINY, "eval.at_end=true", f"paths.output_dir={tmp_path / 'run'}", *change])
    with pytest.raises(ConfigError, match=re.escape(key)):
        validate_config(cfg)
    with pytest.raises(ConfigError, match="training"):
        heldout_task_config(cfg)
    assert not (tmp_path / "run").exists()


def test_a_smaller_heldout_fraction_is_a_subset_and_allowed():
    cfg = compose_config([*TINY, "eval.at_end=true", "+eval.task.heldout_fraction=0.1"])
    validate_config(cfg)
    smaller = set(questions(build_task(heldout_task_config(cfg))))
    full = set(questions(build_task(heldout_task_config(compose_config([*TINY, "eval.at_end=true"])))))
    assert smaller and smaller < full


def questions(dataset):
    return [p[-1]["content"] for p in dataset["prompt"]]


@pytest.mark.parametrize("difficulty", [
    [],  # operands 0-10, + and -: 242 distinct problems, enumerated
    ["task.max_operand=99", "task.num_operands=3", "task.operations=[+,-,*]"],  # sampled
])
def test_no_heldout_arithmetic_problem_is_ever_drawn_for_training(difficulty):
    cfg = compose_config([*TINY, "task.num_examples=5000", "eval.num_examples=100000", *difficulty])
    training = set(questions(build_task(cfg.task)))
    heldout = questions(build_task(heldout_task_config(cfg)))
    assert heldout and not training & set(heldout)
    assert len(set(heldout)) == len(heldout)  # each held-out problem once
    if not difficulty:
        # Every distinct problem lands on exactly one side: 5000 draws cover the 80% train part.
        assert len(training) + len(heldout) == 11 * 11 * 2
    # Commutative twins and other rearrangements with the same answer share a side:
    # no held-out problem is a training problem written in another order.
    def family(question):
        tokens = question.removeprefix("What is ").removesuffix("?").split()
        return sorted(map(int, tokens[::2])), sorted(tokens[1::2]), eval(" ".join(tokens))  # noqa: S307
    training_families = {repr(family(q)) for q in training}
    assert not any(repr(family(q)) in training_families for q in heldout)
    if not difficulty:  # enumerated: every held-out a + b has its twin b + a held out too
        twins = [q for q in heldout if "+" in q and q.split()[2] != q.split()[4].rstrip("?")]
        assert twins and all(
            f"What is {q.split()[4].rstrip('?')} + {q.split()[2]}?" in heldout for q in twins)


@pytest.mark.parametrize("fraction, expected", [(0.2, 50), (0.4, 104)])
def test_heldout_fraction_sizes_the_default_space(fraction, expected):
    """The held-out set of the default space (operands 0-10, + and -) at two fractions:
    experiment files raise it to measure accuracy on 100+ problems."""
    cfg = compose_config([*TINY, f"task.heldout_fraction={fraction}"])
    assert len(build_task(heldout_task_config(cfg))) == expected


@needs_gsm8k
def test_gsm8k_heldout_never_shares_a_question_with_training(tmp_path):
    train_file, test_file = GSM8K_DIR / "train.jsonl", GSM8K_DIR / "test.jsonl"
    cfg = compose_config([*TINY, *FAST, "task=gsm8k", f"task.path={train_file}", f"eval.path={test_file}",
                          "eval.num_examples=null", "task.num_examples=null"])
    training = questions(build_task(cfg.task))
    _, tokenizer = load_policy_and_tokenizer(cfg.model, torch.device("cpu"), torch.float32)
    evaluator = Evaluator(cfg, tokenizer, torch.device("cpu"), training_questions=set(training))
    assert not set(training) & set(questions(evaluator.dataset))
    # A held-out file that repeats two training problems: they are left out of the score.
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("\n".join(train_file.read_text().splitlines()[:2] + test_file.read_text().splitlines()[:3]) + "\n")
    cfg = compose_config([*TINY, *FAST, "task=gsm8k", f"task.path={train_file}", f"eval.path={mixed}"])
    evaluator = Evaluator(cfg, tokenizer, torch.device("cpu"), training_questions=set(training))
    assert len(evaluator.dataset) == 3 and not set(training) & set(questions(evaluator.dataset))


def test_evaluation_at_start_every_n_steps_and_at_end(tmp_path):
    run = tmp_path / "run"
    summary = train(compose_config([*TINY, *FAST, f"paths.output_dir={run}", "trainer.max_steps=5",
                                    "eval.at_start=true", "eval.every=2", "eval.at_end=true",
                                    "eval.num_examples=6", "eval.num_samples=3"]))
    written = read_metrics(run / "metrics.jsonl")
    # Each evaluation after a step is a record of its own, written after the step's record
    # (and checkpoint), holding only the evaluation's keys; readers merge them.
    assert [r["step"] for r in written] == [0, 1, 2, 2, 3, 4, 4, 5, 5]
    assert all(k == "step" or k.startswith("eval/") for i in (3, 6, 8) for k in written[i])
    assert not any(k.startswith("eval/") for i in (1, 2, 4, 5, 7) for k in written[i])
    records = merge_steps(written)
    assert [r["step"] for r in records] == [0, 1, 2, 3, 4, 5]
    evaluated = [r["step"] for r in records if "eval/accuracy" in r]
    assert evaluated == [0, 2, 4, 5]
    start = records[0]
    assert "reward" not in start and start["budget/samples"] == 0  # before any training
    for r in records:
        if "eval/accuracy" in r:
            assert r["eval/num_examples"] == 6
            assert 0 <= r["eval/pass@1"] <= r["eval/pass@2"] <= r["eval/pass@3"] <= 1
            assert r["eval/mean@3"] == pytest.approx(r["eval/pass@1"])
            # Lengths of right and wrong greedy answers: NaN (null) when there are none.
            assert "eval/mean_length_correct" in r and "eval/mean_length_wrong" in r
    assert summary["eval_start/accuracy"] == start["eval/accuracy"]
    assert summary["eval/accuracy"] == records[-1]["eval/accuracy"]


def test_evaluation_after_listed_steps(tmp_path):
    """eval.steps evaluates after exactly those steps: an outcome read from the last two
    evaluations needs no others."""
    run = tmp_path / "run"
    train(compose_config([*TINY, *FAST, f"paths.output_dir={run}", "trainer.max_steps=4",
                          "eval.at_start=true", "eval.every=0", "eval.steps=[1,3]", "eval.at_end=true",
                          "eval.num_examples=4"]))
    records = merge_steps(read_metrics(run / "metrics.jsonl"))
    assert [r["step"] for r in records if "eval/accuracy" in r] == [0, 1, 3, 4]
    problems = [json.loads(line)["step"] for line in (run / "eval_problems.jsonl").read_text().splitlines()]
    assert sorted(set(problems)) == [0, 1, 3, 4]


def test_evaluation_does_not_change_training(tmp_path):
    """Seeded, forked RNG: a run evaluated every step trains exactly like one that is not."""
    def run(name, *extra):
        train(compose_config([*TINY, *FAST, f"paths.output_dir={tmp_path / name}", "trainer.max_steps=3", *extra]))
        return merge_steps(read_metrics(tmp_path / name / "metrics.jsonl"))

    plain = run("plain")
    evaluated = run("evaluated", "eval.every=1", "eval.num_examples=4", "eval.num_samples=2")
    assert all("eval/pass@2" in r for r in evaluated)
    keep = lambda r: {k: v for k, v in r.items()  # noqa: E731
                      if not k.startswith("eval/") and not measures_machine(k)}
    assert [keep(r) for r in evaluated] == [keep(r) for r in plain]


def test_eval_cli_scores_a_checkpoint_like_the_trained_policy(tmp_path):
    run = tmp_path / "run"
    common = [*TINY, *FAST, "eval.num_examples=6", "eval.num_samples=2", "trainer.lr=1e-2",
              "model.lora.enabled=true", "model.lora.r=4"]
    trainer = Trainer(compose_config([*common, f"paths.output_dir={run}"]))
    trainer.train()
    expected = Evaluator(trainer.cfg, trainer.tokenizer, trainer.device).evaluate(trainer.policy)

    _, checkpoint = list_checkpoints(run)[-1]
    # The command line names the base model without LoRA: the checkpoint's model config wins.
    result = evaluate(compose_config([*TINY, *FAST, "eval.num_examples=6", "eval.num_samples=2",
                                      f"eval.checkpoint={run}", f"paths.output_dir={tmp_path / 'eval'}"]))
    assert result["checkpoint"] == str(checkpoint)
    for key in ("eval/accuracy", "eval/pass@2", "eval/mean@2", "eval/mean_length"):
        assert result[key] == pytest.approx(expected[key]), key
    saved = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert saved["eval/mean_length"] == pytest.approx(expected["eval/mean_length"])
    problems = [json.loads(x) for x in (tmp_path / "eval" / "eval_problems.jsonl").read_text().splitlines()]
    assert len(problems) == 6
    assert sum(p["correct"] for p in problems) / 6 == pytest.approx(expected["eval/accuracy"])
    assert all(len(p["samples_correct"]) == 2 for p in problems)


def test_every_evaluation_writes_one_record_per_problem(tmp_path):
    """eval_problems.jsonl: one line per held-out problem per evaluation, whose verdicts
    and lengths give back the step's eval/accuracy, eval/mean_length and eval/mean@n, and
    load into the per-problem frame with stable ids shared across runs."""
    from grpo_lab.analysis import load_problems

    def run(name, seed):
        train(compose_config([*TINY, *FAST, f"paths.output_dir={tmp_path / name}", "trainer.max_steps=2",
                              f"trainer.seed={seed}", "eval.at_start=true", "eval.every=2",
                              "eval.num_samples=3", "eval.num_examples=5"]))
        rows = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r for r in rows if "eval/accuracy" in r}

    evaluations = run("a", 0)
    run("b", 1)
    problems = [json.loads(x) for x in (tmp_path / "a" / "eval_problems.jsonl").read_text().splitlines()]
    assert sorted({p["step"] for p in problems}) == sorted(evaluations) == [0, 2]
    for step, metrics in evaluations.items():
        mine = [p for p in problems if p["step"] == step]
        assert len(mine) == metrics["eval/num_examples"] == 5
        assert sum(p["correct"] for p in mine) / 5 == pytest.approx(metrics["eval/accuracy"])
        assert sum(p["length"] for p in mine) / 5 == pytest.approx(metrics["eval/mean_length"])
        right = sum(sum(p["samples_correct"]) for p in mine)
        assert right / 15 == pytest.approx(metrics["eval/mean@3"])
        assert all(p["question"].startswith("What is ") and p["completion"] is not None for p in mine)
    frame = load_problems(tmp_path)
    assert len(frame) == 20  # 2 runs x 2 evaluations x 5 problems
    ids = frame.groupby("run")["problem_id"].apply(lambda s: sorted(set(s)))
    assert ids.iloc[0] == ids.iloc[1]  # the same held-out problems in both runs, same ids
    assert set(frame["sample_accuracy"]) <= {0.0, 1 / 3, 2 / 3, 1.0}
