"""Errors as ``application/problem+json`` (RFC 9457); domain errors map to statuses here only."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.api.schemas import Problem, ValidationProblem
from gateway.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    GatewayError,
    InvalidRequestError,
    NotFoundError,
)

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

_STATUS: dict[type[GatewayError], int] = {
    BadRequestError: 400,
    NotFoundError: 404,
    ForbiddenError: 403,
    InvalidRequestError: 422,
    ConflictError: 409,
}
_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    422: "Invalid request",
    500: "Internal error",
    503: "Service unavailable",
}


def problem(
    status: int,
    detail: str,
    request: Request,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    sent = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    sent.update(headers or {})  # e.g. Allow with a 405
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=sent)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the problems a route answers with (422 with field errors)."""
    return {
        status: {
            "model": ValidationProblem if status == 422 else Problem,
            "description": _TITLES.get(status, "Error"),
        }
        for status in statuses
    }


def _problem_media_type(schema: dict[str, Any]) -> dict[str, Any]:
    """Errors are documented as ``application/problem+json``, which is what they are sent as."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for code, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
                if code[:1] in ("4", "5") and ref.endswith("Problem"):
                    content[PROBLEM_JSON] = content.pop("application/json")
    return schema


def install(app: FastAPI) -> None:
    openapi = app.openapi

    def problem_openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _problem_media_type(openapi())
        return app.openapi_schema

    app.openapi = problem_openapi  # type: ignore[method-assign]

    @app.exception_handler(GatewayError)
    async def _domain(request: Request, exc: GatewayError) -> JSONResponse:
        status = next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 400)
        return problem(status, exc.detail, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), request, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
            for err in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem(422, detail, request, errors=errors)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "an internal error occurred; it has been logged", request)
