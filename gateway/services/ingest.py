"""Idempotent ingest of kiosk messages: one transaction per batch, receipts after commit.

The caller (the MQTT worker) hands over a batch of raw messages; :func:`ingest_batch` validates
each, stores what is new, counts what it already had, keeps every invalid payload as a dead letter
with its reason, and commits once. Only after the commit may the caller publish the receipts it
returns and acknowledge the MQTT messages.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    Table,
    bindparam,
    case,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col

from edge.protocol import (
    MAX_PAYLOAD_BYTES,
    EventBody,
    EventKind,
    KioskState,
    ProtocolError,
    StatusBody,
    TelemetryBody,
    decode,
    is_valid_kiosk_id,
    parse_topic,
)
from gateway.db.bulk import AnyOf, BulkExecute, BulkInsert
from gateway.db.engine import RawJSON, RawJSONBytes
from gateway.db.models import (
    Appraisal,
    AppraisalPhoto,
    AppraisalRequest,
    CommandRow,
    DeadLetter,
    InboundMessage,
    Kiosk,
    KioskHistory,
)
from gateway.services import fraud
from gateway.services.fraud import PhotoIndex
from gateway.services.wire import (
    AppraisalView,
    EnvelopeView,
    decode_appraisal,
    is_appraisal,
    report_json,
)

logger = logging.getLogger(__name__)

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(slots=True)
class Inbound:
    """A message as it came off the broker (not frozen: one is made per message, and a frozen
    dataclass sets each field through ``object.__setattr__``)."""

    topic: str
    payload: bytes
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # Sent by the broker because we (re)subscribed, not by the kiosk (a retained status):
    # seeing it again after a restart is no duplicate delivery.
    retained: bool = False


_Decoded = tuple[Inbound, EnvelopeView | ProtocolError]


@dataclass
class IngestOutcome:
    receipts: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    new_appraisals: list[str] = field(default_factory=list)
    kiosks_online: list[str] = field(default_factory=list)
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0

    def merge(self, other: IngestOutcome) -> None:
        """Add ``other``'s receipts and counts to this outcome."""
        for kiosk, ids in other.receipts.items():
            self.receipts[kiosk].extend(ids)
        self.new_appraisals += other.new_appraisals
        self.kiosks_online += other.kiosks_online
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.dead_letters += other.dead_letters


def ingest_batch(
    session: Session, batch: Sequence[Inbound], *, photo_index: PhotoIndex | None = None
) -> IngestOutcome:
    """Store a batch in one transaction; on a race with another worker, fall back to one by one.

    ``photo_index`` enables the cross-appraisal photo-reuse check.
    """
    return _commit(session, [(item, _decode_or_reason(item)) for item in batch], photo_index)


def _commit(
    session: Session, decoded: Sequence[_Decoded], photo_index: PhotoIndex | None
) -> IngestOutcome:
    try:
        outcome = _ingest(session, decoded, photo_index)
        session.commit()
        return outcome
    except IntegrityError:
        # Another worker committed one of these message_ids between our check and our insert.
        session.rollback()
        if len(decoded) == 1:
            outcome = _ingest(session, decoded, photo_index)
            session.commit()
            return outcome
        merged = IngestOutcome()
        for one in decoded:
            merged.merge(_commit(session, [one], photo_index))
        return merged


def refuse(session: Session, item: Inbound, reason: str) -> IngestOutcome:
    """Keep ``item`` as a dead letter with ``reason``, committed, and receipt it when possible.

    For a message the database itself refused (the protocol let it through): kept, not lost,
    and not redelivered forever.
    """
    session.rollback()
    outcome = IngestOutcome()
    _dead_letter(session, item, reason.replace("\x00", "\\0")[:2000], outcome)
    session.commit()
    return outcome


def _table(model: type[SQLModel]) -> Table:
    table: Table = cast(Any, model).__table__
    return table


