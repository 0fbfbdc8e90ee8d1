"""Lender use cases: pull matches, decide on them, manage programs."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from gateway.api.schemas import MatchPublic, Page
from gateway.db.models import MatchRow
from gateway.errors import ConflictError, NotFoundError
from gateway.services.appraisals import match_public
from gateway.services.pages import check_limit, decode_cursor, encode_cursor


def pull_matches(
    session: Session,
    *,
    lender_org: str,
    limit: int = 50,
    cursor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    eligible: bool | None = None,
) -> Page[MatchPublic]:
    """A page of this lender's matches, oldest first; a lender never sees another's."""
    limit = check_limit(limit)
    query = select(MatchRow).where(
        MatchRow.lender_org == lender_org, col(MatchRow.seq) > decode_cursor(cursor)
    )
    if since is not None:
        query = query.where(col(MatchRow.created_at) >= since)
    if until is not None:
        query = query.where(col(MatchRow.created_at) < until)
    if eligible is not None:
        query = query.where(MatchRow.eligible == eligible)
    rows = session.exec(query.order_by(col(MatchRow.seq)).limit(limit + 1)).all()
    items = [match_public(r) for r in rows[:limit]]
    next_cursor = encode_cursor(items[-1].seq) if len(rows) > limit else None
    return Page[MatchPublic](items=items, next_cursor=next_cursor)


def decide(session: Session, *, lender_org: str, match_id: str, decision: str) -> MatchPublic:
    row = session.exec(select(MatchRow).where(MatchRow.id == match_id)).first()
    if row is None or row.lender_org != lender_org:
        raise NotFoundError(f"match {match_id} does not exist for lender {lender_org!r}")
    if not row.eligible:
        raise ConflictError("this match is not eligible: there is no offer to accept or decline")
    if row.decision not in ("pending", decision):
        raise ConflictError(f"this match was already {row.decision}")
    row.decision = decision
    session.commit()
    return match_public(row)
