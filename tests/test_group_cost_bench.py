"""bench/group_cost.py pairs GRPO's steps (a group per prompt) with PPO's (one completion
per prompt) in one process and prints their ratios; run here on the tiny model."""

import importlib.util
import re

from tests.conftest import REPO, TINY


def test_the_bench_pairs_the_arms_and_prints_each_figure(capsys):
    spec = importlib.util.spec_from_file_location("group_cost", REPO / "bench" / "group_cost.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--pairs", "3", "--extra", " ".join([*TINY, "trainer.batch_size=2"])])
    out = capsys.readouterr().out
    assert len(re.findall(r"^pair \d: ", out, re.M)) == 4  # the warm-up pair, then 3
    rows = dict(re.findall(r"^\| ([A-Za-z ,()]+) \| [\d.]+ \| [\d.]+ \| ([\d.]+)x \(", out, re.M))
    assert set(rows) == set(bench.FIGURES.values())
    assert rows["completions"] == "4.00"  # 2 prompts x 4 against 2 prompts x 1, every pair
    assert float(rows["generation (s)"]) > 0
