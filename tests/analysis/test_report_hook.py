"""The multirun report hook never fails a sweep whose runs are already recorded."""

from omegaconf import OmegaConf

from grpo_lab.analysis.hydra_report import ReportCallback
from tests.conftest import CONF_DIR


def test_a_sweep_without_runs_gets_a_one_line_note_not_an_error(tmp_path, capsys):
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    ReportCallback().on_multirun_end(config)
    err = capsys.readouterr().err
    assert err.startswith(f"grpo-lab: no comparison report for {tmp_path}: no runs under")
    assert not (tmp_path / "report.md").exists()


def test_the_hook_is_registered_for_every_multirun():
    train = OmegaConf.load(CONF_DIR / "train.yaml")
    assert train.hydra.callbacks.report._target_ == "grpo_lab.analysis.hydra_report.ReportCallback"
