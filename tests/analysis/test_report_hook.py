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


def test_job_folders_without_records_are_named(tmp_path, capsys):
    for job, records in (("0", '{"step": 1}\n'), ("10", ""), ("2", None)):
        (tmp_path / job / ".hydra").mkdir(parents=True)
        (tmp_path / job / ".hydra" / "config.yaml").write_text("a: 1\n")
        if records is not None:
            (tmp_path / job / "metrics.jsonl").write_text(records)
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    ReportCallback().on_multirun_end(config)
    first = capsys.readouterr().err.splitlines()[0]
    assert first == (f"grpo-lab: warning: 2 job folder(s) of {tmp_path} hold no records and are not in the "
                     "report: 2, 10")
