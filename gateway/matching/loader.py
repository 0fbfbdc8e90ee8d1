"""Load lender programs from YAML or JSON with errors that point at the file, line and field.

Documents are parsed with PyYAML's composer (JSON is YAML, so one path serves both), which keeps
each node's position; pydantic's error locations are then mapped back to those positions. Every
error says what was found and how to fix it, e.g.::

    programs/bank.yaml:41:7: rate_grid.floor_apr: Input should be less than or equal to 199.99
    (got 250). Fix: No offer is priced below this APR (0 to 199.99)

Duplicate keys, which YAML would otherwise resolve silently by keeping the last, are errors.

JSON is read with JSON's own rules (``.json`` files, uploads sent as JSON, and any text that is
valid JSON): a syntax error is reported as a JSON error at its position, and scalars take their
JSON values (``1e5`` is a number, tabs are whitespace), while positions still come from the
composer. YAML tags that would build other objects (``!!python/...``, ``!!binary``, merge keys) are
refused with their position.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from gateway.matching.errors import ProgramError, ProgramIssue, ProgramSetError
from gateway.matching.program import CrossFieldError, LenderProgram

logger = logging.getLogger(__name__)

PROGRAM_SUFFIXES = (".yaml", ".yml", ".json")
Loc = tuple[str | int, ...]
_Mark = tuple[int, int]
Syntax = Literal["yaml", "json"]
# The tags a program's scalars may carry; anything else would build an object pydantic then
# coerces (bytes from !!binary) or that the safe loader cannot build at all (!!python/...).
_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "timestamp")
)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
# YAML 1.1 reads 0750000 as octal (249856) and 1:20 as base 60 (80): on a rate sheet those are
# typos for decimals, so integers must be plain decimal and no number may use base 60.
_DECIMAL_INT = re.compile(r"[-+]?(0|[1-9][0-9_]*)")
# Far more values and depth than any rate sheet has; aliases could otherwise expand a small
# document into billions of values, and nesting could exhaust the parser's recursion.
MAX_VALUES = 100_000
MAX_DEPTH = 32
# What the YAML composer must not see in JSON text: characters JSON strings may hold but YAML's
# reader refuses, tabs (JSON whitespace), and what YAML takes for line breaks (NEL, U+2028/9).
_NOT_FOR_YAML = re.compile(f"{yaml.reader.Reader.NON_PRINTABLE.pattern}|[\t\u0085\u2028\u2029]")


def sample_programs_dir() -> Path:
    """The folder of sample programs shipped with the package (one per kind of lender)."""
    return Path(__file__).parent / "programs"


def load_program(path: str | Path) -> LenderProgram:
    """Read and validate one program file (``.yaml``, ``.yml`` or ``.json``).

    Raises :class:`ProgramError` naming the file, line and field of every problem.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProgramError(
            [
                ProgramIssue(
                    str(path),
                    None,
                    None,
                    "",
                    f"cannot read the file: {exc}",
                    None,
                    "check the path and that the file is UTF-8 text",
                )
            ]
        ) from exc
    return parse_program(text, source_name=str(path))


