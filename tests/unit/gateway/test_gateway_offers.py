"""Matching after ingest: what a crash between commit and matching leaves is matched later, once."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, func, select

from edge.protocol import Channel, PhotoRecord, encode, make_envelope, topic_for
from gateway.api.schemas import AppraisalStart, LoanRequestCreate
from gateway.context import GatewayContext
from gateway.db import Appraisal, CommandRow, LoanRequestRow, MatchRow, make_engine, migrate
from gateway.matching import Code, load_programs, sample_programs_dir
from gateway.services import appraisals as appraisals_service
from gateway.services import offers
from gateway.services.appraisals import attach_loan_request, start_appraisal, view_appraisal
from gateway.services.ingest import Inbound, ingest_batch
from gateway.services.programs import store_program
from gateway.services.sealing import Sealer
from tests.support.factories import appraisal_body

KIOSK = "dlr-001-k1"


@pytest.fixture
def context(tmp_path: Path) -> Iterator[GatewayContext]:
    engine = make_engine(f"sqlite:///{tmp_path / 'offers.db'}")
    migrate(engine)
    with Session(engine) as session:
        for program in load_programs(sample_programs_dir()):
            store_program(session, program, lender_org=program.lender)
    yield GatewayContext(engine=engine, sealer=Sealer(base64.urlsafe_b64encode(b"k" * 32)))
    engine.dispose()


def _stored_appraisal_without_matching(
    context: GatewayContext,
    credit_score: int = 720,
    down_payment_minor: int = 0,
    monthly_income_minor: int = 600_000,
    **body: Any,
) -> str:
    """A dealer's request with a loan, and the kiosk's appraisal committed by ingest: the state
    a gateway killed right after the commit (before its post-commit matching) leaves behind."""
    request = AppraisalStart.model_validate(
        {
            "kiosk_id": KIOSK,
            "vehicle": {"model": "Malibu", "trim": "LS Sedan 4D"},
            "loan_request": {
                "amount_minor": 900_000,
                "down_payment_minor": down_payment_minor,
                "term_months": 36,
                "monthly_income_minor": monthly_income_minor,
                "credit_score": credit_score,
                "consent": True,
            },
        }
    )
    with context.session() as session:
        view, _ = start_appraisal(context, session, dealer_org="Dealer A", request=request)
        report = appraisal_body(appraisal_id=view.appraisal_id, **body)
        env = make_envelope(KIOSK, report, seq=1)
        outcome = ingest_batch(
            session, [Inbound(topic_for(KIOSK, Channel.APPRAISALS), encode(env))]
        )
        assert outcome.new_appraisals == [view.appraisal_id]
    return view.appraisal_id


def _match_count(session: Session, appraisal_id: str) -> int:
    return int(
        session.exec(
            select(func.count()).select_from(MatchRow).where(MatchRow.appraisal_id == appraisal_id)
        ).one()
    )


def test_loan_requests_left_unmatched_are_matched_once(context: GatewayContext) -> None:
    appraisal_id = _stored_appraisal_without_matching(context)
    with context.session() as session:
        assert _match_count(session, appraisal_id) == 0
        stored = offers.match_pending(session, context.sealer)
        assert stored > 0 and _match_count(session, appraisal_id) == stored
        assert offers.match_pending(session, context.sealer) == 0  # nothing left to do
        assert _match_count(session, appraisal_id) == stored


def test_a_loan_request_that_cannot_be_matched_does_not_stop_the_others(
    context: GatewayContext, caplog: pytest.LogCaptureFixture
) -> None:
    broken_id = _stored_appraisal_without_matching(context)
    good_id = _stored_appraisal_without_matching(context)
    with context.session() as session:
        broken = session.exec(
            select(LoanRequestRow).where(LoanRequestRow.appraisal_id == broken_id)
        ).one()
        broken.term_months = 96  # stored before terms were bounded: the engine refuses it
        session.add(broken)
        session.commit()
        stored = offers.match_pending(session, context.sealer)
        assert stored > 0 and _match_count(session, good_id) == stored
        assert _match_count(session, broken_id) == 0
        left = session.exec(select(LoanRequestRow).where(LoanRequestRow.id == broken.id)).one()
        assert left.matched_at is None  # tried again by the next sweep
    assert f"could not match loan request {broken.id}" in caplog.text


def test_a_loan_request_claimed_by_another_matcher_is_not_matched_again(
    context: GatewayContext,
) -> None:
    appraisal_id = _stored_appraisal_without_matching(context)
    with context.session() as first, context.session() as second:
        # Both matchers read the request while it was unmatched (two workers, or ingest and
        # the start-up sweep); the first to commit wins, the second stores nothing.
        loan_a = first.exec(select(LoanRequestRow)).one()
        loan_b = second.exec(select(LoanRequestRow)).one()
        appraisal_a = first.get(Appraisal, appraisal_id)
        appraisal_b = second.get(Appraisal, appraisal_id)
        assert appraisal_a is not None and appraisal_b is not None
        stored = offers.match_loan_request(
            first, context.sealer, loan=loan_a, appraisal=appraisal_a
        )
        again = offers.match_loan_request(
            second, context.sealer, loan=loan_b, appraisal=appraisal_b
        )
        assert stored > 0 and again == 0
        assert _match_count(first, appraisal_id) == stored


EXACT = re.compile(r"\b517\b")  # not inside a UUID or a longer number


def test_the_applicants_exact_score_is_never_stored_or_shown_with_a_match(
    context: GatewayContext,
) -> None:
    appraisal_id = _stored_appraisal_without_matching(context, credit_score=517)
    with context.session() as session:
        offers.match_pending(session, context.sealer)
        rows = session.exec(select(MatchRow).where(MatchRow.appraisal_id == appraisal_id)).all()
        view = view_appraisal(context, session, dealer_org="Dealer A", appraisal_id=appraisal_id)
    below = [
        o
        for r in rows
        for o in r.result["outcomes"]
        if o["code"] == Code.CREDIT_SCORE_BELOW_MINIMUM
    ]
    assert below, "no sample program refused a 517 score"
    assert all(o["params"]["score"] == "500-549" for o in below)
    assert all(o["message"].startswith("A credit score of 500-549 is below") for o in below)
    # The stored result, the lenders' pull JSON and the dealer's view: no exact score anywhere.
    for row in rows:
        assert not EXACT.search(json.dumps(row.result)) and not EXACT.search(row.public_json)
        assert any("500-549" in reason for reason in row.result["reasons"]) == (
            any(o in below for o in row.result["outcomes"])
        )
    assert not EXACT.search(view.model_dump_json())


def _all_photos() -> list[PhotoRecord]:
    """Every view the sample lenders require, passed."""
    views = ("front", "rear", "left", "right", "interior", "dashboard", "vin_plate")
    return [
        PhotoRecord(view=view, sha256=f"{i:064x}", phash=f"{i:016x}", passed=True)
        for i, view in enumerate(views, start=1)
    ]


def test_each_loan_request_is_ranked_and_spread_on_its_own(context: GatewayContext) -> None:
    """A second request on the same car (another customer's score, another down payment) gets
    its own ranking and APR spread; the two customers' APRs are never compared."""
    appraisal_id = _stored_appraisal_without_matching(
        context, credit_score=780, down_payment_minor=200_000, photos=_all_photos()
    )
    second = LoanRequestCreate.model_validate(
        {
            "amount_minor": 900_000,
            "down_payment_minor": 200_000,
            "term_months": 36,
            "monthly_income_minor": 600_000,
            "credit_score": 640,
            "consent": True,
        }
    )
    with context.session() as session:
        offers.match_pending(session, context.sealer)
        attached = attach_loan_request(
            context, session, dealer_org="Dealer A", appraisal_id=appraisal_id, request=second
        )
        view = view_appraisal(context, session, dealer_org="Dealer A", appraisal_id=appraisal_id)
    first, latest = view.loan_requests
    assert latest.id == attached.id and attached.offers  # matched at once: the car is in
    for loan in (first, latest):
        assert loan.offers and {o.loan_request_id for o in loan.offers} == {loan.id}
        ranks = [o.rank for o in loan.offers if o.eligible]
        assert ranks == list(range(1, len(ranks) + 1))
        aprs = [o.apr_percent for o in loan.offers if o.eligible and o.apr_percent is not None]
        assert loan.apr_spread == (round(max(aprs) - min(aprs), 3) if aprs else None)
    # The top level shows the latest request: what the dealer is quoting now.
    assert [o.id for o in view.offers] == [o.id for o in latest.offers]
    assert view.apr_spread == latest.apr_spread
    first_aprs = {o.apr_percent for o in first.offers if o.eligible}
    latest_aprs = {o.apr_percent for o in latest.offers if o.eligible}
    assert first_aprs != latest_aprs  # the two customers really are priced apart


def test_a_refusal_for_payment_to_income_does_not_give_away_the_income(
    context: GatewayContext,
) -> None:
    """The exact ratio beside the exact payment is the income to the cent (payment / ratio);
    shown, it is only the range the applicant's masked income band ($1k-$2k) allows."""
    income = 123_456
    appraisal_id = _stored_appraisal_without_matching(
        context, down_payment_minor=200_000, monthly_income_minor=income, photos=_all_photos()
    )
    with context.session() as session:
        offers.match_pending(session, context.sealer)
        rows = session.exec(select(MatchRow).where(MatchRow.appraisal_id == appraisal_id)).all()
        view = view_appraisal(context, session, dealer_org="Dealer A", appraisal_id=appraisal_id)
    refused = [
        (row, o) for row in rows for o in row.result["outcomes"] if o["code"] == Code.PTI_EXCEEDED
    ]
    assert refused, "no sample program refused a payment of this share of income"
    for row, outcome in refused:
        payment = outcome["params"]["payment_minor"]
        exact = payment * 100 / income
        low, high = (float(p) for p in outcome["params"]["pti_pct"].rstrip("%").split("%-"))
        assert low <= exact <= high
        # no narrower than the band: the incomes it allows run from about $1k to about $2k
        assert payment * 100 / high <= 100_000 * 1.01 and payment * 100 / low >= 200_000 * 0.99
        for shown in (json.dumps(row.result), row.public_json, view.model_dump_json()):
            assert f"{exact:.1f}%" not in shown and f"{exact:.2f}" not in shown
    # Offers carry the ratio too (pti_pct): the same range, never the figure.
    for row in rows:
        if row.monthly_payment_minor is not None:
            exact = row.monthly_payment_minor * 100 / income
            assert f"{exact:.2f}" not in json.dumps(row.result) + row.public_json
            assert isinstance(row.result["pti_pct"], str) and "%-" in row.result["pti_pct"]


def test_two_starts_racing_with_one_idempotency_key_make_one_appraisal(
    context: GatewayContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = AppraisalStart.model_validate({"kiosk_id": KIOSK, "vehicle": {"model": "Malibu"}})
    with context.session() as session:
        first, made = start_appraisal(
            context, session, dealer_org="Dealer A", request=request, idempotency_key="k-1"
        )
        assert made
    # The second request looked for the key just before the first one committed it.
    real = appraisals_service._earlier_attempt
    looked: list[str] = []

    def racing(session: Session, dealer_org: str, key: str, fingerprint: str) -> str | None:
        looked.append(key)
        return None if len(looked) == 1 else real(session, dealer_org, key, fingerprint)

    monkeypatch.setattr(appraisals_service, "_earlier_attempt", racing)
    with context.session() as session:
        second, made = start_appraisal(
            context, session, dealer_org="Dealer A", request=request, idempotency_key="k-1"
        )
    assert looked == ["k-1", "k-1"]  # the insert hit the key, and the second look found it
    assert not made and second.appraisal_id == first.appraisal_id
    with context.session() as session:
        assert session.exec(select(func.count()).select_from(CommandRow)).one() == 1
