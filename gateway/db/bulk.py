"""Statements of the ingest path that take many rows or ids: Core, with cheaper roads on SQLite.

SQLAlchemy's executemany builds every row's parameters in Python (``construct_params``, then one
bind-processor call per value; SQLite's DATETIME formats each value through a dict of its
parts). At hundreds of rows per commit that costs about as much as SQLite's own work. On SQLite
:class:`BulkInsert` compiles the statement once per set of columns and hands the driver tuples
whose values are converted as SQLAlchemy converts them (its own bind processors, except for
datetimes: the same text for half the work). Other databases take the Core statement as before.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    CursorResult,
    DateTime,
    Dialect,
    Executable,
    String,
    Table,
    Text,
    bindparam,
    cast,
    func,
    insert,
    select,
)

from gateway.db.engine import RawJSONBytes

__all__ = ["AnyOf", "BulkExecute", "BulkInsert"]

_Processor = Callable[[Any], Any]


_UTC_TEXTS: dict[dt.datetime, str] = {}
_UTC_TEXTS_KEPT = 4096  # two batches' worth of messages


def _datetime_text(slow: _Processor) -> _Processor:
    """SQLite DATETIME's text for a datetime from one tuple, ``slow`` (SQLAlchemy's) for the rest.

    SQLAlchemy's processor fills its storage format from a dict of the datetime's fields; the
    same format filled from a tuple gives the same text (the wall-clock fields, any UTC offset
    dropped) in half the time. :func:`_same_text` checks that it still does.
    """
    datetime, utc, texts = dt.datetime, dt.UTC, _UTC_TEXTS
    text = "%04d-%02d-%02d %02d:%02d:%02d.%06d"

    def process(value: Any) -> Any:
        if type(value) is datetime:
            # A UTC time's text is remembered: ingest writes each message's times in two
            # tables. Only UTC ones: equal datetimes in other zones have other wall clocks.
            utc_time = value.tzinfo is utc
            if utc_time and (known := texts.get(value)) is not None:
                return known
            formatted = text % (
                value.year,
                value.month,
                value.day,
                value.hour,
                value.minute,
                value.second,
                value.microsecond,
            )
            if utc_time:
                if len(texts) >= _UTC_TEXTS_KEPT:
                    texts.clear()
                texts[value] = formatted
            return formatted
        return slow(value)

    return process


def _utf8_as_is(slow: _Processor) -> _Processor:
    """JSON serialised as UTF-8 bytes bound as they are; ``slow`` (SQLAlchemy's) for the rest."""

    def process(value: Any) -> Any:
        if type(value) is RawJSONBytes:
            return value
        return slow(value)

    return process


@dataclass(frozen=True)
class _Plan:
    sql: str
    values: Callable[[dict[str, Any]], tuple[Any, ...]]


class _Bulk:
    """A statement run for many rows given as dicts with the same keys: on SQLite compiled once
    per set of keys (a plan), each row a tuple of the positional parameters; elsewhere, or
    where no plan can be made, Core runs it."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._plans: dict[tuple[str, ...], _Plan | None] = {}

    def execute(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        plan = None
        if conn.dialect.name == "sqlite":
            keys = tuple(rows[0])
            if keys not in self._plans:
                self._plans[keys] = self._plan(conn.dialect, keys)
            plan = self._plans[keys]
        if plan is None:
            conn.execute(self.statement, rows)
            return
        values = plan.values
        conn.exec_driver_sql(plan.sql, [values(row) for row in rows])

    def _plan(self, dialect: Dialect, keys: tuple[str, ...]) -> _Plan | None:
        raise NotImplementedError


class BulkInsert(_Bulk):
    """``INSERT INTO table`` for many rows given as dicts with the same keys."""

    def __init__(self, table: Table) -> None:
        super().__init__(insert(table))
        self.table = table

    def _plan(self, dialect: Dialect, keys: tuple[str, ...]) -> _Plan | None:
        """The SQL and a row → parameters function; ``None`` where Core must do it (a column
        default to compute in Python, a statement that is not plainly positional).

        A JSON column's value is written ``CAST(? AS TEXT)``, so that one already serialised as
        UTF-8 bytes (:class:`RawJSONBytes`) is bound as it is and stored as text; any other
        value is text already, which the cast leaves alone.
        """
        casts = {
            key: cast(bindparam(key, type_=column.type), Text)
            for key in keys
            if isinstance((column := self.table.c[key]).type, JSON)
        }
        statement = insert(self.table).values(casts) if casts else insert(self.table)
        compiled: Any = statement.compile(dialect=dialect, column_keys=list(keys))
        names = compiled.positiontup
        if (
            not dialect.positional
            or names is None
            or len(names) < 2
            or sorted(names) != sorted(keys)
            or compiled.insert_prefetch
        ):
            return None
        return _Plan(
            compiled.string, _row_values(dialect, names, [self.table.c[n].type for n in names])
        )


class BulkExecute(_Bulk):
    """A statement with named bind parameters (an UPDATE, say), run for many rows given as
    dicts; on SQLite compiled once, its parameters converted as :class:`BulkInsert` converts
    them."""

    def _plan(self, dialect: Dialect, keys: tuple[str, ...]) -> _Plan | None:
        statement: Any = self.statement
        compiled: Any = statement.compile(dialect=dialect)
        names = compiled.positiontup
        if not dialect.positional or not names or len(names) < 2:
            return None
        types = [compiled.binds[name].type for name in names]
        return _Plan(compiled.string, _row_values(dialect, names, types))


def _row_values(
    dialect: Dialect, names: list[str], types: list[Any]
) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """Row dict → the driver's positional parameters, each converted as SQLAlchemy would."""
    converters: list[tuple[int, _Processor]] = []
    for index, column_type in enumerate(types):
        processor = column_type.dialect_impl(dialect).bind_processor(dialect)
        if processor is None:
            continue
        if isinstance(column_type, DateTime):
            fast = _datetime_text(processor)
            if _same_text(processor, fast):
                processor = fast
        elif isinstance(column_type, JSON):
            processor = _utf8_as_is(processor)
        converters.append((index, processor))
    get = itemgetter(*names)

    def values(row: dict[str, Any]) -> tuple[Any, ...]:
        return _convert(converters, get(row))

    return values


def _convert(converters: list[tuple[int, _Processor]], row: tuple[Any, ...]) -> tuple[Any, ...]:
    if not converters:
        return row
    out = list(row)
    for index, processor in converters:
        out[index] = processor(out[index])
    return tuple(out)


_PROBES = (
    dt.datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=dt.UTC),
    dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    dt.datetime(1, 1, 1),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
)


