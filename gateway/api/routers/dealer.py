from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import Message, Receive

from gateway.api.deps import ContextDep, CurrentDealer, SessionDep
from gateway.api.schemas import (
    MAX_HINT_CHARS,
    MAX_VEHICLE_OPTIONS,
    AppraisalPublic,
    AppraisalStart,
    AppraisalSummary,
    LoanRequestCreate,
    LoanRequestPublic,
    Page,
    Problem,
)
from gateway.services import appraisals

MAX_BODY_BYTES = 64 * 1024
"""The largest dealer request body. A request within every field's bounds takes a few KB; its
command to the kiosk must fit one 256 KiB MQTT message (``edge.protocol.MAX_PAYLOAD_BYTES``)."""

_TOO_LARGE = (
    f"a dealer request body may be at most {MAX_BODY_BYTES} bytes: send at most "
    f"{MAX_VEHICLE_OPTIONS} vehicle.options, with names of at most {MAX_HINT_CHARS} characters"
)


def _bounded_receive(receive: Receive) -> Receive:
    """``receive`` that refuses a body past :data:`MAX_BODY_BYTES` once that much has come."""
    seen = 0

    async def bounded() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > MAX_BODY_BYTES:
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, _TOO_LARGE)
        return message

    return bounded


class BoundedBodyRoute(APIRoute):
    """A route that refuses a body over :data:`MAX_BODY_BYTES` with a 413, before parsing it.

    A declared ``Content-Length`` over the limit is refused before any of the body is read; a
    body without one (chunked) is counted as it arrives and refused as soon as it passes.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, _TOO_LARGE)
            return await handler(Request(request.scope, _bounded_receive(request.receive)))

        return bounded


router = APIRouter(prefix="/dealer", tags=["dealer"], route_class=BoundedBodyRoute)


@router.post(
    "/appraisals",
    response_model=AppraisalPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": AppraisalPublic, "description": "Made before, under this Idempotency-Key"},
        409: {"model": Problem, "description": "The Idempotency-Key was used for another request"},
        413: {"model": Problem, "description": f"The body is over {MAX_BODY_BYTES} bytes"},
    },
)
def start_appraisal(
    body: AppraisalStart,
    context: ContextDep,
    session: SessionDep,
    dealer: CurrentDealer,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            description="Any unique string per appraisal: a retry with the same key and body "
            "returns the appraisal the first attempt made (200) instead of starting another",
        ),
    ] = None,
) -> JSONResponse:
    """Ask a kiosk to appraise the car plugged into it, optionally with a loan request.

    The kiosk gets a ``start_appraisal`` command now, or when it next comes online (until the
    command expires). Poll ``GET /v1/dealer/appraisals/{id}`` for the report and the offers.
    A request whose command could not be sent to the kiosk (over the 256 KiB MQTT limit) is
    refused with a 422 and nothing is stored.
    """
    view, made = appraisals.start_appraisal(
        context, session, dealer_org=dealer.org, request=body, idempotency_key=idempotency_key
    )
    return JSONResponse(view.model_dump(mode="json"), status_code=201 if made else 200)


@router.get("/appraisals", response_model=Page[AppraisalSummary])
def list_appraisals(
    session: SessionDep,
    dealer: CurrentDealer,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[AppraisalSummary]:
    """Your appraisals, the newest request first; follow ``next_cursor`` until it is null."""
    items, next_cursor = appraisals.list_appraisals(
        session, dealer_org=dealer.org, limit=limit, cursor=cursor
    )
    return Page[AppraisalSummary](items=items, next_cursor=next_cursor)


@router.get("/appraisals/{appraisal_id}", response_model=AppraisalPublic)
def get_appraisal(
    appraisal_id: str, context: ContextDep, session: SessionDep, dealer: CurrentDealer
) -> AppraisalPublic:
    """The appraisal's state, its report once received, and every lender's offer or refusal."""
    return appraisals.view_appraisal(
        context, session, dealer_org=dealer.org, appraisal_id=appraisal_id
    )


@router.post(
    "/appraisals/{appraisal_id}/loan-requests",
    response_model=LoanRequestPublic,
    status_code=status.HTTP_201_CREATED,
    responses={413: {"model": Problem, "description": f"The body is over {MAX_BODY_BYTES} bytes"}},
)
def attach_loan_request(
    appraisal_id: str,
    body: LoanRequestCreate,
    context: ContextDep,
    session: SessionDep,
    dealer: CurrentDealer,
) -> LoanRequestPublic:
    """Attach a loan request; it is matched as soon as the appraisal is in."""
    return appraisals.attach_loan_request(
        context, session, dealer_org=dealer.org, appraisal_id=appraisal_id, request=body
    )
