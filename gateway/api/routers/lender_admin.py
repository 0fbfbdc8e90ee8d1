"""Lender programs and webhooks (the lender's own administration)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from gateway.api.deps import ContextDep, CurrentLender, SessionDep
from gateway.api.problems import problem
from gateway.api.schemas import (
    DeliveryPublic,
    Page,
    Problem,
    ProgramIssuePublic,
    ProgramProblem,
    ProgramPublic,
    ProgramValidation,
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
)
from gateway.db.models import LenderProgramRow
from gateway.matching import LenderProgram, ProgramError, ProgramIssue, parse_program
from gateway.matching.loader import Syntax
from gateway.services import webhooks
from gateway.services.pages import (
    decode_cursor,
    encode_cursor,
    split_page,
)
from gateway.services.programs import is_stored, store_program
from gateway.services.webhook_policy import WebhookUrlError

router = APIRouter(prefix="/lender", tags=["lender"])

MAX_PROGRAM_BYTES = 1_000_000
_PROGRAM_BODY = {
    "content": {
        "application/yaml": {"schema": {"type": "string"}},
        "application/json": {"schema": {"type": "object"}},
    },
    "required": True,
    "description": "The program document, YAML or JSON (see docs/matching.md)",
}


def _issues(exc: ProgramError) -> list[ProgramIssuePublic]:
    return [
        ProgramIssuePublic(
            line=i.line,
            column=i.column,
            field=i.field,
            message=i.message,
            value=None if i.value is None else repr(i.value)[:200],
            fix=i.fix,
        )
        for i in exc.issues
    ]


_LENDER_KEY = re.compile(r"""^\s*["']?lender["']?\s*:""", re.MULTILINE)


def _parse_upload(text: str, syntax: Syntax | None, org: str) -> LenderProgram:
    """The uploaded program, which must name the uploading lender: dealers see its ``lender``."""
    program = parse_program(text, source_name="upload", syntax=syntax)
    if program.lender != org:
        found = _LENDER_KEY.search(text)
        line = text.count("\n", 0, found.start()) + 1 if found else None
        raise ProgramError(
            [
                ProgramIssue(
                    "upload",
                    line,
                    None,
                    "lender",
                    f"the program names the lender {program.lender!r}, but this key belongs to "
                    f"{org!r}",
                    program.lender,
                    f"write `lender: {org}`: a lender uploads its own programs",
                )
            ]
        )
    return program


def _syntax(content_type: str | None) -> Syntax | None:
    """JSON's grammar for a JSON upload, YAML's for a YAML one; otherwise the text decides."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return "json"
    if media in ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"):
        return "yaml"
    return None


def _public(row: LenderProgramRow) -> ProgramPublic:
    program = LenderProgram.model_validate(row.document)
    return ProgramPublic(
        program_id=row.program_id,
        version=row.version,
        lender=row.lender_org,
        active=row.active,
        in_force_today=program.is_effective(datetime.now(UTC).date()),
        uploaded_at=row.uploaded_at,
        document=row.document,
    )


@router.post(
    "/programs",
    response_model=ProgramPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {
            "description": "Validated only (``dry_run``), or this very version was stored already"
        },
        409: {
            "model": Problem,
            "description": "The program_id is another lender's, or the version is lower than a "
            "stored one, or equal to one stored with other content",
        },
        413: {"model": Problem, "description": "The document is larger than 1 MB"},
        422: {"model": ProgramProblem, "description": "The program is not valid"},
    },
    openapi_extra={"requestBody": _PROGRAM_BODY},
)
async def upload_program(
    request: Request,
    session: SessionDep,
    lender: CurrentLender,
    dry_run: Annotated[bool, Query(description="validate only; store nothing")] = False,
) -> JSONResponse:
    """Upload a program version (YAML or JSON): 201 when stored, 200 when this very version was
    stored already. Versions only go up (409 for a lower one, or for a stored version with other
    content); on any day the highest version in force applies, so a version may be published
    before its ``effective_from``. Errors name the line, the field, the value and the fix."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_PROGRAM_BYTES:
            return problem(413, f"a program may be at most {MAX_PROGRAM_BYTES} bytes", request)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return problem(
            422, f"the program is not UTF-8 text (byte {exc.start} cannot be decoded)", request
        )
    try:
        # Parsing a large document takes a while: off the event loop, which serves the others.
        program = await run_in_threadpool(
            _parse_upload, text, _syntax(request.headers.get("content-type")), lender.org
        )
    except ProgramError as exc:
        body = ProgramValidation(valid=False, issues=_issues(exc)).model_dump()
        return problem(422, str(exc), request, title="Invalid lender program", **body)
    if dry_run:
        result = ProgramValidation(
            valid=True, program_id=program.program_id, version=str(program.version)
        )
        return JSONResponse(result.model_dump(), status_code=200)
    known, row = await run_in_threadpool(_store, session, program, lender.org)
    return JSONResponse(_public(row).model_dump(mode="json"), status_code=200 if known else 201)


def _store(
    session: Session, program: LenderProgram, lender_org: str
) -> tuple[bool, LenderProgramRow]:
    """Whether this very version was stored already, and its row (stored now if it was not)."""
    known = is_stored(session, program, lender_org=lender_org)
    return known, store_program(session, program, lender_org=lender_org)


@router.get("/programs", response_model=Page[ProgramPublic])
def list_programs(
    session: SessionDep,
    lender: CurrentLender,
    include_inactive: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[ProgramPublic]:
    """Your programs in the order stored (active versions; every version with
    ``include_inactive``)."""
    query = select(LenderProgramRow).where(
        LenderProgramRow.lender_org == lender.org,
        col(LenderProgramRow.id) > decode_cursor(cursor),
    )
    if not include_inactive:
        query = query.where(LenderProgramRow.active == True)  # noqa: E712
    rows, next_cursor = split_page(
        session.exec(query.order_by(col(LenderProgramRow.id)).limit(limit + 1)).all(),
        limit,
        lambda row: encode_cursor(row.id or 0),
    )
    return Page[ProgramPublic](items=[_public(r) for r in rows], next_cursor=next_cursor)


@router.post("/webhooks", response_model=WebhookCreated, status_code=status.HTTP_201_CREATED)
def create_webhook(
    body: WebhookCreate, context: ContextDep, session: SessionDep, lender: CurrentLender
) -> WebhookCreated:
    """Push every new match to ``url``, signed with the returned secret (shown once).

    The URL must be https and its host must resolve only to public internet addresses (unless
    the gateway's operator allows plain http or private networks); anything else is a 422 that
    names ``body.url`` and says what to do. Each delivery checks the resolved addresses again."""
    try:
        row, secret = webhooks.subscribe(
            session,
            context.sealer,
            lender_org=lender.org,
            url=body.url,
            policy=context.webhook_policy,
            resolver=context.webhook_resolver,
        )
    except WebhookUrlError as exc:
        # The same shape as a field that fails validation, so a form can mark the field.
        raise RequestValidationError(
            [{"loc": ("body", "url"), "msg": exc.detail, "type": "value_error.webhook_url"}]
        ) from None
    return WebhookCreated(
        id=row.id, url=row.url, active=row.active, created_at=row.created_at, secret=secret
    )


@router.get("/webhooks", response_model=Page[WebhookPublic])
def list_webhooks(
    session: SessionDep,
    lender: CurrentLender,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[WebhookPublic]:
    rows, next_cursor = webhooks.list_subscriptions(
        session, lender_org=lender.org, limit=limit, cursor=cursor
    )
    return Page[WebhookPublic](
        items=[
            WebhookPublic(id=r.id, url=r.url, active=r.active, created_at=r.created_at)
            for r in rows
        ],
        next_cursor=next_cursor,
    )


@router.delete("/webhooks/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(subscription_id: str, session: SessionDep, lender: CurrentLender) -> None:
    webhooks.unsubscribe(session, lender_org=lender.org, subscription_id=subscription_id)


@router.get("/webhooks/deliveries", response_model=Page[DeliveryPublic])
def list_deliveries(
    session: SessionDep,
    lender: CurrentLender,
    state: Literal["pending", "delivered", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[DeliveryPublic]:
    """Deliveries, newest first; ``state=failed`` lists those kept after every retry."""
    rows, next_cursor = webhooks.list_deliveries(
        session, lender_org=lender.org, state=state, limit=limit, cursor=cursor
    )
    return Page[DeliveryPublic](
        items=[DeliveryPublic.model_validate(r, from_attributes=True) for r in rows],
        next_cursor=next_cursor,
    )


@router.post("/webhooks/deliveries/{delivery_id}/retry", response_model=DeliveryPublic)
def retry_delivery(delivery_id: str, session: SessionDep, lender: CurrentLender) -> DeliveryPublic:
    row = webhooks.retry(session, lender_org=lender.org, delivery_id=delivery_id)
    return DeliveryPublic.model_validate(row, from_attributes=True)