def load_programs(directory: str | Path) -> list[LenderProgram]:
    """Load every program file in ``directory`` (sorted by name), checking ids are unique.

    All files are read before raising, so one :class:`ProgramError` reports every bad file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ProgramError(
            [
                ProgramIssue(
                    str(directory),
                    None,
                    None,
                    "",
                    "not a folder",
                    None,
                    "pass the folder that holds the program files",
                )
            ]
        )
    programs: list[LenderProgram] = []
    issues: list[ProgramIssue] = []
    seen: dict[str, Path] = {}
    for path in sorted(p for p in directory.iterdir() if p.suffix.lower() in PROGRAM_SUFFIXES):
        try:
            program = load_program(path)
        except ProgramError as exc:
            issues.extend(exc.issues)
            continue
        if program.program_id in seen:
            issues.append(
                ProgramIssue(
                    str(path),
                    None,
                    None,
                    "program_id",
                    f"program id is already used by {seen[program.program_id]}",
                    program.program_id,
                    "give each program its own program_id",
                )
            )
            continue
        seen[program.program_id] = path
        programs.append(program)
    if issues:
        raise (
            ProgramSetError(issues)
            if all(i.field == "program_id" for i in issues)
            else (ProgramError(issues))
        )
    logger.debug("loaded %s lender programs from %s", len(programs), directory)
    return programs


def parse_program(
    text: str, *, source_name: str = "<program>", syntax: Syntax | None = None
) -> LenderProgram:
    """Validate a program from YAML or JSON text; ``source_name`` is used in error messages.

    ``syntax="json"`` holds the text to JSON's grammar; ``None`` does so when ``source_name`` ends
    in ``.json``, and otherwise reads text that is valid JSON as JSON and anything else as YAML.
    """
    if syntax is None and source_name.lower().endswith(".json"):
        syntax = "json"
    as_json = syntax == "json" or (syntax is None and _is_json(text))
    if as_json:
        _check_json(text, source_name)
        data, marks = _compose(_positions_only(text), source_name, json_text=text)
    else:
        data, marks = _compose(text, source_name)
    if not isinstance(data, dict):
        raise ProgramError(
            [
                ProgramIssue(
                    source_name,
                    1,
                    1,
                    "",
                    "a program must be a mapping of keys to values",
                    type(data).__name__,
                    "start the document with `program_id: ...`",
                )
            ]
        )
    try:
        return LenderProgram.model_validate(data)
    except ValidationError as exc:
        raise ProgramError(_issues(exc, marks, source_name)) from None


# --- JSON ------------------------------------------------------------------------------------


def _is_json(text: str) -> bool:
    if not text.lstrip().startswith(("{", "[")):
        return False
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    except ValueError:  # valid JSON with a value Python will not convert (a 5,000-digit number)
        return True
    except RecursionError:  # nested too deeply for the parser; composing reports it
        return False
    return True


def _check_json(text: str, source: str) -> None:
    """Refuse text that is not JSON, at the position of its first error. A value JSON allows
    but Python will not convert is reported with its field when the document is composed."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProgramError(
            [
                ProgramIssue(
                    source,
                    exc.lineno,
                    exc.colno,
                    "",
                    f"not valid JSON: {exc.msg}",
                    None,
                    "fix the syntax at this position (commas, quotes, brackets)",
                )
            ]
        ) from None
    except ValueError:
        pass
    except RecursionError:
        raise ProgramError([_too_deep(source)]) from None


def _positions_only(text: str) -> str:
    """JSON text the YAML composer will read for positions only (values come from the JSON).

    Tabs are JSON whitespace but YAML refuses them, and JSON strings may hold characters YAML's
    reader refuses (U+0080 to U+009F, U+FFFE...): each is replaced by one character YAML takes,
    so every line and column stays where it was.
    """
    return _NOT_FOR_YAML.sub(" ", text)


def _too_deep(source: str) -> ProgramIssue:
    return ProgramIssue(
        source,
        None,
        None,
        "",
        f"the document is nested more than {MAX_DEPTH} levels deep",
        None,
        "a program nests a few levels (see docs/matching.md); check the brackets or indentation",
    )


# --- YAML with positions ----------------------------------------------------------------------


def _compose(
    text: str, source: str, *, json_text: str | None = None
) -> tuple[Any, dict[Loc, _Mark]]:
    """The document's values and each one's position. With ``json_text``, ``text`` is that JSON
    made readable by the composer (see :func:`_positions_only`) and values come from the JSON."""
    try:
        loader = yaml.SafeLoader(text)  # its reader checks every character first
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ProgramError(
            [
                ProgramIssue(
                    source,
                    mark.line + 1 if mark else None,
                    mark.column + 1 if mark else None,
                    "",
                    f"not valid YAML/JSON: {exc.problem or exc}",
                    None,
                    "fix the syntax at this position (indentation, quotes, brackets)",
                )
            ]
        ) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        line, column = _line_column(text, exc.position)
        raise ProgramError(
            [
                ProgramIssue(
                    source,
                    line,
                    column,
                    "",
                    f"not valid YAML: the character U+{exc.character:04X} is not allowed",
                    None,
                    "remove it, or write it as an escape in a double-quoted string",
                )
            ]
        ) from None
    except RecursionError:
        raise ProgramError([_too_deep(source)]) from None
    if node is None:
        raise ProgramError(
            [
                ProgramIssue(
                    source,
                    None,
                    None,
                    "",
                    "the document is empty",
                    None,
                    "write a program (see docs/matching.md)",
                )
            ]
        )
    scalar = _YamlScalars() if json_text is None else _JsonScalars(json_text)
    builder = _Builder(source, scalar)
    data = builder.build(node, ())
    if builder.issues:
        raise ProgramError(builder.issues)
    return data, builder.marks


