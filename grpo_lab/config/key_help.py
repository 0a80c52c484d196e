"""Each config key's help text, read from the comments in ``schema.py``, and the
``--help`` rendering of the composed config with that text above each key.

The comments in ``schema.py`` are the reference for every option, so they are read from
the source (``ast`` + ``tokenize``) rather than copied into a second place that could drift.
Nothing is read until the first call.
"""

from __future__ import annotations

import ast
import io
import textwrap
import tokenize
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml
from omegaconf import DictConfig, OmegaConf

SCHEMA_PATH = Path(__file__).resolve().with_name("schema.py")
# `grpo-lab-train --help +help=trainer.optimizer`: the override that narrows the help to
# one key or section. Not a config key, so it is left out of what is shown.
HELP_SELECTOR_KEY = "help"
HELP_WIDTH = 100
# PyYAML's default line width, at which OmegaConf.to_yaml folds long strings.
YAML_WIDTH = 80


@dataclass(frozen=True)
class SchemaHelp:
    """What ``schema.py`` says about its dataclasses."""

    # Dataclass name -> field name -> the field's comment.
    comments: Dict[str, Dict[str, str]]
    # Dataclass name -> field name -> the dataclass the field holds (nested sections).
    nested: Dict[str, Dict[str, str]]
    # The dataclass of the whole config.
    root: str


# ---------------------------------------------------------------------------------------
# Reading schema.py


def comment_lines(source: str) -> tuple[Dict[int, str], Dict[int, str]]:
    """Comment text by line number: (comments alone on their line, trailing comments)."""
    alone: Dict[int, str] = {}
    trailing: Dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        line, column = token.start
        text = token.string[1:].strip()
        if token.line[:column].strip():
            trailing[line] = text
        else:
            alone[line] = text
    return alone, trailing


def _is_dataclass(node: ast.ClassDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
        if name == "dataclass":
            return True
    return False


def dataclass_fields(tree: ast.Module) -> Dict[str, List[ast.AnnAssign]]:
    """Dataclass name -> its annotated fields, in source order."""
    return {
        node.name: [item for item in node.body if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)]
        for node in tree.body
        if isinstance(node, ast.ClassDef) and _is_dataclass(node)
    }


def comment_of(field_node: ast.AnnAssign, alone: Dict[int, str], trailing: Dict[int, str]) -> Optional[str]:
    """The contiguous comment lines directly above the field, then its same-line comment."""
    above: List[str] = []
    line = field_node.lineno - 1
    while line in alone:  # a blank line or code ends the block
        above.insert(0, alone[line])
        line -= 1
    parts = [text for text in above if text]
    if field_node.lineno in trailing:
        parts.append(trailing[field_node.lineno])
    return " ".join(parts) or None


def _annotation_name(annotation: ast.expr) -> Optional[str]:
    # `from __future__ import annotations` leaves annotations as plain names in the AST.
    if isinstance(annotation, ast.Name):
        return annotation.id
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return annotation.value
    return None


def parse_schema_help(source: str, root: str = "TrainConfig") -> SchemaHelp:
    """What ``source`` says about its dataclasses; ``root``: the class of the whole config
    (grpo_lab/config/registration.py stores ``TrainConfig`` as ``train_schema``)."""
    tree = ast.parse(source)
    alone, trailing = comment_lines(source)
    fields = dataclass_fields(tree)
    comments: Dict[str, Dict[str, str]] = {}
    nested: Dict[str, Dict[str, str]] = {}
    for class_name, class_fields in fields.items():
        comments[class_name] = {}
        nested[class_name] = {}
        for field_node in class_fields:
            name = field_node.target.id  # type: ignore[union-attr]
            text = comment_of(field_node, alone, trailing)
            if text is not None:
                comments[class_name][name] = text
            held = _annotation_name(field_node.annotation)
            if held in fields:
                nested[class_name][name] = held
    if root not in fields:
        raise ValueError(f"no dataclass {root!r} in the schema source")
    return SchemaHelp(comments=comments, nested=nested, root=root)


@lru_cache(maxsize=1)
def schema_help() -> SchemaHelp:
    return parse_schema_help(SCHEMA_PATH.read_text(encoding="utf-8"))


