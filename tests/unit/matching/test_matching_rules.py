"""Each rule from a table: one change to the walking-skeleton deal and the outcome it must cause."""

from __future__ import annotations

import functools
from datetime import date
from typing import Any

import pytest

from gateway.matching import (
    Code,
    CollateralFacts,
    CreditBand,
    LoanKind,
    LoanRequest,
    MatchResult,
    ProgramSet,
    Rule,
    Status,
    apr_spread,
    compile_programs,
    load_programs,
    match,
    monthly_payment_minor,
    render_reason,
    sample_programs_dir,
)
from gateway.matching.reasons import BIT, FAIL_MASK, RULE_CODES

AS_OF = date(2026, 3, 1)
BANK = "first-harbor-bank-used-auto"
CU = "lakeshore-cu-auto"
CAPTIVE = "crescent-motor-acceptance-cpo"
SUBPRIME = "keystone-auto-credit-subprime"
TITLE = "sunbelt-title-equity"
ALL_VIEWS = frozenset({"front", "rear", "left", "right", "interior", "dashboard", "vin_plate"})


@functools.cache
def programs() -> ProgramSet:
    return compile_programs(load_programs(sample_programs_dir()))


def malibu(**changes: Any) -> CollateralFacts:
    """The walking-skeleton car: a 2019 Chevrolet Malibu LS appraised in 2026."""
    base: dict[str, Any] = {
        "appraisal_id": "6f1c2a9e-0000-4000-8000-000000000001",
        "value_minor": 1_250_000,
        "vehicle_age_years": 7,
        "odometer_km": 48_000.0,
        "condition_grade": 4.0,
        "photo_views": ALL_VIEWS,
        "residual_curve": tuple(0.987**m for m in range(85)),
    }
    base.update(changes)
    return CollateralFacts(**base)


def deal(**changes: Any) -> LoanRequest:
    """$9,000 over 48 months, $1,500 down, score 720, $5,500 a month."""
    base: dict[str, Any] = {
        "loan_kind": LoanKind.PURCHASE,
        "amount_requested_minor": 900_000,
        "down_payment_minor": 150_000,
        "term_months": 48,
        "monthly_income_minor": 550_000,
        "credit_score": 720,
    }
    base.update(changes)
    return LoanRequest(**base)


def result_for(program_id: str, results: list[MatchResult]) -> MatchResult:
    return next(r for r in results if r.program_id == program_id)


def codes(result: MatchResult) -> set[Code]:
    return {o.code for o in result.outcomes}


def test_the_walking_skeleton_deal_gets_at_least_three_offers() -> None:
    results = match(malibu(), deal(), programs(), as_of=AS_OF, with_curve=True)
    eligible = [r for r in results if r.eligible]
    assert len(eligible) >= 3
    assert {r.program_id for r in eligible} >= {BANK, CU, SUBPRIME}
    assert [r.rank for r in eligible] == list(range(1, len(eligible) + 1))
    for r in eligible:
        assert r.reasons == []
        assert r.amount_financed_minor == 750_000
        assert r.apr_pct is not None and r.term_months == 48
        assert r.monthly_payment_minor == monthly_payment_minor(750_000, round(r.apr_pct * 100), 48)
        assert r.ltv_curve_pct is not None and len(r.ltv_curve_pct) == 49
        assert r.ltv_curve_pct[0] == pytest.approx(60.0)
        assert r.ltv_curve_pct[-1] == 0.0
        assert r.peak_ltv_pct == pytest.approx(max(r.ltv_curve_pct), abs=0.01)
    spread = apr_spread(results)
    assert spread.eligible_count == len(eligible)
    assert spread.spread_pct == pytest.approx(
        max(r.apr_pct or 0 for r in eligible) - min(r.apr_pct or 0 for r in eligible)
    )
    # The captive takes cars up to 6 years old; the title lender lends only against owned cars.
    assert result_for(CAPTIVE, results).reasons == [
        "The car is 7 years old; this lender takes cars up to 6 years."
    ]
    title = result_for(TITLE, results)
    assert [o.code for o in title.outcomes if o.status is Status.FAIL] == [
        Code.LOAN_KIND_NOT_OFFERED
    ]
    assert all(o.status is Status.SKIPPED for o in title.outcomes[4:])


