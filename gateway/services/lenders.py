"""Lender use cases: pull matches, decide on them, manage programs."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import Text, cast
from sqlalchemy import select as sa_select
from sqlmodel import Session, select

from gateway.api.schemas import MatchPublic
from gateway.db.models import MatchRow
from gateway.errors import ConflictError, NotFoundError
from gateway.services.appraisals import match_public
from gateway.services.pages import check_limit, decode_cursor, encode_cursor

__all__ = ["decide", "pull_matches_json"]


#: The columns of a pulled match, in MatchPublic's field order (``result`` is spliced in raw).
_PULL_COLUMNS = (
    "id",
    "seq",
    "appraisal_id",
    "loan_request_id",
    "lender_org",
    "program_id",
    "program_version",
    "eligible",
    "apr_percent",
    "term_months",
    "amount_minor",
    "max_amount_minor",
    "monthly_payment_minor",
    "peak_ltv",
    "rank",
    "decision",
    "created_at",
)


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

    A lender never sees another lender's matches. The stored explanation (``result``) is copied
    into the response as the text it is stored as, never parsed and re-serialised: a page of 50
    full explanations is ~200 KB, and this is the endpoint lenders poll.
    """
    limit = check_limit(limit)
    table = MatchRow.__table__  # type: ignore[attr-defined]
    columns = [table.c[name] for name in _PULL_COLUMNS]
    query = (
        sa_select(*columns, cast(table.c.result, Text))
        .where(table.c.lender_org == lender_org, table.c.seq > decode_cursor(cursor))
        .order_by(table.c.seq)
        .limit(limit + 1)
    )
    if since is not None:
        query = query.where(table.c.created_at >= since)
    if until is not None:
        query = query.where(table.c.created_at < until)
    if eligible is not None:
        query = query.where(table.c.eligible == eligible)
    rows = session.connection().execute(query).all()
    parts = []
    for row in rows[:limit]:
        fields = dict(zip(_PULL_COLUMNS, row[:-1], strict=True))
        fields["lender"] = fields.pop("lender_org")
        created = fields["created_at"]
        if created.tzinfo is None:  # SQLite hands back naive UTC
            created = created.replace(tzinfo=UTC)
        fields["created_at"] = created.isoformat().replace("+00:00", "Z")
        head = json.dumps(fields, separators=(",", ":"))
        parts.append(head[:-1] + ',"result":' + row[-1] + "}")
    next_cursor = encode_cursor(rows[limit - 1][1]) if len(rows) > limit else None
    body = '{"items":[' + ",".join(parts) + '],"next_cursor":' + json.dumps(next_cursor) + "}"
    return body.encode()


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
