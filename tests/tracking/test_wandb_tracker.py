"""The W&B tracker on its own: modes, the offline hint, resuming, finishing."""

import pytest

from grpo_lab.errors import ConfigError
from grpo_lab.tracking import LocalTracker, Trackers, WandbTracker, build_trackers, wandb_tracker
from tests.conftest import compose_config
from tests.tracking.wandb_records import offline_runs


def config(tmp_path, *overrides):
    return compose_config(["model=tiny", f"paths.output_dir={tmp_path}", *overrides])


@pytest.fixture
def no_credentials(tmp_path, monkeypatch):
    for var in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no.netrc"))
    monkeypatch.setattr(wandb_tracker, "_hint_printed", False)


def kinds(trackers):
    return [type(t) for t in trackers.trackers]


def test_local_logger_and_disabled_mode_keep_only_local_files(tmp_path, monkeypatch):
    assert kinds(build_trackers(config(tmp_path, "logger=local"), tmp_path)) == [LocalTracker]
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert kinds(build_trackers(config(tmp_path), tmp_path)) == [LocalTracker]
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert kinds(build_trackers(config(tmp_path), tmp_path)) == [LocalTracker, WandbTracker]


def test_command_line_mode_wins_over_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert kinds(build_trackers(config(tmp_path, "logger.wandb.mode=disabled"), tmp_path)) == [LocalTracker]


def test_unknown_mode_is_one_line_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"logger.wandb.mode=sometimes must be one of online, offline, disabled"):
        build_trackers(config(tmp_path, "logger.wandb.mode=sometimes"), tmp_path)


def test_online_without_api_key_goes_offline(tmp_path, no_credentials):
    assert WandbTracker(config(tmp_path), tmp_path).mode == "offline"


def test_online_with_api_key_stays_online(tmp_path, no_credentials, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert WandbTracker(config(tmp_path), tmp_path).mode == "online"  # not started: no network


def test_offline_hint_is_printed_once_per_process(tmp_path, no_credentials, capfd):
    for name in ("a", "b"):
        tracker = WandbTracker(config(tmp_path / name), tmp_path / name)
        tracker.log_config({"x": 1})
        tracker.finish({"steps": 0})
    err = capfd.readouterr().err
    assert err.count("wandb sync") == 1
    assert f"wandb sync {tmp_path / 'a'}/wandb/offline-run-*" in err


def test_a_run_restarted_in_its_folder_continues_the_same_wandb_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    for step in (1, 2):
        tracker = WandbTracker(config(tmp_path), tmp_path)
        tracker.log_config({"x": 1})
        tracker.log_metrics({"reward": float(step)}, step)
        tracker.finish({"steps": step})
    first, second = offline_runs(tmp_path)
    run_id = (tmp_path / "wandb_run_id").read_text().strip()
    assert first.run.run_id == second.run.run_id == run_id
    assert [h["reward"] for h in first.history + second.history] == [1.0, 2.0]


class Boom:
    def finish(self, summary, failed=False):
        raise OSError("disk full")


def test_every_tracker_finishes_even_if_one_fails(tmp_path):
    local = LocalTracker(tmp_path)
    with pytest.raises(OSError, match="disk full"):
        Trackers([Boom(), local]).finish({"steps": 0}, failed=True)
    assert (tmp_path / "summary.json").exists()