def _line_column(text: str, index: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


class _ScalarError(ValueError):
    """A scalar whose text cannot be read as its type says; ``fix`` says what to write."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


class _YamlScalars:
    """A YAML scalar's value, as the safe loader builds it (dates left as text)."""

    def __init__(self) -> None:
        self._constructor = yaml.SafeLoader("")

    def __call__(self, node: yaml.ScalarNode) -> Any:
        if node.tag == "tag:yaml.org,2002:timestamp":
            # Leave dates as text: pydantic parses ISO dates and reports bad ones with the field.
            return node.value
        if node.tag == _INT_TAG and not _DECIMAL_INT.fullmatch(node.value):
            raise _ScalarError(
                f"{node.value!r} is not a decimal integer (YAML would read it as octal, "
                "hexadecimal, binary or base 60)",
                "write the number in decimal digits without a leading zero, or quote it",
            )
        if node.tag == _FLOAT_TAG and ":" in node.value:
            raise _ScalarError(
                f"{node.value!r} is a base-60 number in YAML",
                "write the number in decimal, or quote it",
            )
        try:
            return self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, LookupError, TypeError) as exc:
            kind = node.tag.rsplit(":", 1)[-1]
            raise _ScalarError(
                f"{node.value!r} cannot be read as {kind} ({exc})",
                "write the value plainly, without a !! tag",
            ) from None


class _JsonScalars:
    """A JSON scalar's value, read from its own text with JSON's rules."""

    def __init__(self, text: str) -> None:
        self._text = text

    def __call__(self, node: yaml.ScalarNode) -> Any:
        try:
            return json.loads(self._text[node.start_mark.index : node.end_mark.index])
        except ValueError as exc:  # valid JSON Python will not convert (a 5,000-digit number)
            raise _ScalarError(
                f"the value cannot be read: {exc}", "write a smaller number"
            ) from None


def _issue_at(node: yaml.Node, source: str, loc: Loc, message: str, fix: str) -> ProgramIssue:
    line, column = node.start_mark.line + 1, node.start_mark.column + 1
    return ProgramIssue(source, line, column, _dotted(loc), message, None, fix)


def _tag_issue(node: yaml.Node, source: str, loc: Loc) -> ProgramIssue | None:
    if isinstance(node, yaml.ScalarNode) and node.tag not in _SCALAR_TAGS:
        what = f"the YAML tag {node.tag!r} is not allowed in a program"
    elif isinstance(node, yaml.MappingNode) and node.tag != "tag:yaml.org,2002:map":
        what = f"the YAML tag {node.tag!r} is not allowed in a program (expected a mapping)"
    elif isinstance(node, yaml.SequenceNode) and node.tag != "tag:yaml.org,2002:seq":
        what = f"the YAML tag {node.tag!r} is not allowed in a program (expected a list)"
    else:
        return None
    fix = "remove the tag and write the value as plain text, a number, true/false or null"
    return _issue_at(node, source, loc, what, fix)


def _key_issue(key_node: yaml.Node, source: str, loc: Loc) -> ProgramIssue | None:
    if key_node.tag == _MERGE_TAG:
        return _issue_at(
            key_node,
            source,
            loc,
            "YAML merge keys (<<) are not supported in a program",
            "write the keys out in this mapping (anchors and aliases are fine)",
        )
    if not isinstance(key_node, yaml.ScalarNode):
        return _issue_at(
            key_node,
            source,
            loc,
            "a key must be plain text, not a list or a mapping",
            "write the key as text",
        )
    return _tag_issue(key_node, source, loc)


