"""User code by import path for every axis that takes it, and the registries' errors."""

import importlib
import json
import re
import sys
from pathlib import Path

import pytest
import torch

from grpo_lab.algos.advantages import ESTIMATOR_INPUTS, group_advantages
from grpo_lab.config.validate import validate_config
from grpo_lab.errors import ConfigError
from grpo_lab.registry import Registry, by_name
from grpo_lab.trainer import Trainer
from tests import own_plugins
from tests.conftest import compose_config


def test_own_advantage_estimator_and_policy_loss_train_two_steps(tiny_config, tmp_path):
    own_plugins.CALLS.update(advantage=0, policy_loss=0)
    trainer = Trainer(tiny_config(
        "advantage.normalization=tests.own_plugins:sign_advantages",
        "algorithm.policy_loss=tests.own_plugins:unclipped_pg_loss",
        "reward=empty", "+reward.functions.length=tests.helpers:completion_length_reward",
        "+reward.weights.length=1",
    ))
    trainer.train()
    # Once per step for the estimator; once per micro-batch (one per step here) for the loss.
    assert own_plugins.CALLS["advantage"] == 2 and own_plugins.CALLS["policy_loss"] == 2
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    # The loss's own metric is logged; the clipped surrogate's are not.
    assert all("own/ratio_mean" in r and "clip_ratio/low_mean" not in r for r in records)
    # On-policy (one iteration, one mini-batch) the ratio is exactly 1.
    assert all(r["own/ratio_mean"] == 1.0 for r in records)
    samples = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert samples and {s["advantage"] for s in samples} <= {-1.0, 0.0, 1.0}


def test_own_task_by_import_path(tiny_config):
    from grpo_lab.tasks import build_task

    cfg = tiny_config("task.name=tests.own_plugins:two_questions", "task.num_examples=null").task
    dataset = build_task(cfg)
    assert dataset["prompt"][1][-1] == {"role": "user", "content": "2 + 2 = ?"}


@pytest.mark.parametrize("key", ["advantage.normalization", "algorithm.policy_loss"])
def test_an_import_path_that_does_not_import_is_one_line_naming_the_key(key):
    with pytest.raises(ConfigError, match=rf"^{key}='tests.nowhere:fn': cannot import it \(No module named"):
        validate_config(compose_config(["paths.output_dir=/tmp/x", f"{key}=tests.nowhere:fn"]))


def test_an_import_path_to_something_not_callable_is_refused():
    with pytest.raises(ConfigError, match=r"^algorithm.policy_loss='tests.own_plugins:CALLS' is not callable$"):
        validate_config(compose_config(["paths.output_dir=/tmp/x", "algorithm.policy_loss=tests.own_plugins:CALLS"]))


@pytest.mark.parametrize("override, message", [
    ("algorithm.name=trpo", "algorithm.name='trpo' is not allowed; allowed: grpo, ppo"),
    ("algorithm.policy_loss=trpo", "algorithm.policy_loss='trpo' is not allowed; allowed: cispo, clip, dual_clip, gspo, sapo, or package.module:function"),
    ("algorithm.loss_aggregation=sum", "algorithm.loss_aggregation='sum' is not allowed; allowed: dr_grpo, seq_mean, seq_mean_token_sum, token_mean"),
    ("kl.estimator=k4", "kl.estimator='k4' is not allowed; allowed: abs, k1, k2, k3, k3_k2grad"),
    ("rollout.backend=sglang", "rollout.backend='sglang' is not allowed; allowed: hf, vllm"),
    ("trainer.optimizer=lion", "trainer.optimizer='lion' is not allowed; allowed: adam, adamw, sgd"),
    ("kl.estimator=grpo_lab.algos.kl:_k3", "kl.estimator='grpo_lab.algos.kl:_k3' is not allowed; allowed: abs, k1, k2, k3, k3_k2grad"),
])
def test_unknown_names_list_the_registered_ones(override, message):
    with pytest.raises(ConfigError) as err:
        validate_config(compose_config(["paths.output_dir=/tmp/x", override]))
    assert str(err.value) == message


def test_registry_lists_lazy_entries_without_importing_them():
    registry = Registry("thing", "thing.name")
    registry.add_lazy("later", "tests.nowhere:fn")
    registry.check("later")  # listed and checked: nothing imported yet
    assert list(registry) == ["later"]
    with pytest.raises(ConfigError, match="cannot import it"):
        registry.get_entry("later")


def test_unknown_task_lists_the_registered_ones(tiny_config):
    from grpo_lab.tasks import build_task

    with pytest.raises(ConfigError, match=r"^task.name='gsm9k' is not allowed; allowed: arithmetic, gsm8k, tldr, or package"):
        build_task(tiny_config("task.name=gsm9k").task)


def first_definition():
    return 1


def second_definition():
    return 2


def test_a_name_registered_twice_is_refused_naming_both_places():
    registry = Registry("advantage estimator", "advantage.normalization")
    registry.register("mine")(first_definition)
    with pytest.raises(ValueError) as err:
        registry.register("mine")(second_definition)
    assert str(err.value) == (
        "advantage estimator 'mine' is registered twice: first by tests.test_plugins:first_definition, "
        "then by tests.test_plugins:second_definition; give the second another name"
    )
    assert registry["mine"] is first_definition  # the first stays
    with pytest.raises(ValueError, match="first by tests.test_plugins:first_definition, then by pkg.mod:Thing"):
        registry.add_lazy("mine", "pkg.mod:Thing")


