"""The gateway's SQLite: commits are durable before a receipt can name them, and the WAL is
checkpointed by its own thread rather than inside an ingest commit."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from gateway.db import WalCheckpointer, make_engine


def _pragma(engine_url: str, name: str, background: bool) -> object:
    engine = make_engine(engine_url, background_checkpoint=background)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql(f"PRAGMA {name}").scalar()
    finally:
        engine.dispose()


def test_commits_are_synchronous_full_and_wal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    assert _pragma(url, "journal_mode", False) == "wal"
    assert _pragma(url, "synchronous", False) == 2  # FULL
    assert _pragma(url, "wal_autocheckpoint", False) == 1000  # SQLite's own default
    assert _pragma(url, "wal_autocheckpoint", True) == 0  # left to the checkpointer


def test_checkpointer_copies_the_wal_back(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"
    wal = tmp_path / "gw.db-wal"
    engine = make_engine(f"sqlite:///{db}", background_checkpoint=True)

    def commit_rows() -> int:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": "x" * 4000}] * 300)
        return wal.stat().st_size

    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
        sizes = [commit_rows() for _ in range(5)]
        # No commit checkpoints: the WAL holds all five (~300 pages each, past SQLite's 1,000).
        assert sizes == sorted(sizes) and sizes[-1] > 4 * (sizes[1] - sizes[0])
        checkpointer = WalCheckpointer(engine, interval_s=0.05).start()
        checkpointer.stop()  # stop() checkpoints once more, after the thread has run
        # Everything was copied back, so the next commit starts the WAL from its beginning.
        assert commit_rows() == sizes[-1]
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1800
    finally:
        engine.dispose()
