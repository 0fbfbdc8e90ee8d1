"""Load kiosk configuration from YAML files, naming file, line, key and value on every error."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from firmware_config.schema import KioskConfig


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int | None
    key: str
    value: object
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        got = "" if self.value is None else f" (got {self.value!r})"
        return f"{where}: {self.key}: {self.message}{got}"


class ConfigError(ValueError):
    """A configuration that cannot be used; ``issues`` lists each problem with its place."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


def _lines(
    node: yaml.Node,
    path: tuple[str, ...],
    out: dict[tuple[str, ...], int],
    duplicates: list[tuple[tuple[str, ...], int, int]],
) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen and key != "<<":
                duplicates.append(((*path, key), seen[key], line))
            seen[key] = line
            out[(*path, key)] = line
            _lines(value_node, (*path, key), out, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*path, str(i)), out, duplicates)


def _read(path: Path) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [ConfigIssue(str(path), None, "(file)", None, f"cannot read: {exc.strerror}")]
        ) from None
    except UnicodeDecodeError as exc:
        bad_line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError(
            [
                ConfigIssue(
                    str(path),
                    bad_line,
                    "(file)",
                    None,
                    f"not UTF-8 text (byte {exc.object[exc.start]:#04x} on line {bad_line}):"
                    " save it as UTF-8, or check this is the configuration file",
                )
            ]
        ) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        # PyYAML names the stream "<unicode string>"; the issue already names the file.
        reason = str(exc).replace('in "<unicode string>", ', "at ")
        raise ConfigError(
            [ConfigIssue(str(path), line, "(syntax)", None, f"not valid YAML: {reason}")]
        ) from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigIssue(str(path), 1, "(root)", data, "the file must hold a mapping of keys")]
        )
    lines: dict[tuple[str, ...], int] = {}
    duplicates: list[tuple[tuple[str, ...], int, int]] = []
    if node is not None:
        _lines(node, (), lines, duplicates)
    if duplicates:
        # YAML keeps only the last of two equal keys: one of the two settings would be lost.
        raise ConfigError(
            [
                ConfigIssue(
                    str(path),
                    second,
                    ".".join(key),
                    None,
                    f"given twice (first on line {first}); keep one",
                )
                for key, first, second in duplicates
            ]
        )
    return data, lines


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        earlier = out.get(key)
        if (
            isinstance(value, dict)
            and isinstance(earlier, dict)
            and "type" in value
            and value["type"] != earlier.get("type")
        ):
            # A plugin of another type (serial after tcp) replaces the section: the earlier
            # type's keys (host) mean nothing to the new one and would be refused as unknown.
            out[key] = value
        elif isinstance(value, dict) and isinstance(earlier, dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(paths: Sequence[Path], **overrides: Any) -> KioskConfig:
    """Merge the YAML files in order (later wins) and validate; raise ``ConfigError`` otherwise."""
    merged: dict[str, Any] = {}
    origin: dict[tuple[str, ...], tuple[str, int]] = {}
    for path in paths:
        data, lines = _read(path)
        merged = _merge(merged, data)
        for key_path, line in lines.items():
            origin[key_path] = (str(path), line)
    merged = _merge(merged, overrides)
    try:
        return KioskConfig.model_validate(merged)
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            loc = _located(tuple(str(p) for p in err["loc"]), origin)
            probe = loc
            while probe and probe not in origin:
                probe = probe[:-1]
            file, line = origin.get(probe, (", ".join(str(p) for p in paths) or "(defaults)", 0))
            hint = _hint(err["type"])
            issues.append(
                ConfigIssue(
                    file,
                    line or None,
                    ".".join(loc) or "(root)",
                    # A whole section is no use as "the value"; the message says what is wrong.
                    None if isinstance(err.get("input"), dict) else err.get("input"),
                    err["msg"].removeprefix("Value error, ") + hint,
                )
            )
        raise ConfigError(issues) from None


def _located(
    loc: tuple[str, ...], origin: dict[tuple[str, ...], tuple[str, int]]
) -> tuple[str, ...]:
    """Drop the parts pydantic adds that are not keys (a discriminated union's tag)."""
    out: tuple[str, ...] = ()
    for i, part in enumerate(loc):
        if (*out, part) in origin or i == len(loc) - 1 or (*out, part, loc[i + 1]) in origin:
            out = (*out, part)
        elif not any(key[: len(out) + 1] == (*out, part) for key in origin):
            continue
        else:
            out = (*out, part)
    return out


def _hint(error_type: str) -> str:
    return {
        "extra_forbidden": "; remove it or check its spelling against `kioskmatch config schema`",
        "missing": "; add it",
        "union_tag_invalid": "; use one of the listed types",
        "union_tag_not_found": "; add a type (see `kioskmatch config schema` for the types)",
    }.get(error_type, "")
