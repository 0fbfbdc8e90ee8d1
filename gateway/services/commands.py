"""Commands to kiosks: kept until acknowledged or expired, resent when a kiosk returns."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from edge.protocol import (
    Channel,
    CommandBody,
    CommandKind,
    encode,
    make_envelope,
    new_id,
    topic_for,
)
from gateway.db.models import CommandRow, Kiosk

logger = logging.getLogger(__name__)

#: States in which a command still waits for the kiosk.
OPEN_STATES = ("pending", "sent")

Publish = Callable[[str, bytes], None]


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
    """Record a command (not yet committed); deliver it with :func:`deliver`."""
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
    """Send every open, unexpired command of an online kiosk; expire the stale. Returns how many."""
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
        expires_at = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
        if expires_at <= now:
            row.state = "expired"
            continue
        if kiosk is None or kiosk.state != "online":
            continue  # kept; sent when the kiosk's status turns online
        body = CommandBody(
            command_id=row.command_id,
            kind=CommandKind(row.kind),
            expires_at=expires_at,
            params=row.params,
        )
        publish(
            topic_for(kiosk_id, Channel.COMMANDS),
            encode(make_envelope(kiosk_id, body, seq=next_seq())),
        )
        row.state = "sent"
        row.sent_at = now
        sent += 1
    session.commit()
    if sent:
        logger.info("sent %d command(s) to kiosk %s", sent, kiosk_id)
    return sent
