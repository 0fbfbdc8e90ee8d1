from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, status
from fastapi.responses import JSONResponse

from gateway.api.deps import ContextDep, CurrentDealer, SessionDep
from gateway.api.schemas import (
    AppraisalPublic,
    AppraisalStart,
    AppraisalSummary,
    LoanRequestCreate,
    LoanRequestPublic,
    Page,
    Problem,
)
from gateway.services import appraisals

router = APIRouter(prefix="/dealer", tags=["dealer"])


@router.post(
    "/appraisals",
    response_model=AppraisalPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": AppraisalPublic, "description": "Made before, under this Idempotency-Key"},
        409: {"model": Problem, "description": "The Idempotency-Key was used for another request"},
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
