"""Commands to kiosks: kept until acknowledged or expired, resent when a kiosk returns.

A command is checked to fit one wire message before it is recorded (:func:`issue_command`), and
one that still cannot be sent (a row written by older code or by hand) is failed with its reason
when its turn comes (:func:`deliver`), so it never holds up the kiosk's later commands.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, col, select

from edge.protocol import (
    Channel,
    CommandBody,
    CommandKind,
    ProtocolError,
    decode,
    encode,
    make_envelope,
    new_id,
    topic_for,
)
from edge.protocol.appraisal import INT64_MAX
from gateway.api.schemas import as_utc
from gateway.db.models import CommandRow, Kiosk
from gateway.errors import InvalidRequestError

logger = logging.getLogger(__name__)

#: States in which a command still waits for the kiosk.
OPEN_STATES = ("pending", "sent")

Publish = Callable[[str, bytes], None]

#: The longest ``detail`` kept for a command that could not be sent.
_MAX_DETAIL_CHARS = 500


class UnsendableCommandError(InvalidRequestError):
    """A command that no kiosk could receive: its message breaks the wire contract.

    ``reason`` says how (for example its size against ``MAX_PAYLOAD_BYTES``).
    """

    def __init__(self, kind: str, kiosk_id: str, reason: str) -> None:
        super().__init__(f"the {kind} command for kiosk {kiosk_id} cannot be sent: {reason}")
        self.reason = reason


def issue_command(
    session: Session,
    *,
    kiosk_id: str,
    kind: CommandKind,
    params: dict[str, Any],
    ttl: timedelta,
    command_id: str | None = None,
    now: datetime | None = None,
) -> CommandRow:
    """Record a command (not yet committed); deliver it with :func:`deliver`.

    Raises :class:`UnsendableCommandError`, adding nothing to the session, when the command's
    message would not satisfy the wire contract (too large, or refused by the kiosk's reader).
    """
    now = now or datetime.now(UTC)
    row = CommandRow(
        command_id=command_id or new_id(),
        kiosk_id=kiosk_id,
        kind=kind.value,
        params=params,
        state="pending",
        created_at=now,
        expires_at=now + ttl,
    )
    try:
        # The largest seq there is: a seq's digits are the only part whose length varies.
        _encode(row, as_utc(row.expires_at), seq=INT64_MAX)
    except ValueError as exc:
        raise UnsendableCommandError(row.kind, kiosk_id, _reason(exc)) from None
    session.add(row)
    return row


def deliver(
    session: Session,
    *,
    kiosk_id: str,
    publish: Publish,
    next_seq: Callable[[], int],
    now: datetime | None = None,
) -> int:
    """Send every open, unexpired command of an online kiosk; expire the stale. Returns how many.

    A command whose message cannot be built (too large for the wire, or one the kiosk's reader
    would refuse) is marked ``failed`` with the reason in ``detail``, and the next is sent.
    """
    now = now or datetime.now(UTC)
    # Read now, never from the session's identity map: a kiosk loaded earlier in this session
    # would show its state from then, and a kiosk that came online since would miss its command.
    kiosk = session.get(Kiosk, kiosk_id, populate_existing=True)
    rows = session.exec(
        select(CommandRow)
        .where(CommandRow.kiosk_id == kiosk_id, col(CommandRow.state).in_(OPEN_STATES))
        .order_by(col(CommandRow.created_at))
    ).all()
    sent = 0
    for row in rows:
        expires_at = as_utc(row.expires_at)
        if expires_at <= now:
            row.state = "expired"
            continue
        if kiosk is None or kiosk.state != "online":
            continue  # kept; sent when the kiosk's status turns online
        try:
            payload = _encode(row, expires_at, seq=next_seq())
        except ValueError as exc:
            # Permanent: sending it again would fail the same way, and as the kiosk's oldest
            # open command it would stop every later one. Only building the message is caught
            # here; a failing publish (the broker away) propagates and is retried as before.
            reason = _reason(exc)
            row.state = "failed"
            row.detail = f"not sent: {reason}"[:_MAX_DETAIL_CHARS]
            logger.warning(
                "command %s (%s) for kiosk %s cannot be sent and is marked failed: %s; "
                "the kiosk's later commands are sent",
                row.command_id,
                row.kind,
                kiosk_id,
                reason,
            )
            continue
        publish(topic_for(kiosk_id, Channel.COMMANDS), payload)
        row.state = "sent"
        row.sent_at = now
        sent += 1
    session.commit()
    if sent:
        logger.info("sent %d command(s) to kiosk %s", sent, kiosk_id)
    return sent


def _encode(row: CommandRow, expires_at: datetime, *, seq: int) -> bytes:
    """The command's message as sent, checked as the kiosk will read it.

    Raises ``ValueError`` (a ``ProtocolError``, a pydantic ``ValidationError`` or
    ``PydanticSerializationError``) when it cannot be built or would not be accepted.
    """
    body = CommandBody(
        command_id=row.command_id,
        kind=CommandKind(row.kind),
        expires_at=expires_at,
        params=row.params,
    )
    topic = topic_for(row.kiosk_id, Channel.COMMANDS)
    payload = encode(make_envelope(row.kiosk_id, body, seq=seq))
    # The kiosk drops a message its reader refuses (a U+0000 in a parameter, say) with only a
    # log line of its own: found here, the command is refused or failed with the reason instead.
    decode(topic, payload)
    return payload


def _reason(exc: ValueError) -> str:
    if isinstance(exc, ProtocolError):
        return exc.reason
    if isinstance(exc, ValidationError):
        return "invalid command: " + "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()[:3]
        )
    return f"{type(exc).__name__}: {exc}"[:_MAX_DETAIL_CHARS]