_NO_FLAGS = RawJSON("[]")  # most appraisals: no need to serialise an empty list for each
_INBOUND = _table(InboundMessage)
_KIOSK = _table(Kiosk)
_APPRAISAL = _table(Appraisal)
_REQUEST = _table(AppraisalRequest)
_INSERT_INBOUND = BulkInsert(_INBOUND)
_INSERT_APPRAISAL = BulkInsert(_APPRAISAL)
_INSERT_PHOTO = BulkInsert(_table(AppraisalPhoto))
_INSERT_HISTORY = BulkInsert(_table(KioskHistory))

# One statement per batch for every kiosk heard from. Computed in the database, so two workers
# sharing a subscription never move a kiosk's last seq (or last seen) backwards, nor lose a count.
_KIOSK_SEEN = BulkExecute(
    update(_KIOSK)
    .where(_KIOSK.c.kiosk_id == bindparam("b_kiosk"))
    .values(
        last_seen_at=case(
            (
                or_(
                    _KIOSK.c.last_seen_at.is_(None),
                    _KIOSK.c.last_seen_at < bindparam("b_seen", type_=DateTime(timezone=True)),
                ),
                bindparam("b_seen", type_=DateTime(timezone=True)),
            ),
            else_=_KIOSK.c.last_seen_at,
        ),
        last_seq=case(
            (
                or_(
                    _KIOSK.c.last_seq.is_(None),
                    _KIOSK.c.last_seq < bindparam("b_seq", type_=BigInteger()),
                ),
                bindparam("b_seq", type_=BigInteger()),
            ),
            else_=_KIOSK.c.last_seq,
        ),
        out_of_order=_KIOSK.c.out_of_order + bindparam("b_ooo", type_=Integer()),
    )
)
# Built once: building a statement (and its cache key) per batch costs as much as running it.
_KNOWN_MESSAGES = AnyOf(
    lambda in_ids: select(_INBOUND.c.message_id, _INBOUND.c.kiosk_id).where(
        in_ids(_INBOUND.c.message_id)
    )
)
_KNOWN_KIOSKS = AnyOf(
    lambda in_ids: select(_KIOSK.c.kiosk_id, _KIOSK.c.last_seq).where(in_ids(_KIOSK.c.kiosk_id))
)
_KNOWN_APPRAISALS = AnyOf(
    lambda in_ids: select(_APPRAISAL.c.appraisal_id).where(in_ids(_APPRAISAL.c.appraisal_id))
)
_REQUESTED_ON = AnyOf(
    lambda in_ids: select(_REQUEST.c.appraisal_id, _REQUEST.c.kiosk_id).where(
        in_ids(_REQUEST.c.appraisal_id)
    )
)
_DUPLICATE = (
    update(_INBOUND)
    .where(_INBOUND.c.message_id == bindparam("b_message_id"))
    .values(duplicates=_INBOUND.c.duplicates + 1)
)


@dataclass
class _KioskSeen:
    """What one batch says about a kiosk's sequence: the highest seq, how many came late."""

    last_seq: int | None
    seen_at: datetime
    out_of_order: int = 0


