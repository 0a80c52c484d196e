"""bench/gpu_check.sh, the one-run GPU check, kept working on machines without a GPU:
its CPU dry run goes through every phase (the CUDA tests on CPU, the TRL comparison on
a tiny model) and writes the table."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO


def _gpu_check(tmp_path, *args: str) -> subprocess.CompletedProcess:
    # No carried wheels here: the packages of this environment are used.
    env = {**os.environ, "PYTHON": sys.executable, "GPU_WHEELS": str(tmp_path / "no-wheels")}
    return subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)


def test_cpu_dry_run_runs_every_phase_and_writes_the_table(tmp_path):
    out = tmp_path / "out"
    done = _gpu_check(tmp_path, "--cpu-dry-run", "--out", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    report = json.loads((out / "gpu_check.json").read_text())
    tests = report["tests"]
    assert len(tests) >= 9 and all(outcome.startswith("passed") for outcome in tests.values()), tests
    assert any("sharded" in name for name in tests)  # FSDP2 through torchrun, gloo here

    bench = report["benchmark"]
    assert bench["workload"]["model"] == "synthetic:tiny-qwen2" and bench["workload"]["steps"] == 1
    for framework in ("ours", "trl"):
        assert bench[framework]["step_s"] > 0 and bench[framework]["tokens_per_s"] > 0
        assert bench[framework]["peak_mb"] > 0
    table = (out / "gpu_check.md").read_text()
    assert table in done.stdout  # printed and written
    for row in ("`test_lora_two_steps` | passed", "median step time (s)", "completion tokens/s", "peak RSS memory (MiB)"):
        assert row in table


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where there is no GPU")
def test_without_a_gpu_it_stops_with_one_line(tmp_path):
    done = _gpu_check(tmp_path, "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.strip() == ("gpu_check: needs a CUDA GPU (torch.cuda.is_available() is False); "
                                   "--cpu-dry-run runs the same on CPU")
