"""Dealer use cases: start an on-site appraisal, attach a loan request, see the offers."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from edge.protocol import CommandKind, new_id
from gateway.api.schemas import (
    AppraisalPublic,
    AppraisalStart,
    AppraisalSummary,
    LoanRequestCreate,
    LoanRequestPublic,
    MatchPublic,
)
from gateway.context import GatewayContext
from gateway.db.models import (
    Appraisal,
    AppraisalRequest,
    CommandRow,
    IdempotencyKey,
    Kiosk,
    LoanRequestRow,
    MatchRow,
)
from gateway.errors import ConflictError, InvalidRequestError, NotFoundError
from gateway.services import commands, offers, wire
from gateway.services.pages import check_limit, encode_newest_cursor, newest_after, split_page
from gateway.services.sealing import Sealer, mask_money, mask_score

logger = logging.getLogger(__name__)


def start_appraisal(
    context: GatewayContext,
    session: Session,
    *,
    dealer_org: str,
    request: AppraisalStart,
    idempotency_key: str | None = None,
) -> tuple[AppraisalPublic, bool]:
    """Record the request, queue a start_appraisal command, and send it if the kiosk is online.

    Returns the appraisal and whether it was made now. With an ``idempotency_key`` the dealer
    used before for the same request, nothing is made again: the first attempt's appraisal is
    returned (a dealer system retrying a POST that timed out must not start a second one). The
    same key with another request is a :class:`ConflictError`.
    """
    fingerprint = hashlib.sha256(request.model_dump_json().encode()).hexdigest()
    if idempotency_key is not None:
        earlier = _earlier_attempt(session, dealer_org, idempotency_key, fingerprint)
        if earlier is not None:
            return view_appraisal(
                context, session, dealer_org=dealer_org, appraisal_id=earlier
            ), False
    # The column alone: a Kiosk object kept in the session would be read back, stale, when the
    # command is delivered below, and the kiosk's coming online in between missed.
    owner = session.exec(select(Kiosk.dealer_org).where(Kiosk.kiosk_id == request.kiosk_id)).first()
    if owner not in (None, dealer_org):
        # As for any other organisation's resource: not found, and nothing said about whose.
        raise NotFoundError(f"kiosk {request.kiosk_id} is not one of dealer {dealer_org!r}'s")
    now = datetime.now(UTC)
    appraisal_id = new_id()
    try:
        # Checked before anything is stored: a command that cannot reach the kiosk must not
        # become an appraisal waiting for it, nor the oldest command in the kiosk's queue.
        command = commands.issue_command(
            session,
            kiosk_id=request.kiosk_id,
            kind=CommandKind.START_APPRAISAL,
            params={
                "appraisal_id": appraisal_id,
                "dealer": dealer_org,
                "vehicle": request.vehicle.model_dump(exclude_none=True),
            },
            ttl=context.command_ttl,
            now=now,
        )
    except commands.UnsendableCommandError as exc:
        raise InvalidRequestError(
            f"{exc.detail}; send fewer or shorter vehicle.options, or shorter vehicle fields"
        ) from None
    session.add(
        AppraisalRequest(
            appraisal_id=appraisal_id,
            dealer_org=dealer_org,
            kiosk_id=request.kiosk_id,
            command_id=command.command_id,
            created_at=now,
        )
    )
    if request.loan_request is not None:
        _add_loan_request(session, context.sealer, appraisal_id, dealer_org, request.loan_request)
    if idempotency_key is not None:
        session.add(
            IdempotencyKey(
                dealer_org=dealer_org,
                key=idempotency_key,
                request_sha256=fingerprint,
                appraisal_id=appraisal_id,
                created_at=now,
            )
        )
    try:
        session.commit()
    except IntegrityError:
        # The same key in a request running at the same moment: that one made the appraisal.
        session.rollback()
        assert idempotency_key is not None  # nothing else here is unique
        earlier = _earlier_attempt(session, dealer_org, idempotency_key, fingerprint)
        if earlier is None:
            raise
        return view_appraisal(context, session, dealer_org=dealer_org, appraisal_id=earlier), False
    if context.link is not None:
        commands.deliver(
            session,
            kiosk_id=request.kiosk_id,
            publish=context.link.publish,
            next_seq=context.link.next_seq,
        )
    logger.info(
        "dealer %s asked kiosk %s for appraisal %s", dealer_org, request.kiosk_id, appraisal_id
    )
    return view_appraisal(context, session, dealer_org=dealer_org, appraisal_id=appraisal_id), True


def _earlier_attempt(session: Session, dealer_org: str, key: str, fingerprint: str) -> str | None:
    """The appraisal an earlier request with this key made; a conflict if it asked otherwise."""
    row = session.get(IdempotencyKey, (dealer_org, key))
    if row is None:
        return None
    if row.request_sha256 != fingerprint:
        raise ConflictError(
            f"Idempotency-Key {key!r} was used for another request (appraisal "
            f"{row.appraisal_id}); send a new key for a new appraisal"
        )
    return row.appraisal_id


def attach_loan_request(
    context: GatewayContext,
    session: Session,
    *,
    dealer_org: str,
    appraisal_id: str,
    request: LoanRequestCreate,
) -> LoanRequestPublic:
    _owned_request(session, dealer_org, appraisal_id)
    row = _add_loan_request(session, context.sealer, appraisal_id, dealer_org, request)
    session.commit()
    appraisal = session.get(Appraisal, appraisal_id)
    if appraisal is not None:
        offers.match_loan_request(session, context.sealer, loan=row, appraisal=appraisal)
    matches = session.exec(
        select(MatchRow).where(MatchRow.loan_request_id == row.id).order_by(col(MatchRow.seq))
    ).all()
    return loan_public(context.sealer, row, matches)


def view_appraisal(
    context: GatewayContext, session: Session, *, dealer_org: str, appraisal_id: str
) -> AppraisalPublic:
    req = _owned_request(session, dealer_org, appraisal_id)
    appraisal = session.get(Appraisal, appraisal_id)
    command = session.get(CommandRow, req.command_id)
    loans = session.exec(
        select(LoanRequestRow)
        .where(LoanRequestRow.appraisal_id == appraisal_id)
        .order_by(col(LoanRequestRow.created_at))
    ).all()
    matches = session.exec(
        select(MatchRow).where(MatchRow.appraisal_id == appraisal_id).order_by(col(MatchRow.seq))
    ).all()
    by_request: dict[str, list[MatchRow]] = {}
    for m in matches:
        by_request.setdefault(m.loan_request_id, []).append(m)
    # Each loan request is its own customer's terms: ranks and the APR spread only compare
    # offers made for the same request (a second request with another score or down payment
    # would otherwise interleave its ranks and widen the spread).
    loans_public = [
        loan_public(context.sealer, loan, by_request.get(loan.id, [])) for loan in loans
    ]
    latest = loans_public[-1] if loans_public else None
    return AppraisalPublic(
        appraisal_id=appraisal_id,
        kiosk_id=req.kiosk_id,
        state="received" if appraisal is not None else "requested",
        command_state=command.state if command else None,
        report=wire.public_report(appraisal.report) if appraisal else None,
        gateway_flags=appraisal.gateway_flags if appraisal else [],
        loan_requests=loans_public,
        offers=latest.offers if latest else [],
        apr_spread=latest.apr_spread if latest else None,
    )


def list_appraisals(
    session: Session, *, dealer_org: str, limit: int = 50, cursor: str | None = None
) -> tuple[list[AppraisalSummary], str | None]:
    """A page of the dealer's appraisals, newest request first, and the next page's cursor."""
    limit = check_limit(limit)
    requested = col(AppraisalRequest.created_at)
    query = (
        select(AppraisalRequest, Appraisal)
        .join(
            Appraisal,
            col(Appraisal.appraisal_id) == col(AppraisalRequest.appraisal_id),
            isouter=True,
        )
        .where(AppraisalRequest.dealer_org == dealer_org)
    )
    after = newest_after(cursor, requested, col(AppraisalRequest.appraisal_id))
    if after is not None:
        query = query.where(after)
    rows, next_cursor = split_page(
        session.exec(
            query.order_by(requested.desc(), col(AppraisalRequest.appraisal_id).desc()).limit(
                limit + 1
            )
        ).all(),
        limit,
        lambda row: encode_newest_cursor(row[0].created_at, row[0].appraisal_id),
    )
    page = [
        AppraisalSummary(
            appraisal_id=req.appraisal_id,
            kiosk_id=req.kiosk_id,
            state="received" if appraisal is not None else "requested",
            requested_at=req.created_at,
            received_at=appraisal.received_at if appraisal else None,
            vin=appraisal.vin if appraisal else None,
            value_minor=appraisal.value_minor if appraisal else None,
            currency=appraisal.currency if appraisal else None,
        )
        for req, appraisal in rows
    ]
    return page, next_cursor


def _owned_request(session: Session, dealer_org: str, appraisal_id: str) -> AppraisalRequest:
    req = session.get(AppraisalRequest, appraisal_id)
    if req is None or req.dealer_org != dealer_org:
        raise NotFoundError(f"appraisal {appraisal_id} does not exist for dealer {dealer_org!r}")
    return req


def _add_loan_request(
    session: Session,
    sealer: Sealer,
    appraisal_id: str,
    dealer_org: str,
    request: LoanRequestCreate,
) -> LoanRequestRow:
    now = datetime.now(UTC)
    applicant = {
        "monthly_income_minor": request.monthly_income_minor,
        "credit_score": request.credit_score,
        "credit_band": request.credit_band,
    }
    row = LoanRequestRow(
        id=new_id(),
        appraisal_id=appraisal_id,
        dealer_org=dealer_org,
        loan_kind=request.loan_kind,
        amount_minor=request.amount_minor,
        down_payment_minor=request.down_payment_minor,
        term_months=request.term_months,
        currency=request.currency,
        applicant_sealed=sealer.seal(applicant),
        consent_at=now,
        created_at=now,
    )
    session.add(row)
    return row


def loan_public(
    sealer: Sealer, row: LoanRequestRow, matches: Sequence[MatchRow] = ()
) -> LoanRequestPublic:
    """A loan request as shown (applicant masked) with its offers, offers first, best first."""
    applicant = sealer.open(row.applicant_sealed)
    score = applicant.get("credit_score")
    masked = {
        "monthly_income": mask_money(int(applicant["monthly_income_minor"])),
        "credit": mask_score(score) if score else str(applicant.get("credit_band")),
    }
    shown = sorted(
        (match_public(m) for m in matches),
        key=lambda m: (not m.eligible, m.rank if m.rank is not None else 10**6, m.lender),
    )
    aprs = [m.apr_percent for m in shown if m.eligible and m.apr_percent is not None]
    return LoanRequestPublic(
        id=row.id,
        appraisal_id=row.appraisal_id,
        loan_kind=row.loan_kind,
        amount_minor=row.amount_minor,
        down_payment_minor=row.down_payment_minor,
        term_months=row.term_months,
        currency=row.currency,
        applicant=masked,
        created_at=row.created_at,
        matched_at=row.matched_at,
        offers=shown,
        apr_spread=round(max(aprs) - min(aprs), 3) if aprs else None,
    )


def match_public(row: MatchRow) -> MatchPublic:
    assert row.seq is not None
    return MatchPublic(
        id=row.id,
        seq=row.seq,
        appraisal_id=row.appraisal_id,
        loan_request_id=row.loan_request_id,
        lender=row.lender_org,
        program_id=row.program_id,
        program_version=row.program_version,
        eligible=row.eligible,
        apr_percent=row.apr_percent,
        term_months=row.term_months,
        amount_minor=row.amount_minor,
        max_amount_minor=row.max_amount_minor,
        monthly_payment_minor=row.monthly_payment_minor,
        peak_ltv=row.peak_ltv,
        rank=row.rank,
        decision=row.decision,
        created_at=row.created_at,
        result=row.result,
    )