class _Writes:
    """Rows of one batch, written with one statement per table (the ORM's per-row cost adds up)."""

    def __init__(self, session: Session, last_seqs: dict[str, int | None]) -> None:
        self.session = session
        self.last_seqs = last_seqs
        self.seen: dict[str, _KioskSeen] = {}
        self.kiosks: dict[str, Kiosk] = {}
        self.inbound: list[dict[str, Any]] = []
        self.duplicates: list[dict[str, Any]] = []
        self.appraisals: list[dict[str, Any]] = []
        self.appraisal_ids: set[str] = set()
        self.bodies: list[AppraisalView] = []
        self.photos: list[dict[str, Any]] = []
        self.history: list[dict[str, Any]] = []

    def kiosk(self, kiosk_id: str) -> Kiosk:
        """The kiosk's row as an ORM object, for the rare messages that change its state."""
        kiosk = self.kiosks.get(kiosk_id)
        if kiosk is None:
            kiosk = self.session.get(Kiosk, kiosk_id)
            assert kiosk is not None, "inserted before the batch is applied"
            self.kiosks[kiosk_id] = kiosk
        return kiosk

    def heard(self, env: EnvelopeView, received_at: datetime) -> None:
        seen = self.seen.get(env.kiosk_id)
        if seen is None:
            seen = self.seen[env.kiosk_id] = _KioskSeen(
                self.last_seqs.get(env.kiosk_id), received_at
            )
        seen.seen_at = max(seen.seen_at, received_at)
        if env.seq is None:
            return
        if seen.last_seq is not None and env.seq <= seen.last_seq:
            seen.out_of_order += 1
            logger.info(
                "kiosk %s sent seq %d after %d (a resend or reordering; stored anyway)",
                env.kiosk_id,
                env.seq,
                seen.last_seq,
            )
        else:
            seen.last_seq = env.seq

    def flush(self) -> None:
        conn = self.session.connection()
        if self.seen:
            _KIOSK_SEEN.execute(
                conn,
                [
                    {
                        "b_kiosk": kiosk_id,
                        "b_seen": seen.seen_at,
                        "b_seq": seen.last_seq,
                        "b_ooo": seen.out_of_order,
                    }
                    # In kiosk order: two workers' batches lock kiosk rows in the same order,
                    # so PostgreSQL never has to break a deadlock between them.
                    for kiosk_id, seen in sorted(self.seen.items())
                ],
            )
        # Core executemany (no per-row ORM bookkeeping for rows nobody reads back), on SQLite
        # with the statement compiled once and no per-row parameter building in SQLAlchemy.
        _INSERT_INBOUND.execute(conn, self.inbound)
        _INSERT_APPRAISAL.execute(conn, self.appraisals)
        _INSERT_PHOTO.execute(conn, self.photos)
        _INSERT_HISTORY.execute(conn, self.history)
        if self.duplicates:  # after the inserts: a copy may follow its original in one batch
            conn.execute(_DUPLICATE, self.duplicates)


def _ensure_kiosks(session: Session, kiosk_ids: set[str]) -> dict[str, int | None]:
    """Each kiosk's last seq, inserting the kiosks never seen before (two workers may race)."""
    conn = session.connection()
    last_seqs: dict[str, int | None] = {
        kiosk_id: last_seq for kiosk_id, last_seq in _KNOWN_KIOSKS.execute(conn, sorted(kiosk_ids))
    }
    missing = sorted(kiosk_ids - last_seqs.keys())
    if missing:
        dialect = conn.dialect.name
        rows = [{"kiosk_id": kiosk_id} for kiosk_id in missing]
        if dialect in ("sqlite", "postgresql"):
            module = sqlite_dialect if dialect == "sqlite" else postgresql_dialect
            conn.execute(module.insert(_KIOSK).on_conflict_do_nothing(), rows)
        else:  # a race here ends in IntegrityError, and ingest_batch retries one by one
            conn.execute(insert(_KIOSK), rows)
    return last_seqs


def _ingest(
    session: Session, decoded: Sequence[_Decoded], photo_index: PhotoIndex | None
) -> IngestOutcome:
    outcome = IngestOutcome()
    valid: list[tuple[Inbound, EnvelopeView]] = []
    for item, env in decoded:
        if isinstance(env, ProtocolError):
            _dead_letter(session, item, env.reason, outcome)
        else:
            valid.append((item, env))
    valid = _with_readable_times(session, valid, outcome)
    valid = _answered_by_the_kiosk_asked(session, valid, outcome)
    if not valid:
        return outcome

    conn = session.connection()
    # message id -> the kiosk that sent it first
    known: dict[str, str] = {
        message_id: kiosk_id
        for message_id, kiosk_id in _KNOWN_MESSAGES.execute(
            conn, list({env.message_id for _, env in valid})
        )
    }
    writes = _Writes(session, _ensure_kiosks(session, {env.kiosk_id for _, env in valid}))
    appraisal_ids = [env.body.appraisal_id for _, env in valid if is_appraisal(env.body)]
    if appraisal_ids:
        writes.appraisal_ids = set(_KNOWN_APPRAISALS.execute(conn, appraisal_ids).scalars())
    for item, env in valid:
        first_sender = known.get(env.message_id)
        if first_sender is not None and first_sender != env.kiosk_id:
            # Not a copy: another kiosk's message id. Receipting it as a duplicate would make
            # this kiosk drop a message the gateway never stored.
            reason = f"message_id {env.message_id} was already used by kiosk {first_sender}"
            _dead_letter(session, item, reason, outcome)
            continue
        if first_sender is not None:
            if not item.retained:
                outcome.duplicates += 1
                writes.duplicates.append({"b_message_id": env.message_id})
        else:
            known[env.message_id] = env.kiosk_id
            writes.inbound.append(
                {
                    "message_id": env.message_id,
                    "kiosk_id": env.kiosk_id,
                    "schema_name": env.schema_,
                    "seq": env.seq,
                    "created_at": _utc(env.created_at),
                    "received_at": item.received_at,
                    "duplicates": 0,
                }
            )
            _apply(writes, item, env, outcome)
            outcome.stored += 1
        if env.seq is not None:
            outcome.receipts[env.kiosk_id].append(env.message_id)
    if writes.bodies:
        flags = fraud.check_appraisals(session, writes.bodies, photo_index)
        for row in writes.appraisals:
            found = flags.get(row["appraisal_id"])
            row["gateway_flags"] = found if found else _NO_FLAGS
    writes.flush()
    return outcome


