"""bench/trl_compare.py hands both frameworks the same numerics: fp32, bf16 weights, or
bf16 mixed precision over fp32 weights (grpo-lab's precision=bf16, TRL's bf16=True)."""

import importlib.util

import pytest

from tests.conftest import REPO, compose_config


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("trl_compare", REPO / "bench" / "trl_compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("argv, rollout_dtype, mixed, weights, trl_bf16", [
    ([], None, "no", "float32", False),
    (["--dtype", "bfloat16"], None, "no", "bfloat16", True),
    (["--mixed-precision", "bf16"], "bfloat16", "bf16", "float32", True),
])
def test_both_sides_get_the_same_numerics(bench, argv, rollout_dtype, mixed, weights, trl_bf16):
    args = bench.parse_args(argv)
    cfg = compose_config(bench.ours_precision_overrides(args))
    assert (cfg.rollout.dtype, cfg.trainer.mixed_precision, cfg.trainer.dtype) == (rollout_dtype, mixed, weights)
    assert bench.trl_precision_options(args) == {"bf16": trl_bf16}