def test_every_rule_reports_an_outcome_in_order() -> None:
    for r in match(malibu(), deal(), programs(), as_of=AS_OF):
        assert [o.rule for o in r.outcomes] == [
            rule
            for rule in Rule
            for _ in range(max(1, sum(1 for o in r.outcomes if o.rule is rule)))
        ]
        assert all(o.message.endswith(".") for o in r.outcomes)


def test_bank_prices_the_demo_from_its_grid() -> None:
    bank = result_for(BANK, match(malibu(), deal(), programs(), as_of=AS_OF))
    # tier A (700+), 37–48 months, 7–8 years: 8.89 %; LTV 60 % earns no add-on.
    assert bank.credit_tier == "A"
    assert bank.apr_pct == 8.89
    assert bank.monthly_payment_minor == 18_625
    assert bank.ltv_pct == 60.0
    assert bank.pti_pct == round(100 * 18_625 / 550_000, 2)


CASES: list[tuple[str, dict[str, Any], dict[str, Any], str, Code, bool]] = [
    # (what, collateral changes, request changes, program, expected code, still eligible)
    ("salvage title", {"flags": frozenset({"salvage"})}, {}, CU, Code.EXCLUDED_FLAG, False),
    ("codes cleared", {"flags": frozenset({"codes_recently_cleared"})}, {}, BANK,
     Code.EXCLUDED_FLAG, False),
    ("an unknown flag is not excluded", {"flags": frozenset({"valuation_beyond_data"})}, {}, BANK,
     Code.TERM_OK, True),
    ("too old", {"vehicle_age_years": 11}, {}, BANK, Code.VEHICLE_TOO_OLD, False),
    ("age unknown", {"vehicle_age_years": None}, {}, BANK, Code.VEHICLE_AGE_UNKNOWN, False),
    ("too many km", {"odometer_km": 170_000.0}, {}, BANK, Code.ODOMETER_TOO_HIGH, False),
    ("odometer unknown", {"odometer_km": None}, {}, BANK, Code.ODOMETER_UNKNOWN, False),
    ("poor condition", {"condition_grade": 2.0}, {}, BANK, Code.CONDITION_TOO_LOW, False),
    ("missing photo", {"photo_views": ALL_VIEWS - {"vin_plate"}}, {}, BANK, Code.PHOTOS_MISSING,
     False),
    ("no residual forecast", {"residual_curve": ()}, {}, BANK, Code.RESIDUAL_CURVE_MISSING,
     False),
    ("manual appraisal", {"value_minor": None, "manual_appraisal_reason": "unknown trim"}, {},
     BANK, Code.MANUAL_APPRAISAL_REQUIRED, False),
    ("other currency", {"currency": "CAD"}, {}, BANK, Code.CURRENCY_MISMATCH, False),
    ("score too low", {}, {"credit_score": 550}, BANK, Code.CREDIT_SCORE_BELOW_MINIMUM, False),
    ("band priced at its floor", {}, {"credit_score": None, "credit_band": CreditBand.NEAR_PRIME},
     CU, Code.CREDIT_TIER_ASSIGNED, True),
    ("term cut by age", {}, {"term_months": 72}, BANK, Code.TERM_SHORTENED, True),
    ("term too short", {}, {"term_months": 12}, BANK, Code.TERM_TOO_SHORT, False),
    ("no rate in the grid", {"vehicle_age_years": 6}, {"credit_score": 630, "term_months": 72},
     BANK,
     Code.RATE_NOT_OFFERED, False),
    ("under the minimum", {}, {"amount_requested_minor": 500_000}, BANK,
     Code.AMOUNT_BELOW_MINIMUM, False),
    ("over the maximum", {"value_minor": 9_000_000, "vehicle_age_years": 1},
     {"amount_requested_minor": 8_000_000, "monthly_income_minor": 5_000_000}, BANK,
     Code.AMOUNT_ABOVE_MAXIMUM, False),
    ("long-term minimum", {"vehicle_age_years": 2, "odometer_km": 20_000.0},
     {"term_months": 84}, BANK, Code.AMOUNT_BELOW_LONG_TERM_MINIMUM, False),
    ("down payment too small", {}, {"down_payment_minor": 50_000}, SUBPRIME,
     Code.DOWN_PAYMENT_TOO_LOW, False),
    ("backend over the limit", {}, {"backend_products_minor": 300_000}, BANK,
     Code.BACKEND_ABOVE_LIMIT, False),
    ("LTV over the tier's limit", {}, {"amount_requested_minor": 1_800_000,
                                       "monthly_income_minor": 2_000_000}, BANK,
     Code.LTV_ABOVE_MAXIMUM, False),
    ("payment over the income limit", {}, {"monthly_income_minor": 100_000}, BANK,
     Code.PTI_EXCEEDED, False),
    ("program expired", {}, {}, "expired", Code.PROGRAM_NOT_IN_FORCE, False),
    ("equity at the title lender", {}, {"loan_kind": LoanKind.EQUITY, "down_payment_minor": 0,
                                        "amount_requested_minor": 500_000, "term_months": 24},
     TITLE, Code.CREDIT_TIER_ASSIGNED, True),
    ("title lender does not finance backend", {},
     {"loan_kind": LoanKind.EQUITY, "down_payment_minor": 0, "amount_requested_minor": 500_000,
      "term_months": 24, "backend_products_minor": 80_000}, TITLE, Code.BACKEND_NOT_FINANCED,
     True),
    ("title advance limit", {}, {"loan_kind": LoanKind.EQUITY, "down_payment_minor": 0,
                                 "amount_requested_minor": 900_000, "term_months": 24},
     TITLE, Code.LTV_ABOVE_MAXIMUM, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "car", "ask", "program_id", "code", "eligible"), CASES, ids=[c[0] for c in CASES]
)
def test_rule_table(
    what: str, car: dict[str, Any], ask: dict[str, Any], program_id: str, code: Code,
    eligible: bool,
) -> None:  # fmt: skip
    progs = list(programs().programs)
    if program_id == "expired":
        bank = next(p for p in progs if p.program_id == BANK)
        progs = [
            bank.model_copy(update={"program_id": "expired", "effective_to": date(2026, 2, 1)})
        ]
    results = match(malibu(**car), deal(**ask), progs, as_of=AS_OF)
    result = result_for(program_id, results)
    assert code in codes(result), (what, [o.message for o in result.outcomes])
    assert result.eligible is eligible, (what, result.reasons)
    outcome = next(o for o in result.outcomes if o.code is code)
    assert outcome.message == render_reason(code, outcome.params)
    if not eligible:
        assert outcome.message in result.reasons or code in {
            Code.CREDIT_TIER_ASSIGNED,
        }


