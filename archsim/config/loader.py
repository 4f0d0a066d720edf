"""The one place YAML is read. Turns files into frozen models or a ``ConfigError`` naming the file,
the line, the dotted field path and what is allowed."""

from __future__ import annotations

import hashlib
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from archsim.config.machine import MachineConfig
from archsim.config.workload import WorkloadConfig
from archsim.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)

# Past this many YAML nodes (after alias expansion) a file is refused: a machine or workload file
# has a few hundred, and alias bombs expand to billions.
MAX_NODES = 200_000
MAX_FILE_BYTES = 4 * 2**20

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class LoadedFile:
    """A validated file with what provenance needs: its path, raw content and hash."""

    path: str
    raw: dict[str, Any]
    lines: dict[Path_, int]
    sha256: str


@dataclass(frozen=True)
class MachineFile(LoadedFile):
    config: MachineConfig


@dataclass(frozen=True)
class WorkloadFile(LoadedFile):
    config: WorkloadConfig


def _walk_lines(node: yaml.Node, path: Path_, lines: dict[Path_, int], budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError(f"more than {MAX_NODES} YAML nodes after expanding aliases")
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, str(key_node.value))
            lines[child] = key_node.start_mark.line + 1
            _walk_lines(value_node, child, lines, budget)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines[child] = item.start_mark.line + 1
            _walk_lines(item, child, lines, budget)


def parse_yaml(text: str, source: str) -> tuple[dict[str, Any], dict[Path_, int]]:
    """Parse YAML text into a mapping and the line of every key, or raise ``ConfigError``."""
    if len(text) > MAX_FILE_BYTES:
        raise ConfigError(source, f"file is larger than {MAX_FILE_BYTES // 2**20} MiB")
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                raise ConfigError(source, "file is empty; expected a mapping with 'schema_version'")
            lines: dict[Path_, int] = {}
            _walk_lines(node, (), lines, [MAX_NODES])
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(source, f"not valid YAML: {exc.problem}", line=line) from None
    except yaml.YAMLError as exc:
        # PyYAML spreads its messages over several lines; the CLI promises one
        raise ConfigError(source, f"not valid YAML: {' '.join(str(exc).split())}") from None
    except (ValueError, RecursionError) as exc:
        raise ConfigError(source, f"refused: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(source, f"top level must be a mapping, got {type(data).__name__}")
    return data, lines


_TAG_KEYS = ("kind", "generator", "distribution")


def _resolve_path(raw: Any, loc: tuple[str | int, ...]) -> Path_:
    """Map a pydantic error location onto the raw document.

    Pydantic puts the tag of a discriminated union (``'npu'``) and validator names
    (``'function-after[...]'``) into locations; they are not keys of the file, so they are dropped.
    A key that is absent from the file (a missing field) is kept.
    """
    path: list[str | int] = []
    node = raw
    for part in loc:
        if isinstance(node, dict | list) and _has(node, part):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str):
            is_tag = any(node.get(key) == part for key in _TAG_KEYS) or "[" in part
            if not is_tag:
                path.append(part)
                node = None
        else:
            break
    return tuple(path)


def _model_at(model: type[BaseModel], raw: Any, path: Path_) -> type[BaseModel] | None:
    """The pydantic model class describing the mapping at ``path`` (for listing allowed keys)."""
    current: Any = model
    node = raw
    for part in path:
        current = _unwrap(current, node)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = _field_by_alias(current, str(part))
            if field is None:
                return None
            current = field.annotation
        else:
            args = typing.get_args(current)
            current = args[-1] if args else None
        node = node[part] if isinstance(node, dict | list) and _has(node, part) else None
    current = _unwrap(current, node)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _has(node: Any, part: str | int) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(part, int) and 0 <= part < len(node)


def _field_by_alias(model: type[BaseModel], key: str):
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field
    return None


