"""Operator use cases: the kiosk fleet and counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from edge.protocol import is_valid_kiosk_id
from gateway.api.schemas import KioskPublic, Stats, as_utc
from gateway.db.models import Appraisal, CommandRow, DeadLetter, InboundMessage, Kiosk, MatchRow
from gateway.errors import InvalidRequestError
from gateway.services.keys import check_org
from gateway.services.pages import check_limit, page_by_text_key

SILENT_AFTER = timedelta(minutes=3)  # three missed heartbeats


def stats(
    session: Session, *, silent_after: timedelta = SILENT_AFTER, now: datetime | None = None
) -> Stats:
    def count(query: object) -> int:
        return int(session.exec(query).one() or 0)  # type: ignore[call-overload]

    heard_since = (now or datetime.now(UTC)) - silent_after
    online = select(func.count()).select_from(Kiosk).where(Kiosk.state == "online")

    return Stats(
        appraisals=count(select(func.count()).select_from(Appraisal)),
        dead_letters=count(select(func.count()).select_from(DeadLetter)),
        # Valid messages delivered again, and invalid ones (kept once as a dead letter).
        duplicates_ignored=count(select(func.coalesce(func.sum(InboundMessage.duplicates), 0)))
        + count(select(func.coalesce(func.sum(DeadLetter.duplicates), 0))),
        kiosks_online=count(online.where(col(Kiosk.last_seen_at) >= heard_since)),
        kiosks_silent=count(
            online.where(
                or_(col(Kiosk.last_seen_at).is_(None), col(Kiosk.last_seen_at) < heard_since)
            )
        ),
        kiosks=count(select(func.count()).select_from(Kiosk)),
        matches=count(select(func.count()).select_from(MatchRow)),
        commands_pending=count(
            select(func.count())
            .select_from(CommandRow)
            .where(col(CommandRow.state).in_(("pending", "sent")))
        ),
    )


def kiosks(
    session: Session,
    *,
    limit: int = 50,
    cursor: str | None = None,
    silent_after: timedelta = SILENT_AFTER,
    now: datetime | None = None,
) -> tuple[list[KioskPublic], str | None]:
    """A page of the fleet, by kiosk id, and the cursor of the next page.

    A kiosk whose presence is ``online`` but that has sent nothing for ``silent_after`` shows as
    ``silent``: a kiosk that lost power while the broker was down never gets its last will.
    """
    limit = check_limit(limit)
    heard_since = (now or datetime.now(UTC)) - silent_after
    rows, next_cursor = page_by_text_key(session, select(Kiosk), col(Kiosk.kiosk_id), limit, cursor)
    return [_public(k, heard_since) for k in rows], next_cursor


def assign_kiosk(
    session: Session,
    *,
    kiosk_id: str,
    dealer_org: str | None,
    silent_after: timedelta = SILENT_AFTER,
) -> KioskPublic:
    """Give ``kiosk_id`` to ``dealer_org`` (``None``: to any dealer); a kiosk never heard from
    yet may be assigned before it is installed."""
    if not is_valid_kiosk_id(kiosk_id):
        raise InvalidRequestError(f"{kiosk_id!r} is not a kiosk id")
    if dealer_org is not None:
        check_org(dealer_org)
    kiosk = session.get(Kiosk, kiosk_id) or Kiosk(kiosk_id=kiosk_id)
    kiosk.dealer_org = dealer_org
    session.add(kiosk)
    session.commit()
    return _public(kiosk, datetime.now(UTC) - silent_after)


def _public(k: Kiosk, heard_since: datetime) -> KioskPublic:
    return KioskPublic(
        kiosk_id=k.kiosk_id,
        state="silent"
        if k.state == "online" and (k.last_seen_at is None or as_utc(k.last_seen_at) < heard_since)
        else k.state,
        state_at=k.state_at,
        last_seen_at=k.last_seen_at,
        agent_version=k.agent_version,
        telemetry=k.telemetry,
        dealer_org=k.dealer_org,
    )
