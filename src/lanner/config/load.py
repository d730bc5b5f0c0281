"""Reading a config: YAML with line numbers, `${env.NAME}` secrets, LANNER_* overrides.

Environment overrides: a variable `LANNER_<PATH>` sets the config value at
PATH, where PATH is the lowercase key path with `__` between levels and list
indexes as numbers: `LANNER_LOG__FORMAT=json`, `LANNER_LISTENERS__0__BIND=:9000`,
`LANNER_LIMITS__IDLE_TIMEOUT=30`. Values are read as YAML scalars or flow
collections (`30`, `true`, `[http, socks5]`). `LANNER_CONFIG` names the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lanner.config.model import Config

ENV_PREFIX = "LANNER_"
_RESERVED_ENV = {"LANNER_CONFIG"}
_ENV_REF = re.compile(r"\$\{env\.([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Path_ = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    source: str
    line: int | None
    where: str
    reason: str

    def __str__(self) -> str:
        place = f"{self.source}:{self.line}" if self.line else self.source
        return f"{place}: {self.where}: {self.reason}" if self.where else f"{place}: {self.reason}"


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def load_default(environ: Mapping[str, str] | None = None) -> Config:
    """The embedded defaults, with environment overrides."""
    return _validate({}, {}, "<defaults>", os.environ if environ is None else environ)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    env = os.environ if environ is None else environ
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(source, None, "", exc.strerror or str(exc))]) from exc
    try:
        data = yaml.safe_load(text)
        lines = _line_map(yaml.compose(text))
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError([Problem(source, line, "", f"YAML: {exc.problem}")]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([Problem(source, 1, "", "the top level must be a mapping")])
    return _validate(data, lines, source, env)


def _validate(data: dict[str, Any], lines: dict[Path_, int], source: str, env: Mapping[str, str]) -> Config:
    problems: list[Problem] = []
    data = _substitute(data, (), env, lines, source, problems)
    overridden = _apply_overrides(data, env, problems)
    if problems:
        raise ConfigError(problems)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            # A tagged union's tag (a route's "<pool>" or "<target>") is not a key of the file.
            loc = tuple(part for part in error["loc"] if not str(part).startswith("<"))
            where = ".".join(str(part) for part in loc)
            env_name = overridden.get(loc)
            if env_name:
                problems.append(Problem(f"env {env_name}", None, where, error["msg"]))
            else:
                problems.append(Problem(source, _line_for(lines, loc), where, error["msg"]))
        raise ConfigError(problems) from exc


def _line_map(node: yaml.Node | None, path: Path_ = ()) -> dict[Path_, int]:
    lines: dict[Path_, int] = {}
    if node is None:
        return lines
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines[path + (key.value,)] = key.start_mark.line + 1
            lines.update({k: v for k, v in _line_map(value, path + (key.value,)).items() if k})
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(_line_map(item, path + (index,)))
    return lines


def _line_for(lines: dict[Path_, int], loc: tuple[Any, ...]) -> int | None:
    for size in range(len(loc), -1, -1):
        line = lines.get(tuple(loc[:size]))
        if line:
            return line
    return None


def _substitute(
    value: Any,
    path: Path_,
    env: Mapping[str, str],
    lines: dict[Path_, int],
    source: str,
    problems: list[Problem],
) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, path + (k,), env, lines, source, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, path + (i,), env, lines, source, problems) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        where = ".".join(str(p) for p in path)
        problems.append(Problem(source, _line_for(lines, path), where, f"${{env.{name}}} is not set"))
        return ""

    return _ENV_REF.sub(replace, value)


def _apply_overrides(
    data: dict[str, Any], env: Mapping[str, str], problems: list[Problem]
) -> dict[tuple[Any, ...], str]:
    """Apply LANNER_* variables; returns which config paths came from which variable."""
    overridden: dict[tuple[Any, ...], str] = {}
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in _RESERVED_ENV:
            continue
        path: list[str | int] = [
            int(part) if part.isdigit() else part.lower() for part in name[len(ENV_PREFIX) :].split("__")
        ]
        try:
            value = yaml.safe_load(env[name])
        except yaml.YAMLError:
            value = env[name]
        if path[0] not in data:  # override a default: start from its value
            data[str(path[0])] = _defaults().get(str(path[0]))
        try:
            _set_path(data, path, value)
        except (KeyError, IndexError, TypeError) as exc:
            problems.append(Problem(f"env {name}", None, "", f"cannot set this path: {exc}"))
            continue
        overridden[tuple(path)] = name
    return overridden


def _defaults() -> dict[str, Any]:
    return Config().model_dump(mode="json", exclude_none=True)


def _set_path(data: dict[str, Any], path: list[str | int], value: Any) -> None:
    node: Any = data
    for index, part in enumerate(path[:-1]):
        following = path[index + 1]
        if isinstance(part, int):
            if not isinstance(node, list):
                raise TypeError(f"{part} indexes a non-list")
            while len(node) <= part:
                node.append({})
        elif part not in node:
            node[part] = [] if isinstance(following, int) else {}
        node = node[part]
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(node, list):
            raise TypeError(f"{last} indexes a non-list")
        while len(node) <= last:
            node.append(None)
    node[last] = value
