"""Errors raised by the matching package.

::

    MatchingError                 base of everything raised here
    ├── ProgramError              a program document is invalid (file, line, field, value, fix)
    │   └── ProgramSetError       programs that are valid alone but not together (duplicate ids)
    └── MatchInputError           collateral/request arrays the engine cannot evaluate

The engine itself never raises for a car or a customer that does not qualify: that is a result
(an ineligible match with its reasons), not an error.
"""

from __future__ import annotations

from dataclasses import dataclass


class MatchingError(Exception):
    """Base class for errors raised by :mod:`gateway.matching`."""


@dataclass(frozen=True)
class ProgramIssue:
    """One problem in one program document, located as precisely as the source allows."""

    source: str
    line: int | None
    column: int | None
    field: str
    message: str
    value: object = None
    fix: str | None = None

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.field or '(document)'}: {self.message}"
        if self.value is not None:
            text += f" (got {self.value!r})"
        if self.fix:
            text += f". Fix: {self.fix}"
        return text


class ProgramError(MatchingError):
    """A lender program could not be loaded; ``issues`` lists every problem found.

    ``source``/``line``/``field`` describe the first issue so a caller can point at it directly.
    """

    def __init__(self, issues: list[ProgramIssue]) -> None:
        self.issues = list(issues)
        super().__init__(self._text())

    @property
    def source(self) -> str:
        return self.issues[0].source if self.issues else ""

    @property
    def file(self) -> str:
        """The file (or source name) of the first issue; the same as ``source``."""
        return self.source

    @property
    def line(self) -> int | None:
        return self.issues[0].line if self.issues else None

    @property
    def field(self) -> str:
        return self.issues[0].field if self.issues else ""

    def _text(self) -> str:
        if not self.issues:
            return "invalid lender program"
        head = f"{len(self.issues)} problem(s) in lender program {self.issues[0].source}"
        return head + ":\n" + "\n".join(f"  - {issue}" for issue in self.issues)


class ProgramSetError(ProgramError):
    """Programs that are each valid but cannot be used together (e.g. the same id twice)."""


class MatchInputError(MatchingError, ValueError):
    """Collateral and requests the engine cannot evaluate (e.g. lists of different lengths)."""
