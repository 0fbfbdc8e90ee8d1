"""Load lender programs from YAML or JSON with errors that point at the file, line and field.

Documents are read by :mod:`kioskmatch.safe_yaml` (PyYAML's composer, which keeps each node's
position; JSON is YAML, so one path serves both, with JSON's values read by JSON's rules), which
also refuses what a hostile document could do (aliases expanding without bound or into
themselves, deep nesting, characters YAML refuses, numbers YAML 1.1 would misread); pydantic's
error locations are then mapped back to those positions. Every
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
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from gateway.matching.errors import ProgramError, ProgramIssue, ProgramSetError
from gateway.matching.program import CrossFieldError, LenderProgram
from kioskmatch.safe_yaml import (
    MAX_DEPTH,
    Loc,
    YamlDocumentError,
    load_document,
    load_json_document,
)

logger = logging.getLogger(__name__)

PROGRAM_SUFFIXES = (".yaml", ".yml", ".json")
_Mark = tuple[int, int]
Syntax = Literal["yaml", "json"]


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
    data, marks = _compose(text, source_name, as_json=as_json)
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


def _compose(text: str, source: str, *, as_json: bool) -> tuple[Any, dict[Loc, _Mark]]:
    """The document's values and each one's (line, column)."""
    try:
        document = load_json_document(text) if as_json else load_document(text)
    except YamlDocumentError as exc:
        raise ProgramError(
            [
                ProgramIssue(source, p.line, p.column, _dotted(p.loc), p.message, None, p.fix)
                for p in exc.problems
            ]
        ) from None
    if document.value is None:
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
    return document.value, document.marks


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
