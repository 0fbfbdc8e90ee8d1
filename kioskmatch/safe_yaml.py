"""YAML documents read defensively: values and their positions, or every problem with its place.

PyYAML's ``safe_load`` is safe from code execution but not from the rest of what a hostile or
mistyped file can do, and each of these was reproduced against the kiosk configuration:

- an alias inside its own anchor (``x: &a [*a]``) builds a cyclic list that recursion over it
  never finishes (RecursionError);
- aliases of aliases (the "billion laughs") expand a few hundred bytes into billions of values:
  values built are counted, aliases each time they are used (:data:`MAX_VALUES`);
- nesting deep enough exhausts the recursive composer: the depth is checked on the parser's
  events first (:data:`MAX_DEPTH`), which needs no recursion;
- characters YAML does not allow (NUL, U+0001...) raise a ``ReaderError`` that is not a
  ``MarkedYAMLError``: reported here with its line and column;
- YAML 1.1 reads ``0750`` as octal 488 and ``1:20`` as base 60 (80); in a configuration these are
  decimal numbers or times mistyped, so an integer must be plain decimal and no number may be
  base 60 (quote the value to keep it as text);
- explicit tags build other objects (``!!binary`` bytes, ``!!set``, ``!!python/...``) or fail
  with a raw exception (``!!int abc``, a 5,000-digit integer): only the plain scalar tags are
  allowed, and a scalar that cannot be read is a problem at its position;
- merge keys (``<<``) are refused: they hide where a setting came from;
- duplicate keys, which YAML resolves silently by keeping the last, are problems.

Dates are left as the text written: no field wants a ``datetime``, and text is what a text field
(``config_version: 2024-05-01``) means.

JSON documents (:func:`load_json_document`) go through the same composer for their positions (JSON
is YAML), with each value read from its own text by JSON's rules. The kiosk's configuration loader
(``firmware_config``) and the gateway's lender-program loader (``gateway.matching.loader``) both
read through this module.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = [
    "MAX_DEPTH",
    "MAX_PROBLEMS",
    "MAX_VALUES",
    "Document",
    "Loc",
    "YamlDocumentError",
    "YamlProblem",
    "load_document",
    "load_json_document",
]

Loc = tuple[str | int, ...]
# Far more than any kiosk configuration (a few dozen values, five levels deep) or rate sheet.
MAX_VALUES = 100_000
MAX_DEPTH = 32
MAX_PROBLEMS = 100  # reported at once; reading stops there

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = frozenset(
    _TAG + name for name in ("str", "int", "float", "bool", "null", "timestamp")
)
_MAP_TAG = _TAG + "map"
_SEQ_TAG = _TAG + "seq"
_MERGE_TAG = _TAG + "merge"
_INT_TAG = _TAG + "int"
_FLOAT_TAG = _TAG + "float"
_TIMESTAMP_TAG = _TAG + "timestamp"
# What YAML 1.1 reads as an integer in another base (0750 is 488, 1:20 is 80); other text tagged
# !!int that is not decimal is refused when it fails to convert.
_OTHER_BASE_INT = re.compile(
    r"[-+]?(0b[01_]+|0x[0-9a-fA-F_]+|0[0-7_]+|[1-9][0-9_]*(:[0-5]?[0-9])+)"
)
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_NOT_FOR_YAML = re.compile(f"{yaml.reader.Reader.NON_PRINTABLE.pattern}|[\t\u0085\u2028\u2029]")
_SHOWN = 40  # characters of a bad value quoted in a message


@dataclass(frozen=True)
class YamlProblem:
    """One problem: 1-based ``line`` and ``column`` (None when it has no place), the ``loc`` of
    the value it concerns (keys and list indexes), what is wrong, and what to do. ``syntax``
    problems (the text is not YAML, or nested too deep) stop reading and concern no value."""

    line: int | None
    column: int | None
    loc: Loc
    message: str
    fix: str
    syntax: bool = False


class YamlDocumentError(ValueError):
    """A document that cannot be read; ``problems`` lists each one with its place."""

    def __init__(self, problems: list[YamlProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.message} ({p.fix})" for p in problems))


@dataclass
class Document:
    """The value read (``None`` for an empty document) and the 1-based (line, column) of each
    value's place: a mapping value's is its key's, a list item's is the item's."""

    value: Any
    marks: dict[Loc, tuple[int, int]] = field(default_factory=dict)


def load_document(text: str) -> Document:
    """Read one YAML document from ``text``; raise :class:`YamlDocumentError` with every
    problem found (up to :data:`MAX_PROBLEMS`), or the one that stops reading (a syntax error,
    a limit)."""
    return _load(text, None)


