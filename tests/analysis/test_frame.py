"""Runs -> tidy frame: variants, seeds and the values a run really ran with."""

import pytest

from grpo_lab.analysis.frame import RunRecord, parse_overrides, runs_frame, varying_keys, with_variants


def record(run, overrides, seed=0, rewards=(0.0, 1.0), choices=None, config=None):
    history = [{"step": i + 1, "reward": r, "note": "text is not a metric"} for i, r in enumerate(rewards)]
    return RunRecord(run=run, overrides=overrides, seed=seed, history=history,
                     choices=choices or {}, config=config or {})


def test_overrides_parse_to_keys_and_values():
    parsed = parse_overrides(["+kl.coef=0.1", "advantage=group_mean", "~foo", "hydra.run.dir=x", "paths.output_dir=y",
                              "reward.functions.mine=pkg.mod:fn", "trainer.progress_bar=False", "eval.batch_size=8",
                              "logger.wandb.project=p"])
    assert parsed == {"kl.coef": "0.1", "advantage": "group_mean", "reward.functions.mine": "pkg.mod:fn"}


def test_variants_are_the_keys_that_differ_seed_excluded():
    records = [record(f"{i}", ["model=tiny", f"advantage={a}", f"trainer.seed={s}"], seed=s)
               for i, (a, s) in enumerate([("group_std", 0), ("group_std", 1), ("group_mean", 0), ("group_mean", 1)])]
    assert varying_keys(records) == ["advantage"]
    frame = runs_frame(records)
    assert list(frame.columns) == ["run", "variant", "seed", "model", "advantage", "trainer.seed", "step", "metric", "value"]
    assert sorted(frame["variant"].unique()) == ["advantage=group_mean", "advantage=group_std"]
    assert frame["metric"].unique().tolist() == ["reward"]  # non-numbers are left out
    assert len(frame) == 4 * 2


def test_a_key_another_sweep_did_not_override_takes_the_value_it_ran_with():
    grpo = record("adv/0", ["advantage=group_mean"], choices={"algorithm": "grpo", "advantage": "group_mean"},
                  config={"kl": {"coef": 0.0}})
    ppo = record("ppo/0", ["algorithm=ppo", "kl.coef=0.1"], choices={"algorithm": "ppo", "advantage": "group_std"})
    frame = runs_frame([grpo, ppo])
    labels = frame.groupby("run")["variant"].first().to_dict()
    assert labels == {"adv/0": "advantage=group_mean,algorithm=grpo,kl.coef=0.0",
                      "ppo/0": "advantage=group_std,algorithm=ppo,kl.coef=0.1"}


def test_a_single_run_or_identical_runs_are_one_default_variant():
    frame = runs_frame([record("a", ["model=tiny", "trainer.seed=0"]), record("b", ["model=tiny", "trainer.seed=1"], seed=1)])
    assert frame["variant"].unique().tolist() == ["default"]


def test_relabel_by_chosen_keys_and_name_an_unknown_key():
    records = [record(f"{i}", [f"algorithm={a}", f"advantage={b}"]) for i, (a, b) in
               enumerate([("grpo", "group_std"), ("grpo", "group_mean"), ("ppo", "group_std")])]
    frame = with_variants(runs_frame(records), by="algorithm")
    assert sorted(frame["variant"].unique()) == ["algorithm=grpo", "algorithm=ppo"]
    with pytest.raises(ValueError, match="no override named kl.coef in these runs"):
        with_variants(runs_frame(records), by=["kl.coef"])
