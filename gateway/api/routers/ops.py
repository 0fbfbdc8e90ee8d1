from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.api.deps import ContextDep, CurrentOps, SessionDep
from gateway.api.schemas import KioskPublic, Page, Stats
from gateway.services import ops

router = APIRouter(prefix="/ops", tags=["ops"])


@router.get("/stats", response_model=Stats)
def stats(session: SessionDep, context: ContextDep, _ops: CurrentOps) -> Stats:
    """Counts: distinct appraisals stored, dead letters, duplicates ignored, kiosks online."""
    return ops.stats(session, silent_after=context.kiosk_silent_after)


@router.get("/kiosks", response_model=Page[KioskPublic])
def kiosks(
    session: SessionDep,
    context: ContextDep,
    _ops: CurrentOps,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[KioskPublic]:
    """The fleet by kiosk id: each kiosk's presence and latest heartbeat."""
    items, next_cursor = ops.kiosks(
        session, limit=limit, cursor=cursor, silent_after=context.kiosk_silent_after
    )
    return Page[KioskPublic](items=items, next_cursor=next_cursor)
