"""The outbox under SQLite's own errors, its command ledger, and databases from older agents."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.outbox import (
    CommandState,
    OutboxError,
    OutboxFullError,
    OutboxStorageError,
    SqliteOutbox,
)
from edge.protocol import Channel, EventBody, EventKind, TelemetryBody, new_id
from tests.support.factories import appraisal_body

KIOSK = "dlr-001-k1"


@pytest.fixture
def box(tmp_path: Path) -> Iterator[SqliteOutbox]:
    outbox = SqliteOutbox(tmp_path / "outbox.db", kiosk_id=KIOSK)
    yield outbox
    outbox.close()


def _pragma(box: SqliteOutbox, statement: str) -> int:
    """Change the outbox's own connection between two of its operations."""
    with box._lock:
        row = box._db.execute(statement).fetchone()
    return int(row[0]) if row else 0


def _event(detail: str = "") -> EventBody:
    return EventBody(kind=EventKind.INSPECTION_PROGRESS, detail=detail)


def test_a_full_database_raises_the_alarm_until_a_write_succeeds(
    box: SqliteOutbox, caplog: pytest.LogCaptureFixture
) -> None:
    kept = box.put(Channel.APPRAISALS, appraisal_body())
    _pragma(box, f"PRAGMA max_page_count = {_pragma(box, 'PRAGMA page_count')}")
    with caplog.at_level(logging.ERROR, logger="edge.outbox.sqlite"):
        with pytest.raises(OutboxFullError) as caught:
            for _ in range(100):
                box.put(Channel.TELEMETRY, TelemetryBody(uptime_s=1, config_version="x" * 60))
        for _ in range(3):
            with pytest.raises(OutboxFullError):
                box.put(Channel.EVENTS, _event("y" * 4000))
    assert isinstance(caught.value, OutboxStorageError) and isinstance(caught.value, OutboxError)
    assert caught.value.path == box.path and caught.value.operation.startswith("queue a")
    assert box.disk_alarm and "free disk space" in str(box.fault)
    # Said once, with what to do, not once per failed write.
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "free disk space" in errors[0], errors
    assert box.pending_ids() >= {kept.message_id}  # reads still work; nothing was lost

    _pragma(box, "PRAGMA max_page_count = 1073741823")
    box.put(Channel.EVENTS, _event())
    assert not box.disk_alarm and box.fault is None


def test_a_read_only_database_fails_receipts_and_schedules_and_recovers(box: SqliteOutbox) -> None:
    item = box.put(Channel.APPRAISALS, appraisal_body())
    _pragma(box, "PRAGMA query_only = ON")
    for operation in (
        lambda: box.ack([item.message_id]),
        lambda: box.mark_sent([item.message_id]),
        box.reschedule_all,
        lambda: box.claim_command("c1"),
    ):
        with pytest.raises(OutboxStorageError) as caught:
            operation()
        assert not isinstance(caught.value, OutboxFullError)
    assert box.disk_alarm and "writable" in str(box.fault)
    assert [i.message_id for i in box.due()] == [item.message_id]  # reads go on

    _pragma(box, "PRAGMA query_only = OFF")
    assert box.ack([item.message_id]) == 1
    assert box.depth() == 0 and not box.disk_alarm


class _DamagedConnection:
    def __init__(self, real: sqlite3.Connection) -> None:
        self.real = real

    def execute(self, *_args: object) -> sqlite3.Cursor:
        raise sqlite3.DatabaseError("database disk image is malformed")

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


def test_a_damaged_database_says_to_move_the_file_aside(box: SqliteOutbox) -> None:
    real = box._db
    box._db = _DamagedConnection(real)  # type: ignore[assignment]
    try:
        with pytest.raises(OutboxStorageError, match="malformed"):
            box.due()
        assert box.disk_alarm and "move it aside" in str(box.fault)
    finally:
        box._db = real
    assert box.due() == []


def test_programming_errors_are_not_taken_for_storage_faults(box: SqliteOutbox) -> None:
    box.close()
    with pytest.raises(sqlite3.ProgrammingError):
        box.depth()
    assert not box.disk_alarm


# -- the command ledger ------------------------------------------------------------------------