def _decode_or_reason(item: Inbound) -> EnvelopeView | ProtocolError:
    """The message in ``item``, or why it is invalid.

    Appraisals take the fast path when they can (``gateway.services.wire``, which accepts only
    what pydantic accepts, with the same values); whatever it leaves (other channels, anything
    unusual, every invalid payload) is decoded by :func:`edge.protocol.decode`, which also
    names what is wrong.
    """
    try:
        topic = parse_topic(item.topic)
    except ProtocolError:
        topic = None
    if topic is not None:
        envelope = decode_appraisal(topic, item.payload)
        if envelope is not None:
            return envelope
    try:
        return decode(item.topic, item.payload)
    except ProtocolError as exc:
        return exc


def _with_readable_times(
    session: Session, valid: list[tuple[Inbound, EnvelopeView]], outcome: IngestOutcome
) -> list[tuple[Inbound, EnvelopeView]]:
    """``valid`` without messages whose timestamps leave years 1 to 9999 once in UTC (those
    become dead letters): ``0001-01-01T00:00:00+01:00`` is valid RFC 3339, but PostgreSQL would
    store it and then fail every read of its row, and of the kiosk's."""
    kept = []
    for item, env in valid:
        body = env.body
        if not _in_utc_range(env.created_at):
            bad = ("created_at", env.created_at)
        elif is_appraisal(body) and not _in_utc_range(body.started_at):
            bad = ("body.started_at", body.started_at)
        else:
            kept.append((item, env))
            continue
        reason = f"{bad[0]} {bad[1].isoformat()} is outside years 1 to 9999 once in UTC"
        _dead_letter(session, item, reason, outcome)
    return kept


def _in_utc_range(value: datetime) -> bool:
    if value.tzinfo is UTC:  # the fast path's timestamps: in range as they are
        return True
    try:
        _utc(value)
    except OverflowError:
        return False
    return True


def _answered_by_the_kiosk_asked(
    session: Session, valid: list[tuple[Inbound, EnvelopeView]], outcome: IngestOutcome
) -> list[tuple[Inbound, EnvelopeView]]:
    """``valid`` without appraisals that a dealer asked of another kiosk (those become dead
    letters): a kiosk cannot answer, or overwrite, an appraisal requested on someone else's."""
    ids = [env.body.appraisal_id for _, env in valid if is_appraisal(env.body)]
    if not ids:
        return valid
    asked: dict[str, str] = {
        appraisal_id: kiosk_id
        for appraisal_id, kiosk_id in _REQUESTED_ON.execute(session.connection(), ids)
    }
    if not asked:
        return valid
    kept = []
    for item, env in valid:
        body = env.body
        if is_appraisal(body) and asked.get(body.appraisal_id, env.kiosk_id) != (env.kiosk_id):
            reason = (
                f"appraisal {body.appraisal_id} was requested on kiosk "
                f"{asked[body.appraisal_id]}, not on {env.kiosk_id}"
            )
            _dead_letter(session, item, reason, outcome)
            continue
        kept.append((item, env))
    return kept