def test_residual_rule_catches_a_car_that_falls_faster_than_the_loan() -> None:
    # 4 % a month: the value halves in 17 months while a 60-month balance barely moves.
    crash = malibu(residual_curve=tuple(0.96**m for m in range(85)), vehicle_age_years=3)
    ask = deal(amount_requested_minor=1_300_000, down_payment_minor=150_000, term_months=60)
    cu = result_for(CU, match(crash, ask, programs(), as_of=AS_OF, with_curve=True))
    assert Code.RESIDUAL_LTV_EXCEEDED in codes(cu)
    assert not cu.eligible
    assert cu.peak_ltv_month is not None and cu.peak_ltv_month > 0
    assert cu.ltv_curve_pct is not None
    assert max(cu.ltv_curve_pct) == pytest.approx(cu.peak_ltv_pct, abs=0.01)
    assert cu.max_amount_minor is not None and cu.max_amount_minor < cu.amount_financed_minor
    # Financing the maximum the engine reports passes the residual rule.
    fixed = deal(
        amount_requested_minor=cu.max_amount_minor + 150_000,
        down_payment_minor=150_000,
        term_months=60,
    )
    again = result_for(CU, match(crash, fixed, programs(), as_of=AS_OF))
    assert Code.RESIDUAL_LTV_EXCEEDED not in codes(again)


def test_short_residual_curves_are_extended_not_rejected() -> None:
    short = malibu(residual_curve=tuple(0.99**m for m in range(25)))
    bank = result_for(BANK, match(short, deal(), programs(), as_of=AS_OF))
    assert bank.eligible


