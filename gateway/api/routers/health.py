from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from gateway.api.deps import ContextDep
from gateway.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
def health(context: ContextDep) -> JSONResponse:
    """200 once the database, the broker connection and ingest are up; 503 otherwise.

    Needs no key."""
    try:
        with context.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        database = True
    except Exception:  # any failure means "not up" to a script waiting on this
        database = False
    broker = context.link is not None and context.link.connected
    ingest = context.link is not None and context.link.ingesting
    ok = database and broker and ingest
    body = Health(
        status="ok" if ok else "degraded", database=database, broker=broker, ingest=ingest
    )
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
