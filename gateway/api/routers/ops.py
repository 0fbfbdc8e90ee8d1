from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from gateway.api.deps import ContextDep, CurrentOps, SessionDep
from gateway.api.schemas import KioskDealer, KioskPublic, Page, Stats
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


@router.put("/kiosks/{kiosk_id}/dealer", response_model=KioskPublic)
def assign_kiosk(
    session: SessionDep,
    context: ContextDep,
    _ops: CurrentOps,
    body: KioskDealer,
    kiosk_id: Annotated[str, Path(max_length=64)],
) -> KioskPublic:
    """Give a kiosk to a dealer: from then on only that dealer's keys may start appraisals on it
    (others get 404). ``null`` gives it back to every dealer. A kiosk may be assigned before it
    is first heard from."""
    return ops.assign_kiosk(
        session,
        kiosk_id=kiosk_id,
        dealer_org=body.dealer_org,
        silent_after=context.kiosk_silent_after,
    )
