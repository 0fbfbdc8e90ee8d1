"""The kiosk's durable outbox in SQLite (WAL, synchronous=FULL): nothing leaves before it is here.

A message enters with the next ``seq`` (persisted, so it survives reboots) and stays until the
gateway's receipt names its ``message_id``. Sending does not remove it: an unreceipted message is
due again after ``resend_after_s`` with exponential backoff and jitter, and at once after a
reconnect. Telemetry is dropped oldest first when the outbox passes its byte budget or its age
limit; appraisals, events and commands' results never are.

The same database keeps the kiosk's command ledger: a command is ``running`` from the moment it
is claimed until its outcome (``done``, ``failed``, ``rejected``) is recorded in the same
transaction as the event that reports it, so a command found ``running`` when the agent starts
was cut short by a crash or a power cut.

Errors (a storage error also raises :attr:`SqliteOutbox.disk_alarm` until a write succeeds)::

    OutboxError                 any outbox failure
    ├── OutboxInUseError        another kiosk agent has this outbox open
    └── OutboxStorageError      the database refused a read or a write (read-only, I/O, damaged)
        └── OutboxFullError     the disk (or the database's size limit) is full

Opening a file that is not a database, or one that cannot be created, raises :mod:`sqlite3`'s
own error: the agent cannot start on it.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import IO, Any

from edge.protocol import SCHEMA_FOR_CHANNEL, Channel, EventBody, WireModel, encode, make_envelope

logger = logging.getLogger(__name__)

FAULT_LOG_EVERY_S = 60.0  # a storage fault that persists is logged again this often

SCHEMA_VERSION = 1  # PRAGMA user_version of a database this code has migrated


class Priority(IntEnum):
    """Lower sends first within a due batch; only TELEMETRY may be dropped."""

    APPRAISAL = 0
    EVENT = 1
    TELEMETRY = 2


_PRIORITY = {
    Channel.APPRAISALS: Priority.APPRAISAL,
    Channel.EVENTS: Priority.EVENT,
    Channel.TELEMETRY: Priority.TELEMETRY,
}

# The layout of a new database (schema version 1). Older databases are brought to it by
# _MIGRATIONS; both must end in the same tables.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    message_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    channel TEXT NOT NULL,
    priority INTEGER NOT NULL,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_attempt_at, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS appraisal_log (
    appraisal_id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS upload (
    sha256 TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS applied_command (
    command_id TEXT PRIMARY KEY,
    applied_at REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'done',
    appraisal_id TEXT,
    detail TEXT,
    finished_at REAL
);
"""

# Schema version → the columns it added, each with the statement that adds it. Version 1: the
# command ledger records a command as running until its outcome is known. Rows from version 0
# only said "applied", before the work or after it; they are taken as done (what version 0 did
# with them), the DEFAULT above.
_MIGRATIONS: dict[int, tuple[tuple[str, str, str], ...]] = {
    1: (
        (
            "applied_command",
            "state",
            "ALTER TABLE applied_command ADD COLUMN state TEXT NOT NULL DEFAULT 'done'",
        ),
        (
            "applied_command",
            "appraisal_id",
            "ALTER TABLE applied_command ADD COLUMN appraisal_id TEXT",
        ),
        ("applied_command", "detail", "ALTER TABLE applied_command ADD COLUMN detail TEXT"),
        (
            "applied_command",
            "finished_at",
            "ALTER TABLE applied_command ADD COLUMN finished_at REAL",
        ),
    ),
}


class OutboxError(RuntimeError):
    """Base of the outbox's errors."""


class OutboxInUseError(OutboxError):
    """Another kiosk agent has this outbox open: two would send the same messages twice."""


class OutboxStorageError(OutboxError):
    """The outbox's database refused an operation (read-only, I/O error, damaged file).

    ``operation`` says what the kiosk was doing; ``path`` is the database file. The outbox keeps
    what it had: retry once the cause is fixed.
    """

    def __init__(self, message: str, *, path: Path, operation: str) -> None:
        super().__init__(message)
        self.path = path
        self.operation = operation


class OutboxFullError(OutboxStorageError):
    """The disk refused a write: the kiosk raises its disk alarm and keeps what it has."""


