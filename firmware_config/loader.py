"""Load kiosk configuration from YAML files, naming file, line, key and value on every error.

Files are read with :mod:`kioskmatch.safe_yaml`: a hostile or mistyped file (aliases that
expand without end, deep nesting, control characters, ``!!`` tags, YAML 1.1 octal and base-60
numbers, duplicate keys) is a :class:`ConfigError` at its line, never a traceback or a hang.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from firmware_config.schema import KioskConfig
from kioskmatch.safe_yaml import Loc, YamlDocumentError, YamlProblem, load_document

# A kiosk configuration is a few hundred bytes; reading stops here, before YAML parses anything
# (PyYAML reads about 200 KB/s, so this bounds a hostile file to a second or two).
MAX_CONFIG_BYTES = 256 * 1024


@dataclass(frozen=True)
class ConfigIssue:
    """One problem with its place: ``file``, 1-based ``line`` (and ``column`` when the problem is
    in the text itself), the dotted ``key``, the ``value`` found, and ``message`` with the fix."""

    file: str
    line: int | None
    key: str
    value: object
    message: str
    column: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}" + (f":{self.column}" if self.column else "")
        shown = repr(self.value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        got = "" if self.value is None else f" (got {shown})"
        return f"{where}: {self.key}: {self.message}{got}"


class ConfigError(ValueError):
    """A configuration that cannot be used; ``issues`` lists each problem with its place."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


def _text(path: Path) -> str:
    """The file's text, or ConfigError: unreadable, too large, or not UTF-8."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            [ConfigIssue(str(path), None, "(file)", None, f"cannot read: {exc.strerror}")]
        ) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            [
                ConfigIssue(
                    str(path),
                    None,
                    "(file)",
                    None,
                    f"larger than {MAX_CONFIG_BYTES:,} bytes: check this is the configuration"
                    " file (a kiosk's is a few hundred bytes)",
                )
            ]
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            [
                ConfigIssue(
                    str(path),
                    bad_line,
                    "(file)",
                    None,
                    f"not UTF-8 text (byte {raw[exc.start]:#04x} on line {bad_line}):"
                    " save it as UTF-8, or check this is the configuration file",
                )
            ]
        ) from None


def _dotted(loc: Loc) -> str:
    return ".".join(str(part) for part in loc)


def _problem_issue(path: Path, problem: YamlProblem) -> ConfigIssue:
    key = "(syntax)" if problem.syntax else _dotted(problem.loc) or "(root)"
    return ConfigIssue(
        str(path),
        problem.line,
        key,
        None,
        f"{problem.message}; {problem.fix}",
        problem.column,
    )


def _read(path: Path) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """The file's mapping and the line of each key path (list indexes as text)."""
    try:
        document = load_document(_text(path))
    except YamlDocumentError as exc:
        raise ConfigError([_problem_issue(path, p) for p in exc.problems]) from None
    data = document.value
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigIssue(str(path), 1, "(root)", data, "the file must hold a mapping of keys")]
        )
    lines = {tuple(str(p) for p in loc): line for loc, (line, _col) in document.marks.items()}
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
                    None if isinstance(err.get("input"), dict | list) else err.get("input"),
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
        "string_type": "; put the value in quotes to make it text",
    }.get(error_type, "")
