"""Matching appraisals with their loan requests against the active lender programs."""

from __future__ import annotations

import logging
import math
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
from gateway.services.sealing import Sealer, income_band, mask_score

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
    """Match each pair; one that fails is logged and left unmatched (the next sweep tries it
    again) and does not stop the others."""
    stored = 0
    for loan, appraisal in pairs:
        loan_id = loan.id
        try:
            stored += match_loan_request(session, sealer, loan=loan, appraisal=appraisal)
        except Exception:
            session.rollback()
            logger.exception(
                "could not match loan request %s (appraisal %s); left for the next sweep",
                loan_id,
                appraisal.appraisal_id,
            )
    return stored


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
            monthly_income_minor=request.monthly_income_minor,
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
    monthly_income_minor: int | None = None,
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
        result=masked_result(result, monthly_income_minor=monthly_income_minor),
        created_at=created_at,
    )


def masked_result(
    result: MatchResult, *, monthly_income_minor: int | None = None
) -> dict[str, Any]:
    """``result`` as it is stored and shown (to dealers, lenders and webhooks), without the
    applicant's personal data: the exact credit score appears only as its 50-point band, and a
    payment-to-income ratio (``pti_pct`` and the refusal's params) only as the range the masked
    income band allows, e.g. ``"10.6%-21.3%"`` (the exact ratio beside the exact payment would
    give the income to the cent).

    ``monthly_income_minor`` places the ratio in the applicant's income band; without it the
    band is the one the ratio itself points to."""
    out = result.model_dump()
    if out.get("pti_pct") is not None and result.monthly_payment_minor is not None:
        out["pti_pct"] = _pti_range(
            result.monthly_payment_minor, out["pti_pct"], monthly_income_minor
        )
    for outcome in out["outcomes"]:
        params = outcome["params"]
        masked = dict(params)
        if "score" in params:
            masked["score"] = mask_score(int(params["score"]))
        if "pti_pct" in params and "payment_minor" in params:
            masked["pti_pct"] = _pti_range(
                int(params["payment_minor"]), float(params["pti_pct"]), monthly_income_minor
            )
        if masked == params:
            continue
        exact = outcome["message"]
        outcome["params"] = masked
        outcome["message"] = render_reason(outcome["code"], {**masked, "currency": result.currency})
        for sentences in (out["reasons"], out["notes"]):
            sentences[:] = [outcome["message"] if s == exact else s for s in sentences]
    return out


def _pti_range(payment_minor: int, pti_pct: float, income_minor: int | None) -> str:
    """The payment-to-income ratio as the range the applicant's masked income band allows."""
    if income_minor is None:
        income_minor = round(payment_minor * 100 / pti_pct) if pti_pct > 0 else 0
    low, high = income_band(income_minor)
    least = math.floor(payment_minor * 1000 / high) / 10
    if low == 0:
        return f"over {least:.1f}%"
    return f"{least:.1f}%-{math.ceil(payment_minor * 1000 / low) / 10:.1f}%"