def _unwrap(annotation: Any, node: Any) -> Any:
    """Strip Annotated/Optional and pick the union member a tagged mapping selects."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
            chosen = _pick_tagged(models, node) if models else None
            annotation = chosen or (members[0] if len(members) == 1 else annotation)
            if chosen is None and len(members) != 1:
                return annotation
        else:
            return annotation


def _pick_tagged(models: list[type[BaseModel]], node: Any) -> type[BaseModel] | None:
    if not isinstance(node, dict):
        return models[0] if len(models) == 1 else None
    for model in models:
        for tag in ("kind", "generator", "distribution"):
            field = model.model_fields.get(tag)
            if field is not None and node.get(tag) == field.default:
                return model
    return None


def _format_error(
    model: type[BaseModel], raw: dict[str, Any], error: dict[str, Any]
) -> tuple[str, str, Path_]:
    path = _resolve_path(raw, tuple(error["loc"]))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        parent = _model_at(model, raw, path[:-1])
        if parent is not None:
            allowed = sorted(f.alias or n for n, f in parent.model_fields.items())
            message = f"unknown field; allowed: {', '.join(allowed)}"
        else:
            message = "unknown field"
    elif error["type"] == "missing":
        message = "required field is missing"
    elif error["type"] == "union_tag_invalid":
        tag = error["ctx"]["discriminator"].strip("'")
        message = f"'{error['ctx']['tag']}' is not allowed; expected one of {error['ctx']['expected_tags']}"
        path = (*path, tag)
    field = ".".join(str(p) for p in path) or None
    return field or "", message, path


def validation_error(
    model: type[BaseModel],
    raw: dict[str, Any],
    lines: dict[Path_, int],
    source: str,
    exc: ValidationError,
) -> ConfigError:
    """Turn a pydantic error into one ``ConfigError`` for the first problem (counting the rest)."""
    errors = exc.errors(include_url=False)
    field, message, path = _format_error(model, raw, errors[0])
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    line = None
    for cut in range(len(path), 0, -1):
        if path[:cut] in lines:
            line = lines[path[:cut]]
            break
    return ConfigError(source, message, field=field or None, line=line)


def validate_as(
    model: type[ModelT], raw: dict[str, Any], source: str, lines: dict[Path_, int] | None = None
) -> ModelT:
    """Validate ``raw`` as ``model`` or raise a ``ConfigError`` naming ``source``."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(model, raw, lines or {}, source, exc) from None


def _read(path: str | Path) -> tuple[str, str]:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "no such file") from None
    except IsADirectoryError:
        raise ConfigError(source, "is a directory, expected a YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(source, "not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(source, f"cannot read: {exc.strerror}") from None
    return source, text


def content_hash(raw: dict[str, Any]) -> str:
    """Hash of the parsed content (independent of comments and key order)."""
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()


def _refuse_swapped(
    raw: dict[str, Any], source: str, *, expected: str, marker: str, other: str
) -> None:
    # the commonest slip on the command line: the two files in the wrong order
    if marker not in raw and other in raw:
        kind = "workload" if other == "workload" else "machine"
        raise ConfigError(
            source, f"this is a {kind} file (it has '{other}'), expected a {expected} file"
        )


def load_machine(path: str | Path) -> MachineFile:
    """Read and validate a machine file."""
    source, text = _read(path)
    return machine_from_text(text, source)


def machine_from_text(text: str, source: str = "<string>") -> MachineFile:
    raw, lines = parse_yaml(text, source)
    _refuse_swapped(raw, source, expected="machine", marker="devices", other="workload")
    if "devices" not in raw and "graph_accelerator" in raw:
        # graph-accelerator files price SpGEMM directly (archsim.hw.graph_accel); they hold no
        # op-level devices for the mappers
        raise ConfigError(
            source,
            "this is a graph-accelerator file (it has 'graph_accelerator'), used by "
            "'archsim reproduce smash'; simulate, sweep and map need a machine file with "
            "'devices'",
        )
    config = validate_as(MachineConfig, raw, source, lines)
    return MachineFile(path=source, raw=raw, lines=lines, sha256=content_hash(raw), config=config)


def load_workload(path: str | Path) -> WorkloadFile:
    """Read and validate a workload file."""
    source, text = _read(path)
    return workload_from_text(text, source)


def workload_from_text(text: str, source: str = "<string>") -> WorkloadFile:
    raw, lines = parse_yaml(text, source)
    _refuse_swapped(raw, source, expected="workload", marker="workload", other="devices")
    config = validate_as(WorkloadConfig, raw, source, lines)
    return WorkloadFile(path=source, raw=raw, lines=lines, sha256=content_hash(raw), config=config)
