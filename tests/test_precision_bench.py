"""bench/precision.py's matmul ceiling: the model's linear products read from its config,
timed in fp32 and bf16, and printed as a ratio."""

import importlib.util
import re

from tests.conftest import REPO


def load_bench():
    spec = importlib.util.spec_from_file_location("precision_bench", REPO / "bench" / "precision.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_the_ceiling_times_every_linear_product_of_the_embedded_model(capsys):
    bench = load_bench()
    shapes = bench.linear_shapes("embedded:SmolLM2-135M-Instruct")
    # 30 layers x (q, k, v, o, gate, up, down) + the LM head; 3 KV heads of 64 dims.
    assert len(shapes) == 30 * 7 + 1
    assert shapes[:7] == [(576, 576), (576, 192), (576, 192), (576, 576), (576, 1536), (576, 1536), (1536, 576)]
    assert shapes[-1] == (576, 49152)
    bench.main(["--ceiling-only", "--ceiling-tokens", "4", "--threads", "1"])
    line = capsys.readouterr().out.splitlines()[-1]
    assert re.search(r"211 linear products x 3 .* 4 rows, 1 threads\): fp32 [\d.]+ s, bf16 [\d.]+ s, ratio [\d.]+$", line)
    assert float(line.rsplit(" ", 1)[1]) > 0