def test_fast_depreciation_favours_shorter_terms_and_lower_ltv() -> None:
    progs = programs().programs
    cu = next(p for p in progs if p.program_id == CU)
    # Two versions of the same program, one priced slightly better but lending longer.
    long_cheap = cu.model_copy(update={"program_id": "long-cheap"})
    dearer = {
        tier: [[None if v is None else round(v + 1.5, 2) for v in row] for row in rows]
        for tier, rows in cu.rate_grid.rates.items()
    }
    short_dear = cu.model_copy(
        update={
            "program_id": "short-dear",
            "rate_grid": cu.rate_grid.model_copy(update={"rates": dearer}),
            "term_limits": cu.term_limits.model_copy(
                update={
                    "by_age": [
                        r.model_copy(update={"max_term_months": 36}) for r in cu.term_limits.by_age
                    ]
                }
            ),
        }
    )
    ask = deal(term_months=60)

    def best(monthly: float) -> str:
        car = malibu(residual_curve=tuple(monthly**m for m in range(85)))
        ranked = [r for r in match(car, ask, [long_cheap, short_dear], as_of=AS_OF) if r.eligible]
        return ranked[0].program_id

    assert best(0.996) == "long-cheap"  # slow depreciation: the cheaper 60-month loan wins
    assert best(0.975) == "short-dear"  # fast: the 36-month loan wins despite its higher APR


def test_rule_codes_and_bits_are_consistent() -> None:
    bit_codes = [c for c in Code if c in BIT]
    assert len(bit_codes) <= 32
    assert len(set(BIT.values())) == len(BIT)
    for rule, (ok, others) in RULE_CODES.items():
        assert ok not in BIT
        assert all(c in BIT for c in others), rule
    assert all(BIT[c] & FAIL_MASK for c in (Code.EXCLUDED_FLAG, Code.PTI_EXCEEDED))
    assert not BIT[Code.TERM_SHORTENED] & FAIL_MASK


def test_render_reason_never_raises() -> None:
    assert render_reason("no_such_code", {}) == "Outcome no_such_code."
    assert "?" in render_reason(Code.VEHICLE_TOO_OLD, {})
    text = render_reason(
        Code.DOWN_PAYMENT_TOO_LOW, {"down_minor": 50_000, "required_minor": 123_456}
    )
    assert text == "The down payment of $500.00 is below the $1,234.56 this lender requires."


def test_results_serialise_to_json() -> None:
    import json

    for r in match(malibu(), deal(), programs(), as_of=AS_OF, with_curve=True):
        doc = json.loads(json.dumps(r.model_dump()))
        assert doc["program_id"] == r.program_id
        assert len(doc["outcomes"]) == len(r.outcomes)
        assert doc["reasons"] == r.reasons


def test_a_rule_with_two_outcomes_reports_both_in_its_place() -> None:
    # A title lender that finances neither taxes and fees nor backend products: two notes for
    # one rule, in the rule's place and in the rule's order, beside programs with one outcome
    # a rule.
    progs = list(programs().programs)
    title = next(p for p in progs if p.program_id == TITLE)
    items = title.financed_items.model_copy(update={"taxes_and_fees": False})
    progs.append(title.model_copy(update={"program_id": "no-taxes", "financed_items": items}))
    ask = deal(
        loan_kind=LoanKind.EQUITY,
        down_payment_minor=0,
        amount_requested_minor=500_000,
        term_months=24,
        taxes_and_fees_minor=30_000,
        backend_products_minor=80_000,
    )
    results = match(malibu(), ask, progs, as_of=AS_OF)
    both = result_for("no-taxes", results)
    assert [o.code for o in both.outcomes if o.rule is Rule.FINANCED_ITEMS] == [
        Code.TAXES_FEES_NOT_FINANCED,
        Code.BACKEND_NOT_FINANCED,
    ]
    assert [o.rule for o in both.outcomes] == [
        rule for rule in Rule for _ in range(2 if rule is Rule.FINANCED_ITEMS else 1)
    ]
    assert both.eligible
    assert [o.code for o in result_for(TITLE, results).outcomes if o.status is Status.NOTE] == [
        Code.BACKEND_NOT_FINANCED
    ]
    for result in results:
        assert [o.rule for o in result.outcomes][:4] == list(Rule)[:4]
        assert all(o.message == render_reason(o.code, o.params) for o in result.outcomes)


