"""One strict YAML reader and one ``KEY=VALUE`` parser for every config taskmix reads.

Run configs, task files and cleaning settings all go through here, so they fail the same way:

- a key given twice in one mapping is an error (PyYAML would silently keep the last one);
- every message names the file and the line (``tasks.yaml:12: duplicate key 'name'``);
- a pydantic validation error becomes one line per problem, ``file: key.path: what was
  expected``, listing the allowed keys for an unknown one;
- ``--set KEY=VALUE`` values are YAML scalars, read with the same safe loader: no code is ever
  evaluated, and ``none`` means null as it does on most command lines.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from taskmix.errors import ConfigError

M = TypeVar("M", bound=BaseModel)
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping."""


def _construct_mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """``LINE: problem`` from a PyYAML error (lines 1-based, as editors count them)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    return f"{mark.line + 1}: invalid YAML: {problem}" if mark else f" invalid YAML: {problem}"


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text strictly; errors name ``source`` and the line."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}:{_yaml_problem(err)}") from None


@dataclass
class YamlFile:
    """A parsed YAML file that still knows the line of every key, for messages."""

    path: Path
    data: Any
    root: yaml.Node | None

    def line(self, loc: Sequence[Any]) -> int | None:
        """The 1-based line of the value at ``loc`` (keys and list indices), or of its deepest
        existing parent."""
        node, line = self.root, None
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                found = [(k, v) for k, v in node.value if k.value == str(part)]
                if not found:
                    break
                key, node = found[0]
                line = key.start_mark.line + 1
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if part >= len(node.value):
                    break
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                break
        return line

    def where(self, loc: Sequence[Any]) -> str:
        """``path:line`` of the value at ``loc`` (just ``path`` if it has no line)."""
        line = self.line(loc)
        return f"{self.path}:{line}" if line else str(self.path)


def read_yaml_file(path: str | Path, *, what: str = "config file") -> YamlFile:
    """Read and parse a YAML file strictly (a missing or unreadable file is a ConfigError)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the {what}: {err}") from None
    data = parse_yaml(text, str(path))
    return YamlFile(path, data, yaml.compose(text, Loader=StrictLoader))


def read_yaml(path: str | Path, *, what: str = "config file") -> Any:
    """The data of ``read_yaml_file``."""
    return read_yaml_file(path, what=what).data


def key_path(loc: Sequence[Any], prefix: str = "") -> str:
    """``tasks[2].source.splits`` from a pydantic location."""
    key = prefix
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "(top level)"


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def _model_at(root: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    """The model class that validates the value at ``loc`` (to list its allowed keys)."""
    model: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model else None
        if field is None:
            return None
        model = _find_model(field.annotation)
    return model


def describe_validation_error(
    err: ValidationError,
    root: type[BaseModel],
    prefix: str = "",
    source: YamlFile | None = None,
) -> str:
    """One line per problem: ``<key path>: <what was expected>``, led by ``file:line:`` where
    the YAML ``source`` is known."""
    lines = []
    for e in err.errors():
        loc, kind, msg = tuple(e["loc"]), e["type"], e["msg"]
        if kind == "extra_forbidden":
            model = _model_at(root, loc[:-1])
            allowed = f"; expected one of: {', '.join(model.model_fields)}" if model else ""
            msg = f"unknown key{allowed}"
        elif kind == "missing":
            msg = "required key is missing"
        elif kind == "value_error":
            msg = msg.removeprefix("Value error, ")
        else:
            value = e.get("input")
            if isinstance(value, str | int | float | bool) or value is None:
                msg = f"{msg} (got {value!r})"
        where = f"{source.where(loc)}: " if source is not None else ""
        lines.append(f"{where}{key_path(loc, prefix)}: {msg}")
    return "\n  ".join(lines)


def validate(model: type[M], data: Any, source: str, yaml_file: YamlFile | None = None) -> M:
    """``model.model_validate(data)``; problems become one ConfigError naming ``source`` (and
    each problem's line, when ``yaml_file`` is the file ``data`` came from)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: (top level): expected a mapping of keys, got {type(data).__name__}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems = describe_validation_error(err, model, source=yaml_file)
        sep = "\n  " if "\n" in problems else " "
        raise ConfigError(f"{source}:{sep}{problems}") from None


# --- KEY=VALUE ------------------------------------------------------------------------------
def parse_scalar(text: str) -> Any:
    """A ``--set`` value: a YAML scalar or flow collection (``3``, ``0.1``, ``true``, ``[a, b]``,
    ``{k: v}``), ``none``/``null`` for null; anything else is the text itself."""
    if text.strip().lower() == "none":
        return None
    try:
        value = yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value)  # YAML 1.1 reads 1e-3 (no dot) as text
    return value


def parse_assignment(
    item: str, *, flag: str = "--set", example: str = "key=value"
) -> tuple[str, str]:
    """``("key.path", "value text")`` from ``key.path=value text``."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE, e.g. {example}")
    return key.strip(), value


def apply_assignments(
    data: dict[str, Any], items: Sequence[str], *, flag: str = "--set"
) -> dict[str, Any]:
    """Set ``key.path=value`` items in a nested mapping (in place; returns it). Values are read
    by ``parse_scalar``; a path through a non-mapping is an error naming it."""
    for item in items:
        key, text = parse_assignment(item, flag=flag, example="steps=100")
        target = data
        *parents, leaf = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{flag} {item!r}: {part} is not a mapping")
        target[leaf] = parse_scalar(text)
    return data
