"""Lender use cases: pull matches, decide on them, manage programs."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import select as sa_select
from sqlalchemy import update
from sqlmodel import Session, col, select

from gateway.api.schemas import MatchPublic, as_utc
from gateway.db.models import MatchRow, lender_match_json
from gateway.errors import ConflictError, NotFoundError
from gateway.services.appraisals import match_public
from gateway.services.pages import check_limit, decode_cursor, encode_cursor, split_page

__all__ = ["decide", "pull_matches_json"]


def pull_matches_json(
    session: Session,
    *,
    lender_org: str,
    limit: int = 50,
    cursor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    eligible: bool | None = None,
) -> bytes:
    """A page of this lender's matches, oldest first, as the JSON of ``Page[MatchPublic]``.

    A lender never sees another lender's matches. Each match's JSON was rendered when it was
    stored (``public_json``); only ``seq`` and ``decision`` are spliced in here. A page of 50
    full explanations is ~200 KB, and this is the endpoint lenders poll.
    """
    limit = check_limit(limit)
    table = MatchRow.__table__  # type: ignore[attr-defined]
    query = (
        sa_select(table.c.seq, table.c.decision, table.c.public_json)
        .where(table.c.lender_org == lender_org, table.c.seq > decode_cursor(cursor))
        .order_by(table.c.seq)
        .limit(limit + 1)
    )
    # Stored timestamps are UTC, and SQLite compares them as text without their offset: a bound
    # given at another offset (or naive, meaning UTC) is compared in UTC.
    if since is not None:
        query = query.where(table.c.created_at >= as_utc(since))
    if until is not None:
        query = query.where(table.c.created_at < as_utc(until))
    if eligible is not None:
        query = query.where(table.c.eligible == eligible)
    rows, next_cursor = split_page(
        session.connection().execute(query).all(), limit, lambda row: encode_cursor(row[0])
    )
    parts = [lender_match_json(seq, decision, public) for seq, decision, public in rows]
    body = '{"items":[' + ",".join(parts) + '],"next_cursor":' + json.dumps(next_cursor) + "}"
    return body.encode()


def decide(session: Session, *, lender_org: str, match_id: str, decision: str) -> MatchPublic:
    """Accept or decline a pending offer; the same decision again is a no-op.

    The change is one conditional UPDATE (pending → decision), so of two decisions sent at
    once exactly one wins and the other gets a conflict, on any database and any number of
    gateway processes; a decision never overwrites another.
    """
    changed = session.execute(
        update(MatchRow)
        .where(
            col(MatchRow.id) == match_id,
            col(MatchRow.lender_org) == lender_org,
            col(MatchRow.eligible) == True,  # noqa: E712
            col(MatchRow.decision) == "pending",
        )
        .values(decision=decision)
    )
    session.commit()
    row = session.exec(
        select(MatchRow)
        .where(MatchRow.id == match_id)
        .execution_options(populate_existing=True)  # what is stored now, not what we had read
    ).first()
    if row is None or row.lender_org != lender_org:
        raise NotFoundError(f"match {match_id} does not exist for lender {lender_org!r}")
    if not row.eligible:
        raise ConflictError("this match is not eligible: there is no offer to accept or decline")
    if getattr(changed, "rowcount", 0) != 1 and row.decision != decision:
        raise ConflictError(f"this match was already {row.decision}")
    return match_public(row)