DEAD_LETTER_KEEP_BYTES = 2 * MAX_PAYLOAD_BYTES
"""The most of a dead letter's payload kept: every valid message fits, with room to see why a
larger one was refused."""
_MAX_TOPIC_CHARS = 1024


def _dead_letter(session: Session, item: Inbound, reason: str, outcome: IngestOutcome) -> None:
    kiosk_id, message_id = _salvage_ids(item)
    # Receipt it so the kiosk lets go: resending an invalid message would never help.
    if kiosk_id and message_id:
        outcome.receipts[kiosk_id].append(message_id)
    digest = hashlib.sha256(item.topic.encode() + b"\0" + item.payload).hexdigest()
    # The same bytes on the same topic are the same message delivered again (a broker resends
    # what was not acknowledged before a restart): counted on its row, not kept twice.
    seen = (
        session.execute(select(DeadLetter).where(col(DeadLetter.digest) == digest).limit(1))
        .scalars()
        .first()
    )
    if seen is not None:
        if not item.retained:
            seen.duplicates += 1
            session.add(seen)
            outcome.duplicates += 1
        return
    logger.warning("dead letter on %s: %s", item.topic[:200], reason)
    payload = item.payload
    if len(payload) > DEAD_LETTER_KEEP_BYTES:
        # The digest is of the whole; a flood of large payloads must not fill the database.
        reason += (
            f" (payload of {len(payload):,} bytes, sha256 {digest}: the first "
            f"{DEAD_LETTER_KEEP_BYTES:,} kept)"
        )
        payload = payload[:DEAD_LETTER_KEEP_BYTES]
    session.add(
        DeadLetter(
            topic=item.topic[:_MAX_TOPIC_CHARS],
            kiosk_id=kiosk_id,
            message_id=message_id,
            reason=reason,
            payload=payload,
            received_at=item.received_at,
            digest=digest,
        )
    )
    outcome.dead_letters += 1


def _salvage_ids(item: Inbound) -> tuple[str | None, str | None]:
    """The topic's kiosk and the payload's message_id, when they can be read at all."""
    try:
        kiosk_id: str | None = parse_topic(item.topic).kiosk_id
    except ProtocolError:
        return None, None
    message_id = None
    try:
        # Numbers stay text: a 5,000-digit one would stop int() (and hide the id beside it).
        raw = json.loads(item.payload, parse_int=str, parse_float=str, parse_constant=str)
        candidate = raw.get("message_id") if isinstance(raw, dict) else None
        # Only a well-formed id is receipted: the receipt's schema would refuse any other.
        if isinstance(candidate, str) and _UUID.fullmatch(candidate.lower()):
            message_id = candidate.lower()
    except (ValueError, UnicodeDecodeError, RecursionError):
        pass
    if kiosk_id is not None and not is_valid_kiosk_id(kiosk_id):
        kiosk_id = None
    return kiosk_id, message_id


def _apply(writes: _Writes, item: Inbound, env: EnvelopeView, outcome: IngestOutcome) -> None:
    writes.heard(env, item.received_at)
    # decode() checked that the body's schema belongs on the topic's channel.
    body = env.body
    if is_appraisal(body):
        _store_appraisal(writes, item, env, body, outcome)
    elif isinstance(body, TelemetryBody):
        kiosk = writes.kiosk(env.kiosk_id)
        data = body.model_dump(mode="json")
        # Heartbeats can arrive out of order after an outage; the latest by creation wins.
        at = _happened_at(env, item)
        if kiosk.telemetry_at is None or _aware(kiosk.telemetry_at) <= at:
            kiosk.telemetry = data
            kiosk.telemetry_at = at
        kiosk.agent_version = body.agent_version or kiosk.agent_version
        writes.history.append(
            {
                "kiosk_id": env.kiosk_id,
                "kind": "telemetry",
                "at": _utc(env.created_at),
                "data": data,
            }
        )
    elif isinstance(body, StatusBody):
        _apply_status(writes.kiosk(env.kiosk_id), env, _happened_at(env, item), body, outcome)
        writes.history.append(
            {
                "kiosk_id": env.kiosk_id,
                "kind": "status",
                "at": _utc(env.created_at),
                "data": body.model_dump(mode="json"),
            }
        )
    elif isinstance(body, EventBody):
        _apply_event(writes.session, env.kiosk_id, body)


