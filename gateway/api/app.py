"""The FastAPI app factory: it receives its dependencies and creates nothing at import time."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from gateway.api import problems
from gateway.api.routers import dealer, health, lender, lender_admin, ops, photos
from gateway.context import GatewayContext
from kioskmatch import __version__


def create_app(context: GatewayContext) -> FastAPI:
    app = FastAPI(
        title="kioskmatch gateway",
        version=__version__,
        description=(
            "Appraisals from dealer kiosks, matched against lender programs. Authenticate with "
            "`Authorization: Bearer <key>` (keys from `kioskmatch gateway create-key`). Errors "
            "are application/problem+json; lists take ?limit=&cursor=."
        ),
        license_info={"name": "GPL-3.0-or-later", "identifier": "GPL-3.0-or-later"},
    )
    app.state.context = context
    v1 = APIRouter(prefix="/v1")
    responses = problems.problem_responses
    v1.include_router(health.router)
    v1.include_router(dealer.router, responses=responses(400, 401, 403, 404, 422))
    v1.include_router(lender.router, responses=responses(400, 401, 403, 404, 409, 422))
    v1.include_router(lender_admin.router, responses=responses(400, 401, 403, 404, 409, 413, 422))
    v1.include_router(ops.router, responses=responses(400, 401, 403, 422))
    v1.include_router(photos.router, responses=responses(400, 401, 403, 404, 409, 413, 422))
    app.include_router(v1, responses=responses(500))
    problems.install(app)
    return app