class _Builder:
    """Python values from composed nodes, each value's position kept in ``marks`` and every
    problem in ``issues``. An alias is built again wherever it is used, so the values built are
    counted (:data:`MAX_VALUES`), and a node may not contain an alias of itself."""

    def __init__(self, source: str, scalar: _YamlScalars | _JsonScalars) -> None:
        self.source = source
        self.scalar = scalar
        self.marks: dict[Loc, _Mark] = {}
        self.issues: list[ProgramIssue] = []
        self._built = 0
        self._open: set[int] = set()  # ids of the collections being built (no cycles)

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        source = self.source
        self.marks[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
        problem = _tag_issue(node, source, loc)
        if problem is not None:
            self.issues.append(problem)
            return None
        self._built += 1
        if self._built > MAX_VALUES:
            raise ProgramError(
                [
                    _issue_at(
                        node,
                        source,
                        loc,
                        f"the document holds more than {MAX_VALUES:,} values (aliases count "
                        "each time they are used)",
                        "write the program out with fewer aliases; a rate sheet needs a few "
                        "thousand values at most",
                    )
                ]
            )
        if isinstance(node, yaml.ScalarNode):
            try:
                return self.scalar(node)
            except _ScalarError as exc:
                self.issues.append(_issue_at(node, source, loc, str(exc), exc.fix))
                return None
        if id(node) in self._open:
            self.issues.append(
                _issue_at(
                    node,
                    source,
                    loc,
                    "an alias here refers to a collection that contains it",
                    "point the alias at another anchor, or write the values out",
                )
            )
            return None
        if len(loc) >= MAX_DEPTH:
            raise ProgramError([_too_deep(source)])
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, loc)
            return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
        finally:
            self._open.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[Any, Any]:
        source = self.source
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            problem = _key_issue(key_node, source, loc)
            if problem is not None:
                self.issues.append(problem)
                continue
            try:
                key = self.scalar(key_node)
            except _ScalarError as exc:
                self.issues.append(_issue_at(key_node, source, loc, str(exc), exc.fix))
                continue
            if not isinstance(key, str | int) or isinstance(key, bool):
                key = str(key)
            if key in out:
                self.issues.append(
                    ProgramIssue(
                        source,
                        key_node.start_mark.line + 1,
                        key_node.start_mark.column + 1,
                        _dotted((*loc, key)),
                        "duplicate key",
                        key,
                        "keep one of the entries; YAML would silently use the last",
                    )
                )
                continue
            out[key] = self.build(value_node, (*loc, key))
            self.marks[(*loc, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return out


# --- pydantic errors → issues -----------------------------------------------------------------


def _issues(exc: ValidationError, marks: dict[Loc, _Mark], source: str) -> list[ProgramIssue]:
    issues = []
    for err in exc.errors(include_url=False):
        loc: Loc = tuple(err["loc"])
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, CrossFieldError):
            loc = loc + cause.loc
        known = _known_prefix(loc, marks)
        line, col = marks.get(known, (None, None))
        field_path = _dotted(known if err["type"] != "missing" else loc)
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        value = err.get("input") if err["type"] != "missing" and cause is None else None
        if isinstance(value, dict | list) and err["type"] != "extra_forbidden":
            value = None  # the whole sub-document is noise; the message says what is wrong
        # A broken cross-field rule already says what to change; a field error gets the field's
        # description and bounds as the fix.
        fix = None if isinstance(cause, CrossFieldError) else _fix(err["type"], known, loc)
        issues.append(ProgramIssue(source, line, col, field_path, message, value, fix))
    return issues


def _known_prefix(loc: Loc, marks: dict[Loc, _Mark]) -> Loc:
    # pydantic adds union member names ("float", "none") to locations; they are not in the file.
    for end in range(len(loc), -1, -1):
        if loc[:end] in marks:
            return loc[:end]
    return ()


def _fix(kind: str, known: Loc, loc: Loc) -> str | None:
    if kind == "extra_forbidden":
        fields = _fields_at(known[:-1])
        name = str(known[-1]) if known else ""
        close = difflib.get_close_matches(name, fields, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"{hint}remove the key or use one of: {', '.join(sorted(fields))}"
    info = _field_info(loc)
    if kind == "missing":
        desc = f" ({info.description})" if info is not None and info.description else ""
        return f"add `{loc[-1]}:`{desc}"
    if info is not None and info.description:
        bounds = _bounds(info)
        return info.description + (f" ({bounds})" if bounds else "")
    return None


def _bounds(info: FieldInfo) -> str:
    parts = []
    for meta in info.metadata:
        for attr, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{word} {value}")
    return ", ".join(parts)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _step(annotation: Any, key: str | int) -> tuple[Any, FieldInfo | None]:
    """The annotation (and field info) one step down ``annotation`` by ``key``."""
    model = _model_of(annotation)
    if model is not None:
        if isinstance(key, str) and key in model.model_fields:
            info = model.model_fields[key]
            return info.annotation, info
        return None, None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        for arg in args:
            if arg is not type(None):
                return _step(arg, key)
        return None, None
    if origin is typing.Annotated:
        return _step(args[0], key)
    if origin in (list, tuple) and args:
        return args[0], None
    if origin is dict and len(args) == 2:
        return args[1], None
    return None, None


def _walk(loc: Iterable[str | int]) -> tuple[Any, FieldInfo | None]:
    annotation: Any = LenderProgram
    info: FieldInfo | None = None
    for key in loc:
        annotation, info = _step(annotation, key)
        if annotation is None:
            return None, None
    return annotation, info


def _fields_at(loc: Loc) -> list[str]:
    annotation, _ = _walk(loc)
    while typing.get_origin(annotation) in (Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    model = _model_of(annotation)
    return list(model.model_fields) if model is not None else []


def _field_info(loc: Loc) -> FieldInfo | None:
    # Walk only through real keys (pydantic's union tags would not resolve).
    _, info = _walk(tuple(k for k in loc if k not in ("float", "none", "int", "str")))
    return info


def _dotted(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