def _only(program_id: str, **changes: Any) -> ProgramSet:
    """One sample program with top-level sections replaced (validated as any program is)."""
    program = next(p for p in programs().programs if p.program_id == program_id)
    document = program.model_dump(mode="json")
    for key, value in changes.items():
        document[key] = {**document[key], **value}
    return compile_programs([type(program).model_validate(document)])


@pytest.mark.parametrize("apr_floor", [0.01, 4.99, 19.99])
def test_a_deal_financed_exactly_at_the_residual_limit_passes_it(apr_floor: float) -> None:
    # Month 0's balance is the amount financed: its ratio to the value is exactly the LTV at
    # signing. In float32 it came out 1 ± 1e-7 (1e-4 at the lowest APRs) and refused such deals.
    rate_grid = {"floor_apr": apr_floor, "cap_apr": max(apr_floor, 29.99)}
    ps = _only(BANK, residual={"max_ltv_pct": 100}, rate_grid=rate_grid)
    flat = malibu(value_minor=1_500_000, vehicle_age_years=3, residual_curve=(1.0,) * 85)
    [result] = match(
        flat,
        deal(amount_requested_minor=1_500_000, down_payment_minor=0, monthly_income_minor=10**9),
        ps,
        as_of=AS_OF,
        with_curve=True,
    )
    assert result.ltv_pct == 100.0 and result.peak_ltv_pct == 100.0
    assert result.peak_ltv_month == 0 and Code.RESIDUAL_LTV_EXCEEDED not in codes(result)
    assert result.ltv_curve_pct is not None and result.ltv_curve_pct[0] == 100.0


def test_the_max_amount_quoted_passes_payment_to_income_and_a_cent_more_does_not() -> None:
    ps = programs()
    checked = 0
    for income in range(300_000, 300_400, 7):  # payments that round across the limit
        car = malibu(value_minor=3_000_000, vehicle_age_years=3)
        [quoted] = [
            r
            for r in match(car, deal(monthly_income_minor=income), ps, as_of=AS_OF)
            if r.program_id == CU
        ]
        if quoted.max_amount_minor is None or quoted.apr_pct is None:
            continue
        for financed, passes in (
            (quoted.max_amount_minor, True),
            (quoted.max_amount_minor + 1, False),
        ):
            again = deal(
                amount_requested_minor=financed, down_payment_minor=0, monthly_income_minor=income
            )
            result = result_for(CU, match(car, again, ps, as_of=AS_OF))
            if result.apr_pct != quoted.apr_pct or result.term_months != quoted.term_months:
                continue  # another price for another amount: not the quote's terms
            assert (Code.PTI_EXCEEDED not in codes(result)) is passes, (income, financed)
            checked += 1
    assert checked > 50


def test_percent_limits_are_exact_to_the_cent() -> None:
    # 29 % of $1,000.00 is $290.00, not 28,999.999999999996 cents.
    ps = _only(BANK, financed_items={"max_backend_pct_of_value": 29})
    car = malibu(value_minor=100_000, vehicle_age_years=3)
    [result] = match(car, deal(amount_requested_minor=50_000, backend_products_minor=29_000), ps,
                     as_of=AS_OF)  # fmt: skip
    assert Code.BACKEND_ABOVE_LIMIT not in codes(result)


def test_a_loan_request_needs_an_income() -> None:
    with pytest.raises(ValueError, match="greater than 0"):
        deal(monthly_income_minor=0)


def test_dealer_sentences_never_show_none() -> None:
    early = date(2026, 1, 15)  # before every sample program's effective_from
    results = match(malibu(vehicle_age_years=None), deal(term_months=84, credit_score=650),
                    programs(), as_of=early)  # fmt: skip
    later = match(malibu(vehicle_age_years=None), deal(term_months=84, credit_score=650),
                  programs(), as_of=AS_OF)  # fmt: skip
    messages = [o.message for r in (*results, *later) for o in r.outcomes]
    assert not [m for m in messages if "None" in m]
    assert any("last day: open-ended" in m for m in messages)
