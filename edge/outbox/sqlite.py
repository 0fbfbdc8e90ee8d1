"""The kiosk's durable outbox in SQLite (WAL, synchronous=FULL): nothing leaves before it is here.

A message enters with the next ``seq`` (persisted, so it survives reboots) and stays until the
gateway's receipt names its ``message_id``. Sending does not remove it: an unreceipted message is
due again after ``resend_after_s`` with exponential backoff and jitter, and at once after a
reconnect. Telemetry is dropped oldest first when the outbox passes its byte budget or its age
limit; appraisals, events and commands' results never are.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import IO, Any

from edge.protocol import SCHEMA_FOR_CHANNEL, Channel, WireModel, encode, make_envelope

logger = logging.getLogger(__name__)


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
    applied_at REAL NOT NULL
);
"""


class OutboxFullError(RuntimeError):
    """The disk refused a write: the kiosk raises its disk alarm and keeps what it has."""


class OutboxInUseError(RuntimeError):
    """Another kiosk agent has this outbox open: two would send the same messages twice."""


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
        self.disk_alarm = False
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._claim = _claim(path)
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                # FULL: a message the kiosk was told is queued survives a power cut.
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
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

    def put(self, channel: Channel, body: WireModel, *, created_at: Any = None) -> OutboxItem:
        """Give ``body`` its envelope (new message_id, next seq) and store it durably."""
        if channel not in _PRIORITY or channel not in SCHEMA_FOR_CHANNEL:
            raise ValueError(f"{channel.value} messages do not go through the outbox")
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
                seq = int(row[0]) if row else 1
                envelope = make_envelope(self.kiosk_id, body, seq=seq, created_at=created_at)
                payload = encode(envelope)
                self._db.execute(
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
                    self._db.execute(
                        "INSERT INTO appraisal_log (appraisal_id, message_id, created_at)"
                        " VALUES (?, ?, ?)",
                        (appraisal_id, envelope.message_id, time.time()),
                    )
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('next_seq', ?)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (seq + 1,),
                )
                self._trim_telemetry()
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self._db.execute("ROLLBACK") if self._db.in_transaction else None
                if "disk" in str(exc).lower() or "full" in str(exc).lower():
                    self.disk_alarm = True
                    raise OutboxFullError(f"the outbox at {self.path} cannot grow: {exc}") from exc
                raise
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return OutboxItem(envelope.message_id, seq, channel, payload, 0)

    def _trim_telemetry(self) -> None:
        stale = self._db.execute(
            "DELETE FROM outbox WHERE priority = ? AND created_at < ?",
            (int(Priority.TELEMETRY), time.time() - self.max_age_s),
        ).rowcount
        if stale:
            logger.info("dropped %d telemetry message(s) older than %.0f s", stale, self.max_age_s)
        total = self._db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()[
            0
        ]
        if total <= self.max_bytes:
            # Within budget, and this write went through: whatever raised the alarm is over.
            self.disk_alarm = False
            return
        excess = total - self.max_bytes
        rows = self._db.execute(
            "SELECT message_id, LENGTH(payload) FROM outbox WHERE priority = ? ORDER BY seq",
            (int(Priority.TELEMETRY),),
        ).fetchall()
        dropped = []
        for message_id, size in rows:
            if excess <= 0:
                break
            dropped.append(message_id)
            excess -= size
        self._db.executemany("DELETE FROM outbox WHERE message_id = ?", [(m,) for m in dropped])
        if dropped:
            logger.warning(
                "outbox over %d bytes: dropped the %d oldest telemetry messages",
                self.max_bytes,
                len(dropped),
            )
        if excess > 0 and not self.disk_alarm:
            logger.error(
                "outbox at %s is over its %d-byte budget with messages it never drops "
                "(appraisals, events): check the kiosk's connection to the broker",
                self.path,
                self.max_bytes,
            )
        self.disk_alarm = excess > 0

    def due(self, *, now: float | None = None, limit: int = 100) -> list[OutboxItem]:
        """Messages to send now, oldest seq first."""
        now = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
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
        with self._lock:
            self._db.executemany(
                "UPDATE outbox SET attempts = attempts + 1,"
                " next_attempt_at = ? + MIN(? * (1 << MIN(attempts, 20)), ?) * ?"
                " WHERE message_id = ?",
                rows,
            )

    def ack(self, message_ids: Iterable[str]) -> int:
        """Delete receipted messages; unknown ids (already deleted) are ignored."""
        ids = [(m,) for m in message_ids]
        with self._lock:
            before = self._db.total_changes
            self._db.executemany("DELETE FROM outbox WHERE message_id = ?", ids)
            return self._db.total_changes - before

    def reschedule_all(self) -> None:
        """Make every message due now (after a reconnect)."""
        with self._lock:
            self._db.execute("UPDATE outbox SET next_attempt_at = 0")

    def depth(self, channel: Channel | None = None) -> int:
        """Messages waiting for their receipt (of one ``channel``, or all)."""
        with self._lock:
            if channel is None:
                row = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
            else:
                row = self._db.execute(
                    "SELECT COUNT(*) FROM outbox WHERE channel = ?", (channel.value,)
                ).fetchone()
            return int(row[0])

    def oldest_age_s(self, *, now: float | None = None) -> float | None:
        now = time.time() if now is None else now
        with self._lock:
            row = self._db.execute("SELECT MIN(created_at) FROM outbox").fetchone()
        return None if row[0] is None else max(0.0, now - float(row[0]))

    def pending_ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT message_id FROM outbox")}

    # -- photo uploads (the JPEG files live beside the outbox; this is their queue) ------------

    def enqueue_upload(self, sha256: str, path: Path, size: int) -> None:
        """Queue a photo file for upload; the same photo twice is one upload."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO upload (sha256, path, size, created_at) VALUES (?, ?, ?, ?)",
                (sha256, str(path), size, time.time()),
            )

    def due_uploads(
        self, *, now: float | None = None, limit: int = 10
    ) -> list[tuple[str, Path, int]]:
        now = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "SELECT sha256, path, size FROM upload WHERE next_attempt_at <= ?"
                " ORDER BY created_at LIMIT ?",
                (now, limit),
            ).fetchall()
        return [(sha, Path(path), size) for sha, path, size in rows]

    def upload_done(self, sha256: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM upload WHERE sha256 = ?", (sha256,))

    def upload_failed(self, sha256: str, *, now: float | None = None) -> None:
        """Try again later: resend_after × 2^attempts (capped), ±20% jitter."""
        now = time.time() if now is None else now
        with self._lock:
            self._db.execute(
                "UPDATE upload SET attempts = attempts + 1,"
                " next_attempt_at = ? + MIN(? * (1 << MIN(attempts, 20)), ?) * ?"
                " WHERE sha256 = ?",
                (now, self.resend_after_s, self.max_backoff_s, random.uniform(0.8, 1.2), sha256),
            )

    def upload_depth(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM upload").fetchone()[0])

    def appraisal_ids(self) -> list[str]:
        """Every appraisal this kiosk has queued, oldest first (kept after its receipt)."""
        with self._lock:
            rows = self._db.execute("SELECT appraisal_id FROM appraisal_log ORDER BY created_at")
            return [r[0] for r in rows]

    def claim_command(self, command_id: str) -> bool:
        """Record that ``command_id`` is being applied; False when it already was (apply once)."""
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO applied_command (command_id, applied_at) VALUES (?, ?)",
                (command_id, time.time()),
            )
            return cur.rowcount == 1
