"""The SQLite roads of gateway.db.bulk store and find exactly what SQLAlchemy Core does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    case,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.exc import IntegrityError

from gateway.db.bulk import AnyOf, BulkExecute, BulkInsert, _datetime_text
from gateway.db.engine import RawJSON, RawJSONBytes, make_engine

_META = MetaData()
_ROWS = Table(
    "bulk_rows",
    _META,
    Column("id", Integer, primary_key=True),
    Column("name", String(36), nullable=False),
    Column("at", DateTime(timezone=True), nullable=True),
    Column("km", Float, nullable=True),
    Column("doc", JSON, nullable=False),
)
_WITH_DEFAULT = Table(
    "bulk_defaults",
    _META,
    Column("id", Integer, primary_key=True),
    Column("name", String(36), nullable=False),
    Column("doc", JSON, nullable=False, default=list),
)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'bulk.sqlite'}")
    _META.create_all(engine)
    return engine


def _rows() -> list[dict[str, Any]]:
    plus_two = timezone(timedelta(hours=2))
    return [
        {"name": "a", "at": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), "km": 1.5},
        {"name": "b", "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=plus_two), "km": None},
        {"name": "c", "at": datetime(1, 1, 1), "km": 0.0},
        {"name": "d", "at": None, "km": 1e300},
        {"name": "e", "at": None, "km": -0.0},
    ]


def _stored(engine: Engine, table: Table) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [
            tuple((type(v).__name__, v) for v in row)
            for row in conn.execute(text(f"SELECT * FROM {table.name} ORDER BY id"))
        ]


def test_the_same_text_and_types_as_core(engine: Engine) -> None:
    docs: list[Any] = [
        RawJSON('{"x": [1, 2]}'),
        {"y": "é"},
        [],
        None,
        RawJSONBytes('{"z": "→ é 😀", "n": 1.5e+16}'.encode()),
    ]
    rows = [{**row, "doc": doc} for row, doc in zip(_rows(), docs, strict=True)]
    with engine.begin() as conn:
        conn.execute(insert(_ROWS), rows)
    core = _stored(engine, _ROWS)
    with engine.begin() as conn:
        conn.execute(_ROWS.delete())
        BulkInsert(_ROWS).execute(conn, rows)
    assert _stored(engine, _ROWS) == core
    assert core[0][2] == ("str", "2026-01-02 03:04:05.678901")
    assert core[4][4] == ("str", '{"z": "→ é 😀", "n": 1.5e+16}')  # bytes stored as that text


_SQLITE = sqlite_dialect()
_CORE_DATETIME: Any = DateTime(timezone=True).dialect_impl(_SQLITE).bind_processor(_SQLITE)


@given(
    st.datetimes(
        timezones=st.none()
        | st.builds(timezone, st.timedeltas(timedelta(hours=-23), timedelta(hours=23)))
    )
)
def test_datetime_text_is_sqlalchemys(value: datetime) -> None:
    assert _datetime_text(_CORE_DATETIME)(value) == _CORE_DATETIME(value)


def test_remembered_utc_texts_never_stand_for_another_zones_wall_clock() -> None:
    fast = _datetime_text(_CORE_DATETIME)
    utc_time = datetime(2026, 3, 4, 5, 6, 7, 8, tzinfo=UTC)
    for value in (utc_time, utc_time.astimezone(timezone(timedelta(hours=1))), utc_time):
        assert value == utc_time  # the same instant, so equal (and equal hashes) as datetimes
        assert fast(value) == _CORE_DATETIME(value)
    assert fast(utc_time.replace(tzinfo=None)) == "2026-03-04 05:06:07.000008"


def test_an_update_for_many_rows_stores_what_core_stores(engine: Engine) -> None:
    at = DateTime(timezone=True)
    statement = (
        update(_ROWS)
        .where(_ROWS.c.name == bindparam("b_name"))
        .values(
            at=case(
                (
                    or_(_ROWS.c.at.is_(None), _ROWS.c.at < bindparam("b_at", type_=at)),
                    bindparam("b_at", type_=at),
                ),
                else_=_ROWS.c.at,
            ),
            km=_ROWS.c.km + bindparam("b_km", type_=Float()),
        )
    )
    later = datetime(2027, 1, 1, 12, 0, 0, 5, tzinfo=UTC)
    params = [
        {"b_name": "a", "b_at": later, "b_km": 1.0},  # later: taken
        {"b_name": "b", "b_at": datetime(2000, 1, 1, tzinfo=UTC), "b_km": 2.0},  # earlier: kept
        {"b_name": "d", "b_at": later, "b_km": 3.0},  # NULL before
        {"b_name": "zz", "b_at": later, "b_km": 4.0},  # no such row
    ]
    stored = []
    for bulk in (False, True):
        with engine.begin() as conn:
            conn.execute(_ROWS.delete())
            conn.execute(insert(_ROWS), [{**row, "doc": []} for row in _rows()])
            if bulk:
                BulkExecute(statement).execute(conn, params)
            else:
                conn.execute(statement, params)
        stored.append(_stored(engine, _ROWS))
    assert stored[0] == stored[1]
    assert stored[0][0][2] == ("str", "2027-01-01 12:00:00.000005")


def test_a_column_default_computed_in_python_is_left_to_core(engine: Engine) -> None:
    bulk = BulkInsert(_WITH_DEFAULT)
    with engine.begin() as conn:
        bulk.execute(conn, [{"name": "a"}, {"name": "b"}])
        bulk.execute(conn, [{"name": "c", "doc": RawJSON("[1]")}])
    assert [row[1:] for row in _stored(engine, _WITH_DEFAULT)] == [
        (("str", "a"), ("str", "[]")),
        (("str", "b"), ("str", "[]")),
        (("str", "c"), ("str", "[1]")),
    ]


def test_a_duplicate_key_is_sqlalchemys_integrity_error(engine: Engine) -> None:
    bulk = BulkInsert(_ROWS)
    row = {"id": 1, "name": "a", "at": None, "km": None, "doc": []}
    with engine.begin() as conn:
        bulk.execute(conn, [row])
    with pytest.raises(IntegrityError), engine.begin() as conn:
        bulk.execute(conn, [row, {**row, "id": 2}])


@pytest.mark.parametrize(
    "ids",
    [[], ["a"], ["a", "c", "zz", 'q"uote', "é", "a"], [f"id-{n}" for n in range(2000)]],
)
def test_any_of_finds_what_an_expanding_in_finds(engine: Engine, ids: list[str]) -> None:
    names = ["a", "b", "c", 'q"uote', "é", *(f"id-{n}" for n in range(0, 3000, 3))]
    with engine.begin() as conn:
        conn.execute(insert(_ROWS), [{"name": name, "doc": []} for name in names])
    query = AnyOf(lambda in_ids: select(_ROWS.c.name).where(in_ids(_ROWS.c.name)))
    with engine.connect() as conn:
        assert (conn.dialect.server_version_info or ()) >= (3, 38)  # the json_each road is tested
        found = sorted(query.execute(conn, ids).scalars())
        expanding = select(_ROWS.c.name).where(_ROWS.c.name.in_(bindparam("x", expanding=True)))
        assert found == sorted(conn.execute(expanding, {"x": ids}).scalars())
    assert found == sorted(set(ids) & set(names))
