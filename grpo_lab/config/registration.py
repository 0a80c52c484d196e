"""Hydra's side of the config: the schema stored as ``train_schema`` (which
``conf/train.yaml`` lists first), and the resolvers the configs and ``--help`` use.
Called by each program before Hydra composes (``register_configs``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from grpo_lab.config.schema import TrainConfig

# Data files shipped inside the package (grpo_lab/tasks/data): ${grpo_lab_data:<relative path>}
# in a config is the file's absolute path, wherever grpo-lab is installed or run from.
PACKAGE_DATA = Path(__file__).resolve().parent.parent / "tasks" / "data"
# The config groups (conf/ at the top of the repository); absolute, so the programs find it
# whatever the working directory.
CONFIG_DIR = Path(__file__).resolve().parent.parent.parent / "conf"


def _plugin_help() -> str:
    from grpo_lab.config.plugins import plugin_help

    return plugin_help()


def _groups_help() -> str:
    from grpo_lab.config.plugins import config_groups_help

    return config_groups_help(CONFIG_DIR)


def _config_help(*, _root_: Any) -> str:
    from grpo_lab.config.key_help import help_template_config

    return help_template_config(_root_)


def _run_dir(default: str, *, _root_: Any) -> str:
    """``hydra.run.dir``: ``paths.output_dir`` when it is set, else ``default``. The
    default ``paths.output_dir`` (or any value that refers to Hydra's folders) follows
    Hydra's run folder instead, which would otherwise be a cycle."""
    paths = _root_.get("paths") if "paths" in _root_ else None
    raw = OmegaConf.to_container(paths, resolve=False).get("output_dir") if paths is not None else None
    if not isinstance(raw, str) or not raw or "hydra:" in raw:
        return default
    return str(OmegaConf.select(_root_, "paths.output_dir"))


def register_configs() -> None:
    if not OmegaConf.has_resolver("grpo_lab_run_dir"):  # hydra.run.dir follows paths.output_dir
        OmegaConf.register_new_resolver("grpo_lab_run_dir", _run_dir)
    if not OmegaConf.has_resolver("grpo_lab_data"):
        OmegaConf.register_new_resolver("grpo_lab_data", lambda rel: str(PACKAGE_DATA / rel))
    if not OmegaConf.has_resolver("grpo_lab_plugins"):  # --help's list of registered names
        OmegaConf.register_new_resolver("grpo_lab_plugins", _plugin_help)
    if not OmegaConf.has_resolver("grpo_lab_groups"):  # --help's config groups and their options
        OmegaConf.register_new_resolver("grpo_lab_groups", _groups_help)
    if not OmegaConf.has_resolver("grpo_lab_config_help"):  # --help's config, each key's comment above it
        OmegaConf.register_new_resolver("grpo_lab_config_help", _config_help)
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
