from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from gateway.api.deps import CurrentLender, SessionDep
from gateway.api.schemas import DecisionCreate, MatchPublic, Page, UtcDatetime
from gateway.services import lenders

router = APIRouter(prefix="/lender", tags=["lender"])


@router.get("/matches", response_model=Page[MatchPublic])
async def pull_matches(
    session: SessionDep,
    lender: CurrentLender,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
    since: Annotated[
        UtcDatetime | None, Query(description="created_at >= since (RFC 3339)")
    ] = None,
    until: Annotated[UtcDatetime | None, Query(description="created_at < until (RFC 3339)")] = None,
    eligible: bool | None = None,
) -> Response:
    """Your matches, oldest first, ``limit`` per page; follow ``next_cursor`` until it is null."""
    # The hottest endpoint: one indexed range read of pre-rendered JSON (well under a
    # millisecond), run inline on the event loop; a worker-thread hop would cost more.
    body = lenders.pull_matches_json(
        session,
        lender_org=lender.org,
        limit=limit,
        cursor=cursor,
        since=since,
        until=until,
        eligible=eligible,
    )
    return Response(body, media_type="application/json")


@router.post("/matches/{match_id}/decision", response_model=MatchPublic)
def decide(
    match_id: str, body: DecisionCreate, session: SessionDep, lender: CurrentLender
) -> MatchPublic:
    """Accept or decline an eligible match."""
    return lenders.decide(session, lender_org=lender.org, match_id=match_id, decision=body.decision)
