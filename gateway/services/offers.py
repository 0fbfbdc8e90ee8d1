"""Matching appraisals with their loan requests against the active lender programs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text, update
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select

from edge.protocol import AppraisalBody, new_id
from gateway.db.models import Appraisal, LoanRequestRow, MatchRow
from gateway.matching import (
    CreditBand,
    LoanKind,
    LoanRequest,
    MatchResult,
    collateral_from_appraisal,
    match,
    render_reason,
)
from gateway.services import webhooks
from gateway.services.programs import active_programs
from gateway.services.sealing import Sealer, mask_score

logger = logging.getLogger(__name__)


def match_appraisals(session: Session, sealer: Sealer, *, appraisal_ids: list[str]) -> int:
    """Match the unmatched loan requests on newly stored appraisals (one query for the batch).

    Returns how many matches were stored.
    """
    if not appraisal_ids:
        return 0
    pairs = session.exec(
        _unmatched().where(col(LoanRequestRow.appraisal_id).in_(appraisal_ids))
    ).all()
    return _match_pairs(session, sealer, pairs)


def match_pending(session: Session, sealer: Sealer) -> int:
    """Match every loan request still unmatched whose appraisal has arrived.

    Ingest matches right after its commit, off the ingest thread; this catches what a crash or a
    failure in between left behind. Returns how many matches were stored.
    """
    pairs = session.exec(_unmatched().order_by(col(LoanRequestRow.created_at))).all()
    stored = _match_pairs(session, sealer, pairs)
    if pairs:
        logger.info("matched %d loan requests left unmatched", len(pairs))
    return stored


def _unmatched() -> Select[LoanRequestRow, Appraisal]:
    """Unmatched loan requests with their appraisals (a request whose appraisal has not
    arrived yet is matched when it does)."""
    return (
        select(LoanRequestRow, Appraisal)
        .join(Appraisal, col(Appraisal.appraisal_id) == col(LoanRequestRow.appraisal_id))
        .where(col(LoanRequestRow.matched_at).is_(None))
    )


def _match_pairs(
    session: Session, sealer: Sealer, pairs: Sequence[tuple[LoanRequestRow, Appraisal]]
) -> int:
    return sum(
        match_loan_request(session, sealer, loan=loan, appraisal=appraisal)
        for loan, appraisal in pairs
    )


def match_loan_request(
    session: Session, sealer: Sealer, *, loan: LoanRequestRow, appraisal: Appraisal
) -> int:
    """Evaluate one loan request against every program in force today and store each verdict."""
    now = datetime.now(UTC)
    today = now.date()
    applicant = sealer.open(loan.applicant_sealed)
    band = applicant.get("credit_band")
    request = LoanRequest(
        loan_kind=LoanKind(loan.loan_kind),
        amount_requested_minor=loan.amount_minor,
        down_payment_minor=loan.down_payment_minor,
        term_months=loan.term_months,
        monthly_income_minor=int(applicant["monthly_income_minor"]),
        credit_score=applicant.get("credit_score"),
        credit_band=CreditBand(band) if band else None,
    )
    body = AppraisalBody.model_validate(appraisal.report)
    # What the gateway found across appraisals counts like the kiosk's own flags.
    collateral = collateral_from_appraisal(
        body, as_of=today, extra_flags=[str(f["code"]) for f in appraisal.gateway_flags]
    )
    programs = active_programs(session, on=today)
    results = match(collateral, request, programs.compiled, as_of=today)
    rows = [
        match_row(
            result,
            appraisal_id=appraisal.appraisal_id,
            loan_request_id=loan.id,
            lender_org=programs.org_of[result.program_id],
            created_at=now,
        )
        for result in results
    ]
    # Claim the request in the same transaction as its matches: of two workers (or a worker and
    # the startup sweep) matching it at once, one stores the matches and the other nothing.
    claimed = session.execute(
        update(LoanRequestRow)
        .where(col(LoanRequestRow.id) == loan.id, col(LoanRequestRow.matched_at).is_(None))
        .values(matched_at=now)
    )
    if getattr(claimed, "rowcount", 1) != 1:
        session.rollback()
        return 0
    serialise_match_inserts(session)
    session.add_all(rows)
    webhooks.enqueue(session, rows, now=now)  # committed with the matches: none is lost
    loan.matched_at = now
    session.add(loan)
    session.commit()
    eligible = sum(r.eligible for r in results)
    logger.info(
        "loan request %s on appraisal %s: %d of %d programs made an offer",
        loan.id,
        appraisal.appraisal_id,
        eligible,
        len(results),
    )
    return len(results)


# Any constant shared by every gateway process on one database ("kmma").
_MATCH_INSERT_LOCK = 0x6B6D6D61


def serialise_match_inserts(session: Session) -> None:
    """Make this transaction's matches become visible in ``seq`` order with everyone else's.

    A lender's pull cursor moves by ``seq``. On PostgreSQL a ``seq`` is taken at INSERT but seen
    at COMMIT: with two gateway workers, a transaction holding seq 7 could commit after one
    holding seq 8, and a lender who had pulled 8 would never see 7. A transaction-scoped
    advisory lock, taken before the rows are inserted and released by the commit, makes
    inserting and committing matches one at a time (each holds it for a few milliseconds).
    SQLite needs nothing: it has one writer at a time.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MATCH_INSERT_LOCK})


def match_row(
    result: MatchResult,
    *,
    appraisal_id: str,
    loan_request_id: str,
    lender_org: str,
    created_at: datetime,
) -> MatchRow:
    """The stored form of one program's verdict (LTV as a fraction, the whole result kept)."""
    return MatchRow(
        id=new_id(),
        appraisal_id=appraisal_id,
        loan_request_id=loan_request_id,
        lender_org=lender_org,
        program_id=result.program_id,
        program_version=str(result.program_version),
        eligible=result.eligible,
        apr_percent=result.apr_pct,
        term_months=result.term_months,
        amount_minor=result.amount_financed_minor,
        max_amount_minor=result.max_amount_minor,
        monthly_payment_minor=result.monthly_payment_minor,
        peak_ltv=None if result.peak_ltv_pct is None else result.peak_ltv_pct / 100,
        rank=result.rank,
        result=masked_result(result),
        created_at=created_at,
    )


def masked_result(result: MatchResult) -> dict[str, Any]:
    """``result`` as it is stored and shown (to dealers, lenders and webhooks): the applicant's
    exact credit score, personal data, appears only as its 50-point band."""
    out = result.model_dump()
    for outcome in out["outcomes"]:
        params = outcome["params"]
        if "score" not in params:
            continue
        exact = outcome["message"]
        outcome["params"] = {**params, "score": mask_score(int(params["score"]))}
        outcome["message"] = render_reason(
            outcome["code"], {**outcome["params"], "currency": result.currency}
        )
        for sentences in (out["reasons"], out["notes"]):
            sentences[:] = [outcome["message"] if s == exact else s for s in sentences]
    return out
