"""Building a run config: from YAML files (keys given twice and syntax errors named by line), dicts and
dotted overrides, with one readable line per validation error."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from hone.config.sections import RunConfig
from hone.errors import ConfigError, did_you_mean


def _format_errors(err: ValidationError, origin: str) -> str:
    # Union fields (int | "auto") report one error per branch under tagged locations such as
    # "constrained-int" or "literal['auto']": strip the tags and join the branches with "or".
    grouped: dict[str, list[str]] = {}
    for e in err.errors():
        parts = [str(p) for p in e["loc"] if not isinstance(p, int) and not re.search(r"[\[\-]", str(p))]
        loc = ".".join(parts)
        if e["type"] == "extra_forbidden":
            section = _section_at(tuple(parts[:-1]))
            hint = did_you_mean(parts[-1], section.model_fields) if section else ""
            grouped.setdefault(f"unknown config field {loc!r}{origin}.{hint}", [])
            continue
        msg = e["msg"].removeprefix("Value error, ")
        got = "" if e["type"] == "value_error" else f", got {e.get('input')!r}"
        grouped.setdefault(f"config field {loc!r}{origin}", []).append(msg[0].lower() + msg[1:] + got)
    return "; ".join(head + (": " + " or ".join(dict.fromkeys(msgs)) if msgs else "") for head, msgs in grouped.items())


def _section_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = RunConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        ann = field.annotation if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config field {dotted!r} cannot be set: {p!r} is not a section")
    node[parts[-1]] = value


def build_config(
    base: RunConfig | dict[str, Any] | str | Path | None = None, overrides: dict[str, Any] | None = None
) -> RunConfig:
    """Validate a config from a YAML path, a dict or a RunConfig, with dotted-key overrides on top.

    Example:
        >>> build_config({"data": {"target": "y"}}, {"train.epochs": 3}).train.epochs
        3
    """
    origin = ""
    if isinstance(base, (str, Path)):
        tree = load_yaml(Path(base))
        origin = f" in {str(base)!r}"
    elif isinstance(base, RunConfig):
        tree = base.model_dump(mode="json", exclude_unset=True)
    else:
        tree = dict(base or {})
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(tree, key, value)
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, origin)) from err


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                first = seen[key]
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (first on line {first.line + 1}); "
                    "merge the two into one", key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """``line L, column C: problem`` for a YAML error (the offending character quoted where one is)."""
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        buf = mark.buffer or ""
        char = buf[mark.pointer] if buf and 0 <= mark.pointer < len(buf) else ""
        near = f" (at {char!r})" if char.strip() and char != "\x00" else ""
        what = " ".join(p for p in (err.context, err.problem) if p)
        return f"{where}: {what}{near}"
    return str(err).splitlines()[0]


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML config file into a dict, with a clear error when it is missing or broken (the line,
    the column and the character; a key given twice is refused)."""
    try:
        text = path.read_text(encoding="utf-8")
        tree = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except FileNotFoundError as err:
        raise ConfigError(f"config file {str(path)!r} not found") from err
    except IsADirectoryError as err:
        raise ConfigError(f"config file {str(path)!r} is a folder, not a YAML file") from err
    except PermissionError as err:
        raise ConfigError(f"config file {str(path)!r} cannot be read (permission denied)") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text (byte {err.start})") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {_yaml_problem(err)}") from err
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections, got {type(tree).__name__}")
    return tree


def dump_yaml(cfg: RunConfig) -> str:
    """The config as YAML text (the format of ``config.resolved.yaml``)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