def test_a_command_runs_until_its_outcome_is_recorded_with_its_event(box: SqliteOutbox) -> None:
    a1 = new_id()
    assert box.claim_command("c1", appraisal_id=a1) is True
    assert box.claim_command("c1", appraisal_id=a1) is False
    record = box.command("c1")
    assert record is not None and record.state is CommandState.RUNNING
    assert not record.appraisal_queued and record.appraisal_id == a1
    assert [r.command_id for r in box.running_commands()] == ["c1"]

    box.put(Channel.APPRAISALS, appraisal_body(appraisal_id=a1))
    record = box.command("c1")
    assert record is not None and record.appraisal_queued

    event = EventBody(kind=EventKind.COMMAND_DONE, command_id="c1", detail=f"appraisal {a1} queued")
    item = box.finish_command("c1", CommandState.DONE, event)
    record = box.command("c1")
    assert record is not None and record.state is CommandState.DONE
    assert record.detail == f"appraisal {a1} queued" and box.running_commands() == []
    assert json.loads(item.payload)["body"]["kind"] == "command_done"
    assert box.command("unknown") is None
    with pytest.raises(ValueError, match="not running"):
        box.finish_command("c1", CommandState.RUNNING, event)


def test_an_outcome_that_cannot_be_stored_leaves_the_command_running(box: SqliteOutbox) -> None:
    box.claim_command("c1")
    depth = box.depth()
    _pragma(box, "PRAGMA query_only = ON")
    with pytest.raises(OutboxStorageError):
        box.finish_command(
            "c1", CommandState.FAILED, EventBody(kind=EventKind.COMMAND_FAILED, command_id="c1")
        )
    _pragma(box, "PRAGMA query_only = OFF")
    record = box.command("c1")
    assert record is not None and record.state is CommandState.RUNNING  # both or neither
    assert box.depth() == depth


# -- databases written by older agents ----------------------------------------------------------

# The layout agents wrote before the outbox had a schema version (user_version 0).
_VERSION_0 = """
CREATE TABLE outbox (
    message_id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, channel TEXT NOT NULL,
    priority INTEGER NOT NULL, payload BLOB NOT NULL, created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL DEFAULT 0
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, seq);
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE appraisal_log (
    appraisal_id TEXT PRIMARY KEY, message_id TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE upload (
    sha256 TEXT PRIMARY KEY, path TEXT NOT NULL, size INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE applied_command (command_id TEXT PRIMARY KEY, applied_at REAL NOT NULL);
INSERT INTO meta VALUES ('next_seq', 42);
INSERT INTO applied_command VALUES ('old-command', 1700000000.0);
"""


def test_a_version_0_database_is_migrated_in_place(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(_VERSION_0)
    db.close()
    with caplog.at_level(logging.INFO, logger="edge.outbox.sqlite"):
        box = SqliteOutbox(path, kiosk_id=KIOSK)
    try:
        assert any("migrated to schema version 1" in r.getMessage() for r in caplog.records)
        # What a version-0 agent recorded was "applied": it stays applied (done), not re-run.
        old = box.command("old-command")
        assert old is not None and old.state is CommandState.DONE and old.appraisal_id is None
        assert box.running_commands() == []
        assert box.put(Channel.EVENTS, _event()).seq == 42  # the seq goes on
        assert box.claim_command("new-command", appraisal_id="a2")
    finally:
        box.close()
    box = SqliteOutbox(path, kiosk_id=KIOSK)  # again: nothing left to migrate
    try:
        assert _pragma(box, "PRAGMA user_version") == 1
        assert [r.command_id for r in box.running_commands()] == ["new-command"]
    finally:
        box.close()


def test_a_version_0_agent_can_still_write_a_migrated_database(tmp_path: Path) -> None:
    # A kiosk rolled back to the previous agent: its insert names only the old columns.
    path = tmp_path / "o.db"
    SqliteOutbox(path, kiosk_id=KIOSK).close()
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT OR IGNORE INTO applied_command (command_id, applied_at) VALUES ('c', 1.0)"
        )
    db.close()
    box = SqliteOutbox(path, kiosk_id=KIOSK)
    try:
        record = box.command("c")
        assert record is not None and record.state is CommandState.DONE
    finally:
        box.close()