def load_json_document(text: str) -> Document:
    """Read a JSON document (``text`` already known to be JSON) with every value's place, as
    :func:`load_document` does; values and keys are read from their own text by JSON's rules
    (``1e5`` is a number, escapes are JSON's). YAML's composer, which gives the places, reads a
    copy in which each character it refuses but a JSON string may hold (U+0080 to U+009F,
    U+FFFE...), each tab and each character it takes for a line break (NEL, U+2028, U+2029) is a
    space, so every line and column stays where it was."""
    return _load(_NOT_FOR_YAML.sub(" ", text), text)


def _load(text: str, json_text: str | None) -> Document:
    _check_depth(text)
    try:
        loader = yaml.SafeLoader(text)  # its reader checks every character first
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.reader.ReaderError as exc:
        raise YamlDocumentError([_reader_problem(text, exc)]) from None
    except yaml.MarkedYAMLError as exc:
        raise YamlDocumentError([_syntax_problem(exc)]) from None
    except RecursionError:  # _check_depth keeps composing shallow; this is a backstop
        raise YamlDocumentError([_too_deep(None)]) from None
    if node is None:
        return Document(None)
    builder = _Builder(json_text)
    value = builder.build(node, ())
    if builder.problems:
        raise YamlDocumentError(builder.problems)
    return Document(value, builder.marks)


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` from the parser's events (the parser keeps
    its own stack, so this cannot recurse); syntax errors are raised as problems too."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise YamlDocumentError([_too_deep(event.start_mark)])
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.reader.ReaderError as exc:
        raise YamlDocumentError([_reader_problem(text, exc)]) from None
    except yaml.MarkedYAMLError as exc:
        raise YamlDocumentError([_syntax_problem(exc)]) from None


def _too_deep(mark: Any) -> YamlProblem:
    return YamlProblem(
        mark.line + 1 if mark else None,
        mark.column + 1 if mark else None,
        (),
        f"the document is nested more than {MAX_DEPTH} levels deep",
        "check the brackets and indentation",
        syntax=True,
    )


def _reader_problem(text: str, exc: yaml.reader.ReaderError) -> YamlProblem:
    # Count lines as YAML does (CR, LF, CRLF, NEL, U+2028, U+2029), so positions agree with
    # the marks PyYAML gives everywhere else.
    before = text[: exc.position]
    breaks = list(_LINE_BREAK.finditer(before))
    line = len(breaks) + 1
    column = exc.position - (breaks[-1].end() if breaks else 0) + 1
    return YamlProblem(
        line,
        column,
        (),
        f"the character U+{exc.character:04X} is not allowed in YAML",
        "remove it, or write it as an escape in a double-quoted string",
        syntax=True,
    )


def _syntax_problem(exc: yaml.MarkedYAMLError) -> YamlProblem:
    mark = exc.problem_mark or exc.context_mark
    what = exc.problem or str(exc)
    if exc.context and exc.context != what:
        what = f"{exc.context}, {what}"
    return YamlProblem(
        mark.line + 1 if mark else None,
        mark.column + 1 if mark else None,
        (),
        f"not valid YAML: {what}",
        "fix the syntax at this position (indentation, quotes, brackets)",
        syntax=True,
    )


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "...")


class _ScalarError(ValueError):
    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


class _Builder:
    """Python values from composed nodes, each value's place kept in ``marks`` and every problem
    in ``problems``. An alias is built again wherever it is used, so the values built are counted,
    and a collection may not contain an alias of itself."""

    def __init__(self, json_text: str | None) -> None:
        self._json_text = json_text  # values are read from it, by JSON's rules
        self.marks: dict[Loc, tuple[int, int]] = {}
        self.problems: list[YamlProblem] = []
        self._constructor = yaml.SafeLoader("")
        self._built = 0
        self._open: set[int] = set()  # ids of the collections being built (no cycles)

    def _problem(self, node: yaml.Node, loc: Loc, message: str, fix: str) -> None:
        mark = node.start_mark
        self.problems.append(YamlProblem(mark.line + 1, mark.column + 1, loc, message, fix))
        if len(self.problems) >= MAX_PROBLEMS:  # an alias used many times repeats its problem
            raise YamlDocumentError(self.problems)

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.marks.setdefault(loc, (node.start_mark.line + 1, node.start_mark.column + 1))
        self._built += 1  # counted first, so values refused below are counted too
        if self._built > MAX_VALUES:
            mark = node.start_mark
            raise YamlDocumentError(
                [
                    YamlProblem(
                        mark.line + 1,
                        mark.column + 1,
                        loc,
                        f"the document holds more than {MAX_VALUES:,} values (aliases count "
                        "each time they are used)",
                        "write the values out with fewer aliases",
                    )
                ]
            )
        if not self._tag_allowed(node, loc):
            return None
        if isinstance(node, yaml.ScalarNode):
            try:
                return self._scalar(node)
            except _ScalarError as exc:
                self._problem(node, loc, str(exc), exc.fix)
                return None
        if id(node) in self._open:
            self._problem(
                node,
                loc,
                "an alias here refers to a collection that contains it",
                "point the alias at another anchor, or write the values out",
            )
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, loc)
            return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
        finally:
            self._open.discard(id(node))

    def _tag_allowed(self, node: yaml.Node, loc: Loc) -> bool:
        if isinstance(node, yaml.ScalarNode):
            if node.tag in _SCALAR_TAGS:
                return True
            what = "a value"
        elif isinstance(node, yaml.MappingNode):
            if node.tag == _MAP_TAG:
                return True
            what = "a mapping"
        else:
            if node.tag == _SEQ_TAG:
                return True
            what = "a list"
        self._problem(
            node,
            loc,
            f"the YAML tag {node.tag!r} is not allowed here (expected {what})",
            "remove the tag and write the value as plain text, a number, true/false or null",
        )
        return False

    def _json_value(self, node: yaml.Node) -> Any:
        assert self._json_text is not None
        try:
            return json.loads(self._json_text[node.start_mark.index : node.end_mark.index])
        except ValueError:  # valid JSON that Python will not convert (a 5,000-digit number)
            raise _ScalarError(
                "the number has too many digits to be read",
                "write a smaller number, or quote it to keep it as text",
            ) from None

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        if self._json_text is not None:
            return self._json_value(node)
        if node.tag == _TIMESTAMP_TAG:
            return node.value
        if node.tag == _INT_TAG and _OTHER_BASE_INT.fullmatch(node.value):
            kind = "base 60" if ":" in node.value else "octal, hexadecimal or binary"
            raise _ScalarError(
                f"{_shown(node.value)} is not a decimal integer (YAML 1.1 reads it as {kind})",
                "write the number in decimal digits without a leading zero, or quote it to "
                "keep it as text",
            )
        if node.tag == _FLOAT_TAG and ":" in node.value:
            raise _ScalarError(
                f"{_shown(node.value)} is a base-60 number in YAML 1.1",
                "write the number in decimal, or quote it to keep it as text",
            )
        try:
            return self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, LookupError, TypeError) as exc:
            if "Exceeds the limit" in str(exc):  # int(): more digits than Python converts
                raise _ScalarError(
                    f"{_shown(node.value)} has too many digits to be read as a number",
                    "write a smaller number, or quote it to keep it as text",
                ) from None
            kind = node.tag.rsplit(":", 1)[-1]
            raise _ScalarError(
                f"{_shown(node.value)} cannot be read as {kind} ({str(exc)[:100]})",
                "write the value plainly, without a !! tag",
            ) from None

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, loc)
            if key is None:
                continue
            line = key_node.start_mark.line + 1
            if key in out:
                self._problem(
                    key_node,
                    (*loc, key),
                    f"duplicate key, given twice (first on line {first_line[key]})",
                    "keep one of the entries; YAML would silently use the last",
                )
                continue
            first_line[key] = line
            self.marks[(*loc, key)] = (line, key_node.start_mark.column + 1)
            out[key] = self.build(value_node, (*loc, key))
        return out

    def _key(self, key_node: yaml.Node, loc: Loc) -> str | None:
        """A key as the text written (``1:`` is the key "1"), or None after a problem."""
        if key_node.tag == _MERGE_TAG:
            self._problem(
                key_node,
                loc,
                "YAML merge keys (<<) are not supported",
                "write the keys out in this mapping (anchors and aliases are fine)",
            )
            return None
        if not isinstance(key_node, yaml.ScalarNode):
            self._problem(
                key_node,
                loc,
                "a key must be plain text, not a list or a mapping",
                "write the key as text",
            )
            return None
        if not self._tag_allowed(key_node, loc):
            return None
        if self._json_text is not None:  # a JSON key is a string, with JSON's escapes
            try:
                return str(self._json_value(key_node))
            except _ScalarError as exc:
                self._problem(key_node, loc, str(exc), exc.fix)
                return None
        return str(key_node.value)