def _same_text(processor: _Processor, fast: _Processor) -> bool:
    """Whether ``fast`` writes what SQLAlchemy's ``processor`` writes (checked, not assumed:
    a storage format set on the column, or a future SQLAlchemy, keeps its own processor)."""
    return all(processor(probe) == fast(probe) for probe in _PROBES)


class AnyOf:
    """A SELECT whose ``column IN (...)`` takes a list of strings as the parameter ``ids``.

    ``build`` gets a function that makes the ``IN`` condition for a column and returns the
    statement. An expanding ``IN`` renders a placeholder per value and binds each on every
    execution, in Python; on SQLite (3.38+, where JSON is built in) the list travels instead as
    one JSON array that ``json_each`` reads, so the statement is compiled once, whatever the
    list's length, and the values cross to SQLite as one string.
    """

    def __init__(self, build: Callable[[Callable[[Any], Any]], Executable]) -> None:
        self._expanding = build(lambda column: column.in_(bindparam("ids", expanding=True)))
        values = func.json_each(bindparam("ids", type_=String())).table_valued("value")
        self._json_each = build(lambda column: column.in_(select(values.c.value)))

    def execute(
        self, conn: Connection, ids: Iterable[str], params: dict[str, Any] | None = None
    ) -> CursorResult[*tuple[Any, ...]]:
        dialect = conn.dialect
        if dialect.name == "sqlite" and (dialect.server_version_info or ()) >= (3, 38):
            return conn.execute(self._json_each, {**(params or {}), "ids": json.dumps(list(ids))})
        return conn.execute(self._expanding, {**(params or {}), "ids": list(ids)})
