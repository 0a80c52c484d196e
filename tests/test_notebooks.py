"""Every notebook in notebooks/ runs top to bottom on a real tiny sweep."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.analysis.tiny_sweep import tiny_sweep
from tests.conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="session")
def sweep_root(tmp_path_factory):
    return tiny_sweep(tmp_path_factory)


def outputs(nb, kind):
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
            if kind in o.get("data", {})]


def test_there_is_a_notebook():
    assert NOTEBOOKS, "notebooks/ holds no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_on_a_tiny_sweep(path: Path, sweep_root, monkeypatch):
    monkeypatch.setenv("GRPO_LAB_SWEEP", str(sweep_root))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    html = "\n".join(o["data"]["text/html"] for o in outputs(nb, "text/html"))
    # Both comparisons ran: GRPO vs PPO, and the advantage normalizations within GRPO.
    for label in ("algorithm=ppo", "algorithm=grpo", "advantage=group_mean", "advantage=group_std"):
        assert label in html, label
    assert len(outputs(nb, "image/png")) >= 4  # all variants, GRPO vs PPO, advantages, health


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_decides_grpo_vs_ppo_on_held_out_problems(path: Path, tmp_path, monkeypatch):
    """On a sweep with held-out accuracy and per-problem records (hand-made, 3 arms x 3
    seeds x 120 problems), the GRPO vs PPO section gives the non-inferiority verdicts at
    the seed level and from the two-level bootstrap over the shared problems."""
    from tests.analysis.test_declared_report import write_sweep

    monkeypatch.setenv("GRPO_LAB_SWEEP", str(write_sweep(tmp_path / "runs")))
    monkeypatch.setenv("GRPO_LAB_X_AXIS", "step")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    html = "\n".join(o["data"]["text/html"] for o in outputs(nb, "text/html"))
    verdict_tables = [t for t in html.split("</table>") if "ci90_low" in t]
    assert len(verdict_tables) == 2  # paired over seeds, and over seeds then problems
    assert all("algorithm=grpo" in t and "algorithm=ppo" in t for t in verdict_tables)
    assert ">problems<" in verdict_tables[1] and ">problems<" not in verdict_tables[0]
