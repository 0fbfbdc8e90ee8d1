from __future__ import annotations

from fastapi import APIRouter

from gateway.api.deps import CurrentOps, SessionDep
from gateway.api.schemas import KioskPublic, Stats
from gateway.services import ops

router = APIRouter(prefix="/ops", tags=["ops"])


@router.get("/stats", response_model=Stats)
def stats(session: SessionDep, _ops: CurrentOps) -> Stats:
    """Counts: distinct appraisals stored, dead letters, duplicates ignored, kiosks online."""
    return ops.stats(session)


@router.get("/kiosks", response_model=list[KioskPublic])
def kiosks(session: SessionDep, _ops: CurrentOps) -> list[KioskPublic]:
    """Every kiosk's presence and latest heartbeat."""
    return ops.kiosks(session)
