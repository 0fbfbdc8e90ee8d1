"""Periodic housekeeping: prune kiosk history past its retention, expire stale commands, forget
dealers' idempotency keys after a day."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, update
from sqlmodel import Session, col

from gateway.db.models import CommandRow, IdempotencyKey, KioskHistory

logger = logging.getLogger(__name__)

IDEMPOTENCY_KEPT = timedelta(hours=24)
"""How long a dealer's Idempotency-Key finds the appraisal it started (a retry comes in minutes)."""


def prune(
    session: Session, *, retention: timedelta, now: datetime | None = None
) -> tuple[int, int]:
    """Delete history older than ``retention``, expire open commands past their expiry, and
    forget idempotency keys older than :data:`IDEMPOTENCY_KEPT`.

    Returns (history rows deleted, commands expired).
    """
    now = now or datetime.now(UTC)
    history = session.execute(delete(KioskHistory).where(col(KioskHistory.at) < now - retention))
    session.execute(
        delete(IdempotencyKey).where(col(IdempotencyKey.created_at) < now - IDEMPOTENCY_KEPT)
    )
    expired = session.execute(
        update(CommandRow)
        .where(col(CommandRow.state).in_(("pending", "sent")), col(CommandRow.expires_at) <= now)
        .values(state="expired")
    )
    session.commit()
    counts = (int(getattr(history, "rowcount", 0) or 0), int(getattr(expired, "rowcount", 0) or 0))
    if any(counts):
        logger.info("pruned %d history rows, expired %d commands", *counts)
    return counts
