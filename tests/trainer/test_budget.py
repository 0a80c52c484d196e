"""Budget axes: running totals of what a run has spent, equal to the sums of its steps."""

import json

import pytest

from grpo_lab.trainer import Trainer, train
from grpo_lab.tracking.budget import Budget
from grpo_lab.trainer.checkpoint import list_checkpoints


def read_metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def check_totals(records, samples_per_step, epochs, updates_per_step):
    totals = {"samples": 0, "generated_tokens": 0, "trained_tokens": 0, "optimizer_steps": 0, "wall_s": 0.0}
    for r in records:
        # Per step: samples, and tokens = mean completion length x samples.
        tokens = round(r["completions/mean_length"] * samples_per_step)
        totals["samples"] += samples_per_step
        totals["generated_tokens"] += tokens
        totals["trained_tokens"] += tokens * epochs
        totals["optimizer_steps"] += updates_per_step
        totals["wall_s"] += r["time/step"]
        for name, value in totals.items():
            assert r[f"budget/{name}"] == pytest.approx(value), (r["step"], name)


def test_grpo_budget_is_the_running_sum_of_steps(tiny_config, tmp_path):
    train(tiny_config("trainer.max_steps=3"))
    records = read_metrics(tmp_path / "run")
    check_totals(records, samples_per_step=2 * 4, epochs=1, updates_per_step=1)
    for name in ("samples", "generated_tokens", "input_tokens", "optimizer_steps", "wall_s"):
        values = [r[f"budget/{name}"] for r in records]
        assert values == sorted(values) and values[0] > 0


def test_input_tokens_add_each_steps_prompts_to_its_completions(tiny_config, tmp_path):
    # TRL's num_tokens: prompt and completion tokens, padding not. Each prompt is sampled
    # once per completion of its group, so a step's prompt tokens are a multiple of 4.
    train(tiny_config("trainer.max_steps=3"))
    previous = {"budget/input_tokens": 0.0, "budget/generated_tokens": 0.0}
    for r in read_metrics(tmp_path / "run"):
        assert r["num_tokens"] == r["budget/input_tokens"]
        prompt_tokens = (r["budget/input_tokens"] - previous["budget/input_tokens"]) \
            - (r["budget/generated_tokens"] - previous["budget/generated_tokens"])
        assert prompt_tokens > 0 and prompt_tokens % 4 == 0, (r["step"], prompt_tokens)
        previous = r


def test_ppo_counts_every_epoch_and_minibatch(tiny_config, tmp_path):
    train(tiny_config("algorithm=ppo", "algorithm.num_iterations=2", "algorithm.num_minibatches=2",
                      "trainer.max_steps=2"))
    check_totals(read_metrics(tmp_path / "run"), samples_per_step=8, epochs=2, updates_per_step=4)


def test_critic_warmup_steps_spend_no_policy_budget(tiny_config, tmp_path):
    train(tiny_config("algorithm=ppo", "algorithm.critic.warmup_steps=1", "trainer.max_steps=2"))
    first, second = read_metrics(tmp_path / "run")
    assert first["budget/trained_tokens"] == 0 and first["budget/optimizer_steps"] == 0
    assert first["budget/generated_tokens"] > 0  # the critic's batch was still generated
    assert second["budget/optimizer_steps"] > 0


def test_resumed_run_continues_the_totals(tiny_config, tmp_path):
    run = tmp_path / "run"
    train(tiny_config("trainer.max_steps=2"))
    straight = read_metrics(run)
    _, checkpoint = list_checkpoints(run)[-1]
    trainer = Trainer(tiny_config("trainer.max_steps=3", f"trainer.resume={checkpoint}"))
    assert trainer.budget.samples == straight[-1]["budget/samples"]
    assert trainer.budget.generated_tokens == straight[-1]["budget/generated_tokens"]
    assert trainer.budget.input_tokens == straight[-1]["budget/input_tokens"]


def test_budget_state_round_trip():
    budget = Budget()
    budget.add(samples=8, generated_tokens=40, prompt_tokens=24, trained_tokens=80, optimizer_steps=2, wall_s=1.5)
    restored = Budget()
    restored.load_state_dict(budget.state_dict())
    assert restored == budget
    assert restored.metrics()["budget/generated_tokens"] == 40.0
    assert restored.metrics()["budget/input_tokens"] == 64.0
