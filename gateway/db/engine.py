"""Engine creation and Alembic migrations (applied by every command that touches the database)."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlmodel import create_engine

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class DatabaseUnavailableError(ConnectionError):
    """The database cannot be reached (or its SQLite file cannot be opened)."""


class RawJSON(str):
    """JSON text already serialised (by pydantic, in Rust): stored as is in a JSON column."""

    __slots__ = ()


class RawJSONBytes(bytes):
    """JSON already serialised, as UTF-8 bytes: stored as is in a JSON column.

    On SQLite :class:`gateway.db.bulk.BulkInsert` hands the bytes to SQLite, which stores them
    as text (``CAST(? AS TEXT)``): a str would have to be made from them and then encoded back
    to UTF-8 to be bound, character by character once it holds any non-ASCII one.
    """

    __slots__ = ()


def _json_serializer(value: object) -> str:
    if isinstance(value, RawJSON):
        return str(value)
    if isinstance(value, RawJSONBytes):
        return value.decode()
    return json.dumps(value)


def make_engine(url: str, *, background_checkpoint: bool = False) -> Engine:
    """An engine for ``url``; SQLite gets WAL, full durability, a busy timeout and foreign keys.

    ``synchronous=FULL``: a commit is on disk before it returns, so a receipt (published after
    the commit) never names a message a power cut could still take away. With
    ``background_checkpoint`` the connections never checkpoint the WAL themselves; a
    ``WalCheckpointer`` must then run, so commits on the ingest path don't copy pages back.
    """
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseUnavailableError(
                    f"cannot create the folder of the SQLite database {path}: {exc}; "
                    "check KIOSKMATCH_DATABASE_URL (or KIOSKMATCH_DATA_DIR)"
                ) from exc
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            json_serializer=_json_serializer,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            if background_checkpoint:
                cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        return engine
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=10, json_serializer=_json_serializer
    )


class WalCheckpointer:
    """Checkpoints a SQLite database's WAL from a thread of its own.

    SQLite otherwise checkpoints inside whichever commit takes the WAL past 1,000 pages, and that
    commit (on the ingest thread) copies the pages back and syncs the database file. Here a
    PASSIVE checkpoint runs every ``interval_s`` on its own connection: it never blocks readers
    or writers, and the sqlite3 module releases the GIL while it works.
    """

    def __init__(self, engine: Engine, interval_s: float = 0.5) -> None:
        self._engine = engine
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> WalCheckpointer:
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.checkpoint()

    def checkpoint(self) -> None:
        try:
            with self._engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception:  # the next round tries again; a stuck WAL only grows the file
            logger.warning("WAL checkpoint failed; retrying", exc_info=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.checkpoint()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(engine: Engine) -> None:
    """Apply pending migrations to the database ``engine`` points at.

    Raises ``DatabaseUnavailableError`` (naming the database, not its password) when it cannot
    be reached: this is the first thing every gateway command does with it.
    """
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    try:
        engine.connect().close()
    except (OperationalError, InterfaceError) as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailableError(
            f"cannot reach the database at {engine.url.render_as_string(hide_password=True)}: "
            f"{reason}; check KIOSKMATCH_DATABASE_URL and that the database is running"
        ) from exc
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    logger.debug("database at %s is at the latest migration", engine.url)
