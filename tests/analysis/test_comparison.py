"""The declared comparison: read from the runs' config, checked, completed from the command line."""

import dataclasses

import pytest
from omegaconf import OmegaConf

from grpo_lab.analysis.comparison import (
    comparison_from, declared_settings, describe, match_reference, resolve_comparison,
)
from grpo_lab.config.schema import ComparisonConfig
from tests.conftest import compose_config


def test_the_defaults_reproduce_the_superiority_report():
    settings = comparison_from({})
    assert (settings.reference, settings.outcome, settings.hypothesis, settings.margin, settings.analysis,
            settings.alpha, settings.power, settings.higher_is_better) == (
        None, "last", "superiority", None, "seeds", 0.05, 0.8, True)
    assert describe(settings, None, points=True).startswith("Comparison, none declared, so the defaults")
    # Runs composed with the schema hold its defaults: said as such, not as a declaration.
    defaults = dataclasses.asdict(ComparisonConfig())
    held = resolve_comparison({"r/0": {"comparison": defaults}})
    assert describe(held, None, points=True).startswith(
        "Comparison, the runs' config holds the defaults (no comparison declared)")


def test_an_experiment_file_can_declare_it_and_typos_fail_at_composition():
    config = compose_config(["comparison.reference=ppo", "comparison.margin=0.05",
                             "comparison.hypothesis=non_inferiority", "comparison.analysis=problems"])
    block = OmegaConf.to_container(config.comparison)
    assert set(block) == {f.name for f in dataclasses.fields(ComparisonConfig)}
    settings = comparison_from(block)
    assert (settings.reference, settings.margin, settings.hypothesis, settings.analysis) == (
        "ppo", 0.05, "non_inferiority", "problems")
    with pytest.raises(Exception, match="marign"):
        compose_config(["comparison.marign=0.05"])


@pytest.mark.parametrize("values, message", [
    ({"outcome": "best"}, "comparison.outcome='best' must be one of last, last_k, mean_at_n"),
    ({"analysis": "runs"}, "comparison.analysis='runs' must be one of seeds, problems"),
    ({"hypothesis": "better"}, "comparison.hypothesis='better'"),
    ({"last_k": 0}, "comparison.last_k=0 must be a whole number >= 1"),
    ({"margin": -0.05}, "comparison.margin=-0.05 must be > 0"),
    ({"alpha": 0.5}, "comparison.alpha=0.5 must lie in"),
    ({"power": 1.0}, "comparison.power=1.0 must lie in"),
    ({"hypothesis": "equivalence"}, "comparison.hypothesis=equivalence needs comparison.margin"),
    ({"hypothesis": "non_inferiority", "margin": 0.05}, "non_inferiority needs comparison.reference"),
    ({"margni": 0.05}, "comparison.margni is not a comparison setting"),
])
def test_bad_settings_are_one_line_errors_naming_the_key(values, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        comparison_from(values)
    assert "\n" not in str(err.value)


def test_every_run_must_declare_the_same_comparison():
    same = {"a/0": {"comparison": {"margin": 0.05}}, "a/1": {"comparison": {"margin": 0.05}}}
    assert declared_settings(same) == {"margin": 0.05}
    assert declared_settings({"old/0": {"trainer": {}}}) == {}  # recorded before the schema had it
    assert declared_settings({"old/0": {}, **same}) == {"margin": 0.05}  # ... and not asked to agree
    with pytest.raises(ValueError, match=r"runs disagree on comparison.margin: 0.05 in a/0, 0.1 in b/0"):
        declared_settings({**same, "b/0": {"comparison": {"margin": 0.1}}})


def test_the_command_line_fills_in_for_old_folders_and_the_report_says_so():
    old = {"r/0": {}, "r/1": {}}
    settings = resolve_comparison(old, {"reference": "ppo", "margin": 0.05, "analysis": None})
    assert (settings.reference, settings.margin, settings.analysis) == ("ppo", 0.05, "seeds")
    assert settings.command_line == ("margin", "reference") and settings.declared == ()
    assert "given on the command line (margin, reference) since the runs' config declares none" in describe(
        settings, "algorithm=ppo", points=True)
    declared = {"r/0": {"comparison": {"margin": 0.05, "reference": "ppo"}}}
    changed = resolve_comparison(declared, {"margin": 0.02})
    assert changed.margin == 0.02
    text = describe(changed, "algorithm=ppo", points=True)
    assert "declared in the runs' config (`comparison:`), changed on the command line (margin)" in text
    assert "margin 2 points" in text and "reference `algorithm=ppo`" in text


def test_the_reference_names_one_variant():
    variants = ["advantage=group_mean,algorithm=grpo", "advantage=group_std,algorithm=grpo",
                "advantage=group_std,algorithm=ppo"]
    assert match_reference("ppo", variants) == "advantage=group_std,algorithm=ppo"
    assert match_reference("algorithm=ppo", variants) == "advantage=group_std,algorithm=ppo"
    assert match_reference("group_mean", variants) == "advantage=group_mean,algorithm=grpo"
    assert match_reference(variants[1], variants) == variants[1]
    with pytest.raises(ValueError, match=r"comparison.reference='grpo' names 2 variants"):
        match_reference("grpo", variants)
    with pytest.raises(ValueError, match=r"comparison.reference='dpo' names no variant"):
        match_reference("dpo", variants)