def key_help(key: str, schema: Optional[SchemaHelp] = None) -> Optional[str]:
    """The help of a dotted config key (``trainer.optimizer``, ``model.lora.r``), or None
    when its field has no comment or the key is not a schema field (``reward.weights.x``)."""
    schema = schema or schema_help()
    class_name = schema.root
    *sections, name = key.split(".")
    for section in sections:
        next_class = schema.nested.get(class_name, {}).get(section)
        if next_class is None:  # a dict or list key: its children have no schema field
            return None
        class_name = next_class
    return schema.comments.get(class_name, {}).get(name)


# ---------------------------------------------------------------------------------------
# Rendering the composed config


def _dump(data: Any, width: int = YAML_WIDTH) -> str:
    # OmegaConf.to_yaml's own dumper and options, so values read exactly as in Hydra's $CONFIG.
    from omegaconf._utils import get_omega_conf_dumper

    return yaml.dump(data, default_flow_style=False, allow_unicode=True, sort_keys=False,
                     Dumper=get_omega_conf_dumper(), width=width)


def _indented(text: str, indent: str) -> List[str]:
    # Blank lines inside a folded string stay empty, as in a dump of the whole tree.
    return [indent + line if line else line for line in text.splitlines()]


def _help_comment(text: str, indent: str, width: int) -> List[str]:
    prefix = indent + "# "
    return textwrap.wrap(text, width=width, initial_indent=prefix, subsequent_indent=prefix,
                         break_long_words=False, break_on_hyphens=False)


def _mapping_lines(mapping: Dict[Any, Any], path: str, depth: int, schema: SchemaHelp, width: int) -> List[str]:
    indent = "  " * depth
    lines: List[str] = []
    for key, value in mapping.items():
        dotted = f"{path}.{key}" if path else str(key)
        text = key_help(dotted, schema)
        if text:
            lines.extend(_help_comment(text, indent, width))
        if isinstance(value, dict) and value:
            key_line = _dump({key: None}).splitlines()[0]
            lines.append(indent + key_line[: -len(" null")])  # the key as YAML writes it
            lines.extend(_mapping_lines(value, dotted, depth + 1, schema, width))
        else:
            # Dumped alone, then indented: PyYAML folds long strings by the column from the
            # line start, so the width shrinks by the indent to fold where $CONFIG does.
            lines.extend(_indented(_dump({key: value}, YAML_WIDTH - len(indent)), indent))
    return lines


def job_config(cfg: DictConfig) -> Dict[Any, Any]:
    """The job's config as Hydra's $CONFIG shows it: unresolved, without ``hydra`` (and
    without the help selector, which is a request, not a setting)."""
    container = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    assert isinstance(container, dict)
    return {key: value for key, value in container.items() if key not in ("hydra", HELP_SELECTOR_KEY)}


def select_key(config: Dict[Any, Any], key: str) -> Optional[Dict[Any, Any]]:
    """Only the branch of ``config`` that leads to the dotted ``key``; None if absent."""
    *sections, name = key.split(".")
    node: Any = config
    for section in sections:
        node = node.get(section) if isinstance(node, dict) else None
    if not isinstance(node, dict) or name not in node:
        return None
    branch: Dict[Any, Any] = {name: node[name]}
    for section in reversed(sections):
        branch = {section: branch}
    return branch


def render_config_with_help(config: Dict[Any, Any], schema: Optional[SchemaHelp] = None,
                            width: int = HELP_WIDTH) -> str:
    """``config`` (a plain container, see job_config) as YAML, each key's help above it."""
    return "\n".join(_mapping_lines(config, "", 0, schema or schema_help(), width)) + "\n"


def config_help(cfg: DictConfig) -> str:
    """The composed config with each key's help; only the branch of ``+help=<key>`` when
    the command line asks for one."""
    config = job_config(cfg)
    selected = cfg.get(HELP_SELECTOR_KEY) if HELP_SELECTOR_KEY in cfg else None
    if selected is None:
        return render_config_with_help(config)
    branch = select_key(config, str(selected))
    if branch is None:
        return f"No key {selected!r} in the composed config (+help takes a key or section: +help=trainer.optimizer).\n"
    return render_config_with_help(branch)


def help_template_config(cfg: DictConfig) -> str:
    """config_help for a resolver in a Hydra help template. Hydra passes the template
    through string.Template, where a lone `$` (`${oc.env:...}` values) is an error: `$$`
    comes out as `$`."""
    return config_help(cfg).replace("$", "$$")