def test_the_same_definition_registered_again_is_not_a_clash(tmp_path, monkeypatch):
    registry = Registry("thing", "thing.name")
    registry.register("one")(first_definition)
    registry.register("one")(first_definition)  # the same function object
    registry.add_lazy("later", "tests.test_plugins:second_definition")
    assert registry["later"] is second_definition  # resolved ...
    registry.add_lazy("later", "tests.test_plugins:second_definition")  # ... and added again
    # A module that registers at import, imported and then reloaded: a new function
    # object with the same module:qualified_name replaces the old one.
    holder = type(sys)("scratch_registry_holder")
    holder.REGISTRY = registry
    monkeypatch.setitem(sys.modules, "scratch_registry_holder", holder)
    (tmp_path / "scratch_plugin.py").write_text(
        "from scratch_registry_holder import REGISTRY\n\n"
        "@REGISTRY.register('scratch')\ndef scratch():\n    return 3\n"
    )
    (tmp_path / "scratch_other.py").write_text(
        "from scratch_registry_holder import REGISTRY\n\n"
        "@REGISTRY.register('scratch')\ndef scratch():\n    return 4\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        module = importlib.import_module("scratch_plugin")
        before = registry["scratch"]
        importlib.reload(module)
        assert registry["scratch"] is module.scratch and registry["scratch"] is not before
        # Another module under the same name is a clash.
        with pytest.raises(ValueError, match="first by scratch_plugin:scratch, then by scratch_other:scratch"):
            importlib.import_module("scratch_other")
    finally:
        for name in ("scratch_plugin", "scratch_other"):
            sys.modules.pop(name, None)


def _readme_section(title: str) -> str:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = text.index(f"### {title}\n")
    return text[start:text.index("\n## ", start)]


def test_the_readme_own_estimator_and_loss_train_as_written(tiny_config, tmp_path, monkeypatch):
    # The README's own-code example, as printed: the module it shows and the overrides of
    # its commands. Its estimator used to be documented with four parameters while the
    # trainer passed five: a TypeError at the first step.
    section = _readme_section("Your own code by import path")
    code = re.search(r"```python\n(# my_pkg/algos.py\n.*?)```", section, re.S).group(1)
    overrides = re.findall(r"grpo-lab-train ((?:advantage.normalization|algorithm.policy_loss)=my_pkg\.algos:\w+)",
                           section)
    assert len(overrides) == 2
    (tmp_path / "my_pkg").mkdir()
    (tmp_path / "my_pkg" / "__init__.py").write_text("")
    (tmp_path / "my_pkg" / "algos.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        validate_config(tiny_config(*overrides))
        records = _train_two_steps(tiny_config, tmp_path, *overrides)
        assert all(r["my/ratio_mean"] == 1.0 for r in records)  # the example's own metric, on-policy
        # The estimator does what its docstring says: r minus the group's lower median.
        estimator = overrides[0].split("=")[1]
        adv = group_advantages(torch.tensor([1.0, 0.0, 2.0, 2.0, 0.7, 0.7, 0.7, 0.7]), 4, estimator)
        assert adv.tolist() == [0.0, -1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    finally:
        for name in ("my_pkg", "my_pkg.algos"):
            sys.modules.pop(name, None)


def _train_two_steps(tiny_config, tmp_path, *overrides):
    Trainer(tiny_config(
        *overrides, "reward=empty", "+reward.functions.length=tests.helpers:completion_length_reward",
        "+reward.weights.length=1",
    )).train()
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    return records


def test_inputs_go_by_name_and_only_those_declared():
    seen = {}

    def takes_two(group_size, rewards):  # any order, a subset
        seen.update(group_size=group_size, rewards=rewards)
        return rewards

    def takes_all(**inputs):
        seen.update(inputs)
        return inputs["rewards"]

    inputs = dict(rewards="R", group_size=4, eps=0.1, lengths="L", cfg="C")
    assert by_name(takes_two, ESTIMATOR_INPUTS, "k")(**inputs) == "R"
    assert seen == {"group_size": 4, "rewards": "R"}
    by_name(takes_all, ESTIMATOR_INPUTS, "k")(**inputs)
    assert seen == inputs
    # A parameter of its own with a default is left to its default.
    assert by_name(lambda rewards, scale=2: rewards * scale, ESTIMATOR_INPUTS, "k")(**inputs) == "RR"


@pytest.mark.parametrize("key, path, message", [
    ("advantage.normalization", "tests.own_plugins:renamed_advantages",
     "parameters r, g are not inputs it can receive; allowed parameter names: rewards, group_size, eps, lengths, "
     "cfg (each passed by name, only those it declares)"),
    ("algorithm.policy_loss", "tests.own_plugins:sign_advantages",
     "parameters rewards, group_size, eps, lengths are not inputs it can receive; allowed parameter names: "
     "logp, old_logp, advantages, mask, cfg (each passed by name, only those it declares)"),
])
def test_a_parameter_that_is_not_an_input_is_one_line_saying_which_names_to_use(key, path, message):
    with pytest.raises(ConfigError) as err:
        validate_config(compose_config(["paths.output_dir=/tmp/x", f"{key}={path}"]))
    assert str(err.value) == f"{key}={path!r}: {message}"
