"""Migrations build the schema the models describe, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect
from sqlmodel import SQLModel

from gateway.db import make_engine, migrate
from gateway.db.engine import alembic_config
from gateway.settings import GatewaySettings
from tests.support.services import Postgres


def _check(engine: Engine) -> None:
    migrate(engine)
    migrate(engine)  # idempotent: a second run applies nothing
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == [], f"models and migrations differ; add a migration: {diff}"
    assert {"appraisal", "inbound_message", "dead_letter", "match", "kiosk_history"} <= set(
        inspect(engine).get_table_names()
    )
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    command.downgrade(cfg, "base")
    assert "appraisal" not in inspect(engine).get_table_names()


def test_migrations_on_sqlite(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        _check(engine)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_migrations_on_postgres(postgres_db: Postgres) -> None:
    url = GatewaySettings(database_url=postgres_db.url).resolved_database_url
    assert url.startswith("postgresql+psycopg://")
    engine = make_engine(url)
    try:
        _check(engine)
    finally:
        engine.dispose()