def _store_appraisal(
    writes: _Writes,
    item: Inbound,
    env: EnvelopeView,
    body: AppraisalView,
    outcome: IngestOutcome,
) -> None:
    if body.appraisal_id in writes.appraisal_ids:
        # A new message_id for an appraisal we have: a kiosk re-created the message (e.g. after a
        # restore). Keep the first; it is the one lenders may already have seen.
        logger.warning(
            "appraisal %s arrived again in a new message %s; keeping the first",
            body.appraisal_id,
            env.message_id,
        )
        return
    writes.appraisal_ids.add(body.appraisal_id)
    writes.appraisals.append(
        {
            "appraisal_id": body.appraisal_id,
            "message_id": env.message_id,
            "kiosk_id": env.kiosk_id,
            "vin": body.vehicle.vin,
            "status": body.valuation.status.value,
            "value_minor": body.valuation.value_minor,
            "currency": body.valuation.currency,
            "created_at": _utc(env.created_at),
            "received_at": item.received_at,
            "odometer_km": body.vehicle.odometer_km,
            "report": RawJSONBytes(report_json(body)),
            "gateway_flags": _NO_FLAGS,
        }
    )
    writes.bodies.append(body)
    writes.photos.extend(
        {
            "appraisal_id": body.appraisal_id,
            "sha256": p.sha256,
            "view": p.view,
            "phash": p.phash,
            "vin": body.vehicle.vin,
        }
        for p in body.photos
    )
    outcome.new_appraisals.append(body.appraisal_id)


def _apply_status(
    kiosk: Kiosk, env: EnvelopeView, at: datetime, body: StatusBody, outcome: IngestOutcome
) -> None:
    # Retained status can arrive late (after a reconnect of ours); only a newer one counts.
    if kiosk.state_at is not None and _aware(kiosk.state_at) > at:
        return
    kiosk.state = body.state.value
    kiosk.state_at = at
    kiosk.agent_version = body.agent_version or kiosk.agent_version
    if body.state is KioskState.ONLINE:
        # Every (re)connect, even one without an offline before it, gets pending commands.
        outcome.kiosks_online.append(env.kiosk_id)


def _apply_event(session: Session, kiosk_id: str, body: EventBody) -> None:
    new_state = {
        EventKind.COMMAND_ACCEPTED: "accepted",
        EventKind.COMMAND_REJECTED: "rejected",
        EventKind.COMMAND_DONE: "done",
        EventKind.COMMAND_FAILED: "failed",
    }.get(body.kind)
    if new_state is None or body.command_id is None:
        return  # progress events are history only
    command = session.get(CommandRow, body.command_id)
    if command is None:
        return
    if command.kiosk_id != kiosk_id:
        # Kept in the history, but only the kiosk a command was sent to can move it on.
        logger.warning(
            "kiosk %s reported on command %s, which was sent to kiosk %s; ignored",
            kiosk_id,
            command.command_id,
            command.kiosk_id,
        )
        return
    # done/rejected/failed are final; an accepted arriving late must not undo them.
    if command.state in {"done", "rejected", "failed"} and new_state == "accepted":
        return
    command.state = new_state
    command.detail = body.detail


def _utc(value: datetime) -> datetime:
    """An aware timestamp in UTC (SQLite would keep the wall time and drop the offset); raises
    ``OverflowError`` for one that leaves years 1 to 9999 in UTC."""
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _happened_at(env: EnvelopeView, item: Inbound) -> datetime:
    """When the kiosk says the message was made, but never after it arrived: a kiosk whose clock
    ran ahead (2099, say) would otherwise outrank every later status and heartbeat for good."""
    return min(_utc(env.created_at), item.received_at)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