class CommandState(StrEnum):
    """Where a command stands in the kiosk's ledger."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    REJECTED = "rejected"


@dataclass(frozen=True)
class CommandRecord:
    command_id: str
    state: CommandState
    appraisal_id: str | None
    detail: str | None
    appraisal_queued: bool  # the appraisal it was claimed for is in the appraisal log


def _claim(path: Path) -> IO[str] | None:
    """An exclusive lock on ``path`` for as long as the returned file stays open (released by the
    kernel when the process dies, kill -9 and power loss included); ``None`` off POSIX."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - kiosks run Linux
        return None
    lock = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115 - held until close()
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise OutboxInUseError(
            f"the outbox {path} is in use by another kiosk agent; stop that one, or give each "
            "agent an outbox of its own (outbox.path in its config)"
        ) from None
    return lock


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring a database to :data:`SCHEMA_VERSION`, in one transaction (all or nothing)."""
    existed = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'outbox'").fetchone()
    db.executescript(_SCHEMA)
    db.execute("BEGIN IMMEDIATE")
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            # Written by a newer agent; its changes are additive, so this one can still use it.
            logger.warning(
                "the outbox %s has schema version %d, newer than this agent's %d; using it as is",
                path,
                version,
                SCHEMA_VERSION,
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for table, column, statement in _MIGRATIONS.get(target, ()):
                columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                if column not in columns:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {target}")
            if existed:
                logger.info("outbox %s migrated to schema version %d", path, target)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _is_full(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", "")
    text = str(exc).lower()
    return name == "SQLITE_FULL" or "disk is full" in text or "database or disk is full" in text


def _what_to_do(exc: sqlite3.Error, path: Path) -> str:
    name = getattr(exc, "sqlite_errorname", "")
    text = str(exc).lower()
    if _is_full(exc):
        return f"free disk space on this kiosk (the outbox is {path})"
    if name.startswith("SQLITE_READONLY") or "readonly" in text or "read-only" in text:
        return f"make {path} and its folder writable, and check the filesystem is not read-only"
    if name.startswith("SQLITE_CORRUPT") or "malformed" in text or "not a database" in text:
        return (
            f"the file {path} is damaged: stop the agent, move it aside (keep it: it may hold "
            "appraisals not yet delivered) and start again"
        )
    return f"check the disk that holds {path}"


@dataclass(frozen=True)
class OutboxItem:
    message_id: str
    seq: int
    channel: Channel
    payload: bytes
    attempts: int


class SqliteOutbox:
    """Thread-safe (one connection behind a lock; SQLite serialises writers anyway)."""

    def __init__(
        self,
        path: Path,
        *,
        kiosk_id: str,
        max_bytes: int = 200_000_000,
        max_age_s: float = 7 * 86400,
        resend_after_s: float = 10.0,
        max_backoff_s: float = 300.0,
    ) -> None:
        self.path = path
        self.kiosk_id = kiosk_id
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.resend_after_s = resend_after_s
        self.max_backoff_s = max_backoff_s
        self._over_budget = False
        self._fault: str | None = None
        self._fault_count = 0
        self._fault_logged_at: float | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._claim = _claim(path)
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                # FULL: a message the kiosk was told is queued survives a power cut.
                self._db.execute("PRAGMA synchronous=FULL")
                _migrate(self._db, path)
            except BaseException:
                self._db.close()
                raise
        except BaseException:
            if self._claim is not None:
                self._claim.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._claim is not None:
                self._claim.close()
                self._claim = None

    # -- health --------------------------------------------------------------------------------

    @property
    def disk_alarm(self) -> bool:
        """True while the outbox is over its byte budget with messages it never drops, or its
        database refuses writes (disk full, read-only, damaged) — until a write succeeds."""
        return self._over_budget or self._fault is not None

    @property
    def fault(self) -> str | None:
        """The storage error that raised the alarm and what to do about it; None when healthy."""
        return self._fault

    @contextmanager
    def _storage(self, operation: str, *, write: bool) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; a database error becomes an :class:`OutboxStorageError`
        and raises the alarm, a successful write clears it."""
        with self._lock:
            try:
                yield self._db
            except (sqlite3.IntegrityError, sqlite3.ProgrammingError):
                self._rollback()
                raise  # a bug, not the storage: let it show as one
            except sqlite3.DatabaseError as exc:
                self._rollback()
                raise self._failed(operation, exc) from exc
            except BaseException:
                self._rollback()
                raise
            if write and self._fault is not None:
                self._recovered()

    @contextmanager
    def _transaction(self, operation: str) -> Iterator[sqlite3.Connection]:
        with self._storage(operation, write=True) as db:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")

    def _rollback(self) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the transaction is gone with the error that ended it

    def _failed(self, operation: str, exc: sqlite3.Error) -> OutboxStorageError:
        advice = _what_to_do(exc, self.path)
        first = self._fault is None
        self._fault = f"{operation}: {exc}; {advice}"
        self._fault_count += 1
        now = time.monotonic()
        if (
            first
            or self._fault_logged_at is None
            or now - self._fault_logged_at >= FAULT_LOG_EVERY_S
        ):
            self._fault_logged_at = now
            logger.error(
                "outbox %s cannot %s (%s; %d failure(s) so far); %s. Messages already queued are "
                "kept and everything is retried",
                self.path,
                operation,
                exc,
                self._fault_count,
                advice,
            )
        error = OutboxFullError if _is_full(exc) else OutboxStorageError
        message = f"the outbox at {self.path} cannot {operation}: {exc}"
        if error is OutboxFullError:
            message = f"the outbox at {self.path} cannot grow: {exc}"
        return error(message, path=self.path, operation=operation)

    def _recovered(self) -> None:
        logger.warning(
            "outbox %s works again after %d failed operation(s)", self.path, self._fault_count
        )
        self._fault, self._fault_count, self._fault_logged_at = None, 0, None

    # -- messages ------------------------------------------------------------------------------

    def put(self, channel: Channel, body: WireModel, *, created_at: Any = None) -> OutboxItem:
        """Give ``body`` its envelope (new message_id, next seq) and store it durably."""
        if channel not in _PRIORITY or channel not in SCHEMA_FOR_CHANNEL:
            raise ValueError(f"{channel.value} messages do not go through the outbox")
        with self._transaction(f"queue a {channel.value} message") as db:
            item = self._insert(db, channel, body, created_at=created_at)
        return item

    def _insert(
        self, db: sqlite3.Connection, channel: Channel, body: WireModel, *, created_at: Any = None
    ) -> OutboxItem:
        """Store one message inside the caller's transaction."""
        row = db.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
        seq = int(row[0]) if row else 1
        envelope = make_envelope(self.kiosk_id, body, seq=seq, created_at=created_at)
        payload = encode(envelope)
        db.execute(
            "INSERT INTO outbox (message_id, seq, channel, priority, payload, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                envelope.message_id,
                seq,
                channel.value,
                int(_PRIORITY[channel]),
                payload,
                time.time(),
            ),
        )
        appraisal_id = getattr(body, "appraisal_id", None)
        if channel is Channel.APPRAISALS and appraisal_id:
            # The kiosk's own record of what it appraised, committed with the message.
            db.execute(
                "INSERT INTO appraisal_log (appraisal_id, message_id, created_at) VALUES (?, ?, ?)",
                (appraisal_id, envelope.message_id, time.time()),
            )
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('next_seq', ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (seq + 1,),
        )
        self._trim_telemetry(db)
        return OutboxItem(envelope.message_id, seq, channel, payload, 0)

    def _trim_telemetry(self, db: sqlite3.Connection) -> None:
        stale = db.execute(
            "DELETE FROM outbox WHERE priority = ? AND created_at < ?",
            (int(Priority.TELEMETRY), time.time() - self.max_age_s),
        ).rowcount
        if stale:
            logger.info("dropped %d telemetry message(s) older than %.0f s", stale, self.max_age_s)
        total = db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()[0]
        if total <= self.max_bytes:
            self._over_budget = False
            return
        excess = total - self.max_bytes
        rows = db.execute(
            "SELECT message_id, LENGTH(payload) FROM outbox WHERE priority = ? ORDER BY seq",
            (int(Priority.TELEMETRY),),
        ).fetchall()
        dropped = []
        for message_id, size in rows:
            if excess <= 0:
                break
            dropped.append(message_id)
            excess -= size
        db.executemany("DELETE FROM outbox WHERE message_id = ?", [(m,) for m in dropped])
        if dropped:
            logger.warning(
                "outbox over %d bytes: dropped the %d oldest telemetry messages",
                self.max_bytes,
                len(dropped),
            )
        if excess > 0 and not self._over_budget:
            logger.error(
                "outbox at %s is over its %d-byte budget with messages it never drops "
                "(appraisals, events): check the kiosk's connection to the broker",
                self.path,
                self.max_bytes,
            )
        self._over_budget = excess > 0

    def due(self, *, now: float | None = None, limit: int = 100) -> list[OutboxItem]:
        """Messages to send now, oldest seq first."""
        now = time.time() if now is None else now
        with self._storage("read the messages due", write=False) as db:
            rows = db.execute(
                "SELECT message_id, seq, channel, payload, attempts FROM outbox"
                " WHERE next_attempt_at <= ? ORDER BY seq LIMIT ?",
                (now, limit),
            ).fetchall()
        return [OutboxItem(m, s, Channel(c), p, a) for m, s, c, p, a in rows]

    def mark_sent(self, message_ids: Iterable[str], *, now: float | None = None) -> None:
        """Schedule the next attempt: resend_after × 2^attempts (capped), ±20% jitter."""
        now = time.time() if now is None else now
        rows = [
            (now, self.resend_after_s, self.max_backoff_s, random.uniform(0.8, 1.2), m)
            for m in message_ids
        ]
        if not rows:
            return
        with self._transaction("record what was sent") as db:
            db.executemany(
                "UPDATE outbox SET attempts = attempts + 1,"
                " next_attempt_at = ? + MIN(? * (1 << MIN(attempts, 20)), ?) * ?"
                " WHERE message_id = ?",
                rows,
            )

    def ack(self, message_ids: Iterable[str]) -> int:
        """Delete receipted messages; unknown ids (already deleted) are ignored."""
        ids = [(m,) for m in message_ids]
        if not ids:
            return 0
        with self._transaction("apply a receipt") as db:
            before = db.total_changes
            db.executemany("DELETE FROM outbox WHERE message_id = ?", ids)
            removed = db.total_changes - before
        return removed

    def reschedule_all(self) -> None:
        """Make every message due now (after a reconnect)."""
        with self._storage("reschedule the queued messages", write=True) as db:
            db.execute("UPDATE outbox SET next_attempt_at = 0")

    def depth(self, channel: Channel | None = None) -> int:
        """Messages waiting for their receipt (of one ``channel``, or all)."""
        with self._storage("count the queued messages", write=False) as db:
            if channel is None:
                row = db.execute("SELECT COUNT(*) FROM outbox").fetchone()
            else:
                row = db.execute(
                    "SELECT COUNT(*) FROM outbox WHERE channel = ?", (channel.value,)
                ).fetchone()
        return int(row[0])

    def oldest_age_s(self, *, now: float | None = None) -> float | None:
        now = time.time() if now is None else now
        with self._storage("read the oldest message", write=False) as db:
            row = db.execute("SELECT MIN(created_at) FROM outbox").fetchone()
        return None if row[0] is None else max(0.0, now - float(row[0]))

    def pending_ids(self) -> set[str]:
        with self._storage("list the queued messages", write=False) as db:
            return {r[0] for r in db.execute("SELECT message_id FROM outbox")}

    # -- photo uploads (the JPEG files live beside the outbox; this is their queue) ------------

    def enqueue_upload(self, sha256: str, path: Path, size: int) -> None:
        """Queue a photo file for upload; the same photo twice is one upload."""
        with self._storage("queue a photo upload", write=True) as db:
            db.execute(
                "INSERT OR IGNORE INTO upload (sha256, path, size, created_at) VALUES (?, ?, ?, ?)",
                (sha256, str(path), size, time.time()),
            )

    def due_uploads(
        self, *, now: float | None = None, limit: int = 10
    ) -> list[tuple[str, Path, int]]:
        now = time.time() if now is None else now
        with self._storage("read the photo uploads due", write=False) as db:
            rows = db.execute(
                "SELECT sha256, path, size FROM upload WHERE next_attempt_at <= ?"
                " ORDER BY created_at LIMIT ?",
                (now, limit),
            ).fetchall()
        return [(sha, Path(path), size) for sha, path, size in rows]

    def upload_done(self, sha256: str) -> None:
        with self._storage("record a finished photo upload", write=True) as db:
            db.execute("DELETE FROM upload WHERE sha256 = ?", (sha256,))

    def upload_failed(self, sha256: str, *, now: float | None = None) -> None:
        """Try again later: resend_after × 2^attempts (capped), ±20% jitter."""
        now = time.time() if now is None else now
        with self._storage("reschedule a photo upload", write=True) as db:
            db.execute(
                "UPDATE upload SET attempts = attempts + 1,"
                " next_attempt_at = ? + MIN(? * (1 << MIN(attempts, 20)), ?) * ?"
                " WHERE sha256 = ?",
                (now, self.resend_after_s, self.max_backoff_s, random.uniform(0.8, 1.2), sha256),
            )

    def upload_depth(self) -> int:
        with self._storage("count the photo uploads", write=False) as db:
            return int(db.execute("SELECT COUNT(*) FROM upload").fetchone()[0])

    def appraisal_ids(self) -> list[str]:
        """Every appraisal this kiosk has queued, oldest first (kept after its receipt)."""
        with self._storage("read the appraisal log", write=False) as db:
            rows = db.execute("SELECT appraisal_id FROM appraisal_log ORDER BY created_at")
            return [r[0] for r in rows]

    # -- the command ledger --------------------------------------------------------------------

    def claim_command(self, command_id: str, *, appraisal_id: str | None = None) -> bool:
        """Record ``command_id`` as running; False when it was claimed before (apply once).

        ``appraisal_id`` is the appraisal the command will produce, so that a restart can tell
        a command whose appraisal was queued from one cut short before it.
        """
        with self._storage("record a command", write=True) as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO applied_command"
                " (command_id, applied_at, state, appraisal_id) VALUES (?, ?, ?, ?)",
                (command_id, time.time(), CommandState.RUNNING.value, appraisal_id),
            )
            return cur.rowcount == 1

    def command(self, command_id: str) -> CommandRecord | None:
        """What the ledger holds for ``command_id``; None if it was never claimed."""
        with self._storage("read the command ledger", write=False) as db:
            rows = self._commands(db, command_id=command_id)
        return rows[0] if rows else None

    def running_commands(self) -> list[CommandRecord]:
        """Commands claimed and not finished, oldest first (after a restart: interrupted)."""
        with self._storage("read the command ledger", write=False) as db:
            return self._commands(db, state=CommandState.RUNNING)

    @staticmethod
    def _commands(
        db: sqlite3.Connection,
        *,
        command_id: str | None = None,
        state: CommandState | None = None,
    ) -> list[CommandRecord]:
        wanted = None if state is None else state.value
        rows = db.execute(
            "SELECT c.command_id, c.state, c.appraisal_id, c.detail, a.appraisal_id IS NOT NULL"
            " FROM applied_command c LEFT JOIN appraisal_log a ON a.appraisal_id = c.appraisal_id"
            " WHERE (?1 IS NULL OR c.command_id = ?1) AND (?2 IS NULL OR c.state = ?2)"
            " ORDER BY c.applied_at",
            (command_id, wanted),
        ).fetchall()
        return [
            CommandRecord(found, CommandState(found_state), appraisal, detail, bool(queued))
            for found, found_state, appraisal, detail, queued in rows
        ]

    def finish_command(self, command_id: str, state: CommandState, event: EventBody) -> OutboxItem:
        """Record a command's outcome and queue the ``event`` reporting it, in one transaction
        (a crash leaves both or neither)."""
        if state is CommandState.RUNNING:
            raise ValueError("a finished command is done, failed or rejected, not running")
        with self._transaction("record a command's outcome") as db:
            db.execute(
                "UPDATE applied_command SET state = ?, detail = ?, finished_at = ?"
                " WHERE command_id = ?",
                (state.value, event.detail, time.time(), command_id),
            )
            item = self._insert(db, Channel.EVENTS, event)
        return item
