"""Invariants of the engine over generated cars and deals (Hypothesis)."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from gateway.matching import (
    Code,
    CollateralFacts,
    LoanKind,
    LoanRequest,
    MatchResult,
    ProgramSet,
    Rule,
    RuleOutcome,
    Status,
    VehicleFlag,
    amortisation_schedule,
    compile_programs,
    load_programs,
    match,
    match_batch,
    monthly_payment_minor,
    render_reason,
    sample_programs_dir,
)
from gateway.matching.engine import _RecentOutcomes, _rounded2, _shared, _shared_outcome
from gateway.matching.reasons import (
    GATING_CODES,
    Partial,
    SentenceWriter,
    _grouped,
    _money_digits,
    _pct_texts,
    fill_columns,
    format_money,
    partial,
)
from gateway.matching.synthetic import synthetic_cases, synthetic_programs

AS_OF = date(2026, 3, 1)
SAMPLES = compile_programs(load_programs(sample_programs_dir()))
# The samples plus perturbed copies: more tiers, add-ons and limits for the properties to meet.
MIXED = compile_programs([*SAMPLES.programs, *synthetic_programs(25, seed=3, as_of=AS_OF)])
VIEWS = ["front", "rear", "left", "right", "interior", "dashboard", "vin_plate"]
MINIMUM_CODES = {Code.AMOUNT_BELOW_MINIMUM, Code.AMOUNT_BELOW_LONG_TERM_MINIMUM}
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def cars(draw: st.DrawFn) -> CollateralFacts:
    monthly = draw(st.floats(0.95, 1.0))
    return CollateralFacts(
        appraisal_id="00000000-0000-4000-8000-000000000000",
        value_minor=draw(st.integers(100_000, 8_000_000)),
        vehicle_age_years=draw(st.integers(0, 18)),
        odometer_km=draw(st.floats(0, 320_000)),
        flags=frozenset(draw(st.sets(st.sampled_from([f.value for f in VehicleFlag]), max_size=2))),
        condition_grade=draw(st.floats(0, 5)),
        photo_views=frozenset(draw(st.sets(st.sampled_from(VIEWS), min_size=4))),
        residual_curve=tuple(monthly**m for m in range(draw(st.integers(1, 90)))),
    )


@st.composite
def deals(draw: st.DrawFn) -> LoanRequest:
    kind = draw(st.sampled_from([LoanKind.PURCHASE, LoanKind.PURCHASE, LoanKind.EQUITY]))
    return LoanRequest(
        loan_kind=kind,
        amount_requested_minor=draw(st.integers(0, 9_000_000)),
        taxes_and_fees_minor=draw(st.integers(0, 400_000)),
        backend_products_minor=draw(st.sampled_from([0, 0, 90_000, 250_000])),
        down_payment_minor=draw(st.integers(0, 1_000_000)),
        term_months=draw(st.integers(1, 84)),
        monthly_income_minor=draw(st.integers(1, 2_000_000)),
        credit_score=draw(st.integers(250, 900)),
    )


@st.composite
def clean_cars(draw: st.DrawFn) -> CollateralFacts:
    """Cars most programs lend against: young, unflagged, every photo, slow to depreciate."""
    monthly = draw(st.floats(0.985, 1.0))
    return CollateralFacts(
        appraisal_id="00000000-0000-4000-8000-000000000000",
        value_minor=draw(st.integers(1_500_000, 5_000_000)),
        vehicle_age_years=draw(st.integers(0, 5)),
        odometer_km=draw(st.floats(0, 90_000)),
        flags=frozenset(),
        condition_grade=draw(st.floats(3.5, 5)),
        photo_views=frozenset(VIEWS),
        residual_curve=tuple(monthly**m for m in range(85)),
    )


@st.composite
def affordable_deals(draw: st.DrawFn) -> LoanRequest:
    """Purchase loans a prime applicant with a good income can get."""
    return LoanRequest(
        loan_kind=LoanKind.PURCHASE,
        amount_requested_minor=draw(st.integers(600_000, 3_000_000)),
        taxes_and_fees_minor=draw(st.integers(0, 100_000)),
        down_payment_minor=draw(st.integers(0, 300_000)),
        term_months=draw(st.sampled_from([36, 48, 60])),
        monthly_income_minor=draw(st.integers(800_000, 2_000_000)),
        credit_score=draw(st.integers(700, 850)),
    )


# Random cars and deals almost never get an offer (none in 3,600 pairs when measured), so on
# their own the properties about offers would hold vacuously; half the examples are clean.
any_car = st.one_of(cars(), clean_cars())
any_deal = st.one_of(deals(), affordable_deals())


def by_program(results: list[MatchResult]) -> dict[str, MatchResult]:
    return {r.program_id: r for r in results}


def failing(r: MatchResult) -> set[Code]:
    return {o.code for o in r.outcomes if o.status is Status.FAIL}


def _offer_removed_by_more_down(car: CollateralFacts, ask: LoanRequest, extra: int) -> bool:
    more = ask.model_copy(update={"down_payment_minor": ask.down_payment_minor + extra})
    after = by_program(match(car, more, SAMPLES, as_of=AS_OF))
    return any(
        b.eligible and not after[b.program_id].eligible
        for b in match(car, ask, SAMPLES, as_of=AS_OF)
    )


FIND = settings(max_examples=400, database=None, deadline=None, phases=[Phase.generate])


def test_the_generated_deals_reach_offers_and_offers_taken_away() -> None:
    # The down-payment property below is only as good as its examples: they must include
    # offers, and offers that more down payment takes away (under the minimum financed).
    find(
        st.tuples(clean_cars(), affordable_deals()),
        lambda pair: any(r.eligible for r in match(pair[0], pair[1], SAMPLES, as_of=AS_OF)),
        settings=FIND,
    )
    find(
        st.tuples(clean_cars(), affordable_deals(), st.integers(1, 2_000_000)),
        lambda triple: _offer_removed_by_more_down(*triple),
        settings=FIND,
    )


@SETTINGS
@given(car=any_car, ask=any_deal, extra=st.integers(1, 2_000_000))
def test_more_down_payment_never_raises_apr_or_peak_ltv(
    car: CollateralFacts, ask: LoanRequest, extra: int
) -> None:
    more = ask.model_copy(update={"down_payment_minor": ask.down_payment_minor + extra})
    before = by_program(match(car, ask, MIXED, as_of=AS_OF))
    after = by_program(match(car, more, MIXED, as_of=AS_OF))
    for pid, b in before.items():
        a = after[pid]
        if b.apr_pct is not None and a.apr_pct is not None:
            assert a.apr_pct <= b.apr_pct, pid
        if b.peak_ltv_pct is not None and a.peak_ltv_pct is not None:
            assert a.peak_ltv_pct <= b.peak_ltv_pct + 0.011, pid
        if b.eligible and not a.eligible:
            # Only the program's minimum amount financed may take an offer away.
            assert failing(a) <= MINIMUM_CODES and failing(a), (pid, failing(a))


@SETTINGS
@given(car=any_car, ask=any_deal, better=st.integers(1, 300))
def test_a_better_score_never_raises_the_apr(
    car: CollateralFacts, ask: LoanRequest, better: int
) -> None:
    assert ask.credit_score is not None
    up = ask.model_copy(update={"credit_score": min(900, ask.credit_score + better)})
    worse = by_program(match(car, ask, MIXED, as_of=AS_OF))
    for pid, b in by_program(match(car, up, MIXED, as_of=AS_OF)).items():
        w = worse[pid]
        if b.apr_pct is not None and w.apr_pct is not None:
            assert b.apr_pct <= w.apr_pct, pid


@SETTINGS
@given(car=cars(), ask=deals())
def test_an_excluded_flag_always_excludes(car: CollateralFacts, ask: LoanRequest) -> None:
    for r in match(car, ask, MIXED, as_of=AS_OF):
        program = next(p for p in MIXED.programs if p.program_id == r.program_id)
        if car.flags & {f.value for f in program.vehicle.excluded_flags}:
            assert not r.eligible
            if not failing(r) & set(GATING_CODES):
                assert Code.EXCLUDED_FLAG in failing(r)


@settings(max_examples=300, deadline=None)
@given(
    principal=st.integers(1, 20_000_000),
    apr_bp=st.integers(0, 19_999),
    term=st.integers(1, 84),
)
def test_payments_amortise_the_amount_exactly(principal: int, apr_bp: int, term: int) -> None:
    schedule = amortisation_schedule(principal, apr_bp, term)
    assert len(schedule) == term
    assert sum(i.principal_minor for i in schedule) == principal
    assert schedule[-1].balance_minor == 0
    assert all(i.balance_minor >= 0 for i in schedule)
    assert all(i.payment_minor == i.interest_minor + i.principal_minor for i in schedule)
    payment = monthly_payment_minor(principal, apr_bp, term)
    balance = principal
    for inst in schedule:
        # interest is the balance times the monthly rate, rounded half up to the cent
        assert inst.interest_minor == (2 * balance * apr_bp + 120000) // 240000
        balance = inst.balance_minor
    if apr_bp < 4000:  # a typical auto rate: the last payment is close to the level one
        growth = (1 + apr_bp / 120000) ** term
        assert abs(schedule[-1].payment_minor - payment) <= term * growth + 1


def test_a_zero_rate_loan_is_straight_line() -> None:
    assert monthly_payment_minor(1_200_000, 0, 48) == 25_000
    assert [i.interest_minor for i in amortisation_schedule(1_200_000, 0, 48)] == [0] * 48


def test_known_payment() -> None:
    # $20,000 at 6.00 % for 60 months: $386.66 (the textbook figure).
    assert monthly_payment_minor(2_000_000, 600, 60) == 38_666


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(cars(), deals()), min_size=1, max_size=12), st.integers(1, 90))
def test_batch_agrees_with_single_matches_whatever_the_chunk(
    cases: list[tuple[CollateralFacts, LoanRequest]], chunk: int
) -> None:
    cars_, deals_ = [c for c, _ in cases], [d for _, d in cases]
    batch = match_batch(cars_, deals_, MIXED, as_of=AS_OF, chunk_pairs=chunk)
    whole = match_batch(cars_, deals_, MIXED, as_of=AS_OF)
    for name in ("eligible", "outcome_mask", "apr_bp", "monthly_payment_minor", "rank"):
        assert np.array_equal(getattr(batch, name), getattr(whole, name)), name
    for i, (car, ask) in enumerate(cases):
        singles = by_program(match(car, ask, MIXED, as_of=AS_OF))
        for j, pid in enumerate(batch.program_ids):
            s = singles[pid]
            assert bool(batch.eligible[i, j]) == s.eligible
            assert (s.apr_pct is None) == (batch.apr_bp[i, j] < 0)
            if s.apr_pct is not None:
                assert round(s.apr_pct * 100) == batch.apr_bp[i, j]
                assert s.monthly_payment_minor == batch.monthly_payment_minor[i, j]
            assert (s.rank or 0) == batch.rank[i, j]
            expected = {o.code for o in s.outcomes if o.status in (Status.FAIL, Status.NOTE)}
            assert set(batch.codes(i, j)) == expected
        spread = batch.apr_spread(i)
        eligible = [r.apr_pct for r in singles.values() if r.eligible and r.apr_pct is not None]
        assert spread.eligible_count == len(eligible)
        if eligible:
            assert spread.min_apr_pct == min(eligible)
            assert spread.max_apr_pct == max(eligible)
        ranks = sorted(int(x) for x in batch.rank[i] if x > 0)
        assert ranks == list(range(1, len(ranks) + 1))


def test_empty_inputs() -> None:
    empty = match_batch([], [], SAMPLES, as_of=AS_OF)
    assert empty.pairs == 0
    assert match(
        CollateralFacts(appraisal_id="x", value_minor=1, vehicle_age_years=1, odometer_km=1.0),
        LoanRequest(amount_requested_minor=1, term_months=12, monthly_income_minor=1,
                    credit_score=700),
        ProgramSet([]),
        as_of=AS_OF,
    ) == []  # fmt: skip


def test_program_set_is_built_once_and_reused() -> None:
    assert compile_programs(SAMPLES) is SAMPLES


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(car=cars(), ask=deals())
def test_explanations_do_not_depend_on_the_other_programs(
    car: CollateralFacts, ask: LoanRequest
) -> None:
    together = by_program(match(car, ask, MIXED, as_of=AS_OF, with_curve=True))
    for program in MIXED.programs:
        (alone,) = match(car, ask, [program], as_of=AS_OF, with_curve=True)
        both = together[program.program_id]
        assert alone.outcomes == both.outcomes
        assert alone.ltv_curve_pct == both.ltv_curve_pct
        assert alone.model_dump() | {"rank": None, "score": None} == both.model_dump() | {
            "rank": None,
            "score": None,
        }


@SETTINGS
@given(car=cars(), ask=deals())
def test_every_sentence_is_what_render_reason_says(car: CollateralFacts, ask: LoanRequest) -> None:
    # The single match renders in bulk, with program parts prerendered: never different text.
    for r in match(car, ask, MIXED, as_of=AS_OF, with_curve=True):
        for o in r.outcomes:
            assert o.message == render_reason(o.code, o.params), (r.program_id, o.code)


def piece_columns(partials: list[Partial]) -> list[list[str]]:
    """The pieces of ``partials`` as columns, as the engine gathers them for fill_columns."""
    assert all(p.pieces is not None for p in partials)
    return [list(column) for column in zip(*(p.pieces or () for p in partials), strict=True)]


@given(st.lists(st.floats(0, 2_000, allow_nan=False), max_size=40))
def test_bulk_rounding_is_pythons(values: list[float]) -> None:
    assert _rounded2(np.array(values, np.float64)).tolist() == [round(v, 2) for v in values]


def test_bulk_sentences_fall_back_where_a_value_is_odd() -> None:
    writer = SentenceWriter()
    part = partial(Code.PTI_EXCEEDED, {"currency": "USD", "max_pti_pct": 18.0})
    params: list[dict[str, Any]] = [
        {"currency": "USD", "payment_minor": 123_456, "pti_pct": 21.25, "max_pti_pct": 18.0},
        {"currency": "USD", "payment_minor": None, "pti_pct": 21.25, "max_pti_pct": 18.0},
        {"currency": "EUR", "payment_minor": -5, "pti_pct": 21.25, "max_pti_pct": 18.0},
    ]
    texts = writer.fill_many(Code.PTI_EXCEEDED, [part, part, part], params)
    assert texts == [render_reason(Code.PTI_EXCEEDED, p) for p in params]
    assert texts[0] == (
        "A payment of $1,234.56 is 21.2% of monthly income; this lender allows up to 18.0%."
    )


@given(
    currency=st.sampled_from(["USD", "CAD", "EUR", "XYZ"]),
    tier=st.text(min_size=1, max_size=6),
    rows=st.lists(
        st.tuples(
            st.integers(-(10**12), 10**12),
            st.floats(-1e6, 1e6, allow_nan=False),
            st.integers(-10, 10**15),
        ),
        min_size=1,
        max_size=30,
    ),
)
def test_column_sentences_are_render_reasons(
    currency: str, tier: str, rows: list[tuple[int, float, int]]
) -> None:
    # The bulk path renders each distinct value once and whole columns at a time: the same text
    # as render_reason, or None (then the engine renders row by row).
    part = partial(
        Code.LTV_ABOVE_MAXIMUM, {"currency": currency, "tier": tier, "max_ltv_pct": 120.0}
    )
    assert part is not None
    amounts = np.array([r[0] for r in rows], np.int64)
    pcts = np.array([r[1] for r in rows], np.float64)
    most = np.array([r[2] for r in rows], np.int64)
    value = np.full(len(rows), 1_234_567, np.int64)
    pieces = piece_columns([part] * len(rows))
    texts = fill_columns(part.fields, pieces, [amounts, value, pcts, most])
    if (amounts < 0).any() or (most < 0).any():
        assert texts is None
        return
    assert texts == [
        render_reason(
            Code.LTV_ABOVE_MAXIMUM,
            {"currency": currency, "amount_minor": a, "value_minor": 1_234_567, "ltv_pct": pct,
             "tier": tier, "max_ltv_pct": 120.0, "max_amount_minor": m},
        )
        for a, pct, m in zip(amounts.tolist(), pcts.tolist(), most.tolist(), strict=True)
    ]  # fmt: skip


def test_column_sentences_of_distances_round_as_render_reason() -> None:
    part = partial(Code.ODOMETER_TOO_HIGH, {"max_odometer_km": 250_000})
    assert part is not None
    odo = np.array([0.5, 1.5, 2.5, 123_456.5, 99.49], np.float64)
    pieces = piece_columns([part] * odo.size)
    texts = fill_columns(part.fields, pieces, [odo])
    assert texts == [
        render_reason(Code.ODOMETER_TOO_HIGH, {"odometer_km": o, "max_odometer_km": 250_000})
        for o in odo.tolist()
    ]
    assert fill_columns(part.fields, [[p] for p in part.pieces or ()], [np.array([np.inf])]) is None


@given(
    st.lists(
        st.one_of(st.integers(0, 10**6), st.integers(0, 10**11), st.integers(0, 10**16)),
        max_size=40,
    )
)
def test_money_digit_tables_write_what_format_money_writes(minors: list[int]) -> None:
    # Amounts under ten million units come from tables of digit groups, larger ones from format.
    assert _money_digits(minors) == [format_money(m).removeprefix("$") for m in minors]


@given(
    st.lists(
        st.one_of(
            st.floats(0, 1_000, allow_nan=False).map(lambda v: round(v, 2)),
            st.integers(0, 20_000).map(lambda n: n / 20),  # ties in the second decimal
            st.floats(allow_nan=True, allow_infinity=True),
            st.integers(-5, 5_000),
        ),
        min_size=60,
        max_size=120,
    )
)
def test_percent_tables_write_what_format_writes(values: list[float]) -> None:
    # Many percentages are rounded in numpy and looked up; ties, odd and huge values fall back.
    assert _pct_texts(values) == [f"{v:.1f}%" for v in values]


@given(st.one_of(st.integers(-(10**7), 10**7), st.integers()))
def test_grouped_digits_are_formats(n: int) -> None:
    assert _grouped(n) == f"{n:,}"


def test_pairs_with_equal_numbers_share_outcomes_that_are_each_pairs_own() -> None:
    # Many programs with equal limits: their failing outcomes are built once and shared, and
    # each is still exactly what that program alone gives.
    programs = compile_programs(synthetic_programs(120, seed=7, as_of=AS_OF))
    collaterals, requests = synthetic_cases(40, seed=8)
    shared = 0
    for car, ask in list(zip(collaterals, requests, strict=True))[::8]:
        together = match(car, ask, programs, as_of=AS_OF, with_curve=True)
        seen: dict[int, int] = {}
        for r in together:
            for o in r.outcomes:
                if o.code in (Code.LTV_ABOVE_MAXIMUM, Code.RESIDUAL_LTV_EXCEEDED):
                    seen[id(o)] = seen.get(id(o), 0) + 1
        shared += sum(n > 1 for n in seen.values())
        for r in together:
            program = programs.programs[
                [p.program_id for p in programs.programs].index(r.program_id)
            ]
            (alone,) = match(car, ask, [program], as_of=AS_OF, with_curve=True)
            assert alone._replace(rank=None) == r._replace(rank=None)  # rank: among all
    assert shared  # the case this test is about happened


def test_shared_finds_equal_rows_and_refuses_confusable_numbers() -> None:
    first, each = _shared([np.array([3, 1, 3, 2]), np.array([0.5, 0.5, 0.5, 0.5])]) or (None, None)
    assert first is not None and each is not None
    assert sorted(first.tolist()) == [0, 1, 3] and each[0] == each[2] != each[1] != each[3]
    assert _shared([np.array([1, 2, 3])]) is None  # all differ
    assert _shared([np.array([0.0, -0.0])]) is None  # equal, but written differently
    assert _shared([np.array([2**53, 2**53 + 1])]) is None  # floats would confuse them
    nan = _shared([np.array([np.nan, np.nan, 1.0, 1.0])])
    assert nan is not None and nan[1][0] != nan[1][1]  # NaN is not equal to NaN


def test_recent_outcomes_keep_those_in_use_when_the_newer_generation_fills() -> None:
    writer = SentenceWriter()

    def outcome(age: int) -> RuleOutcome:
        params = {"age_years": age, "max_age_years": 10}
        message = writer.render(Code.VEHICLE_TOO_OLD, params)
        return RuleOutcome(Rule.VEHICLE_AGE, Status.FAIL, Code.VEHICLE_TOO_OLD, message, params)

    recent = _RecentOutcomes(2)
    kept = {age: outcome(age) for age in (11, 12, 13, 14)}
    recent.put((11,), kept[11])
    recent.put((12,), kept[12])
    recent.put((13,), kept[13])  # the newer is full: 11 and 12 become the older generation
    assert recent.get((11,)) is kept[11]  # found there, and moved to the newer
    recent.put((14,), kept[14])  # full again: 12, not used since, is dropped
    assert recent.get((12,)) is None
    assert recent.get((11,)) is kept[11] and recent.get((14,)) is kept[14]
    assert len(recent.newer) <= 2 and len(recent.older) <= 2


def test_outcomes_recurring_across_matches_are_kept_by_value_and_type() -> None:
    writer = SentenceWriter()
    older = {"age_years": 12, "max_age_years": 10}
    first = _shared_outcome(Rule.VEHICLE_AGE, Status.FAIL, Code.VEHICLE_TOO_OLD, older, writer)
    again = _shared_outcome(
        Rule.VEHICLE_AGE, Status.FAIL, Code.VEHICLE_TOO_OLD, dict(older), writer
    )
    assert again is first and first.message == render_reason(Code.VEHICLE_TOO_OLD, older)
    as_float = {"age_years": 12.0, "max_age_years": 10}  # equal, but JSON writes it otherwise
    other = _shared_outcome(Rule.VEHICLE_AGE, Status.FAIL, Code.VEHICLE_TOO_OLD, as_float, writer)
    assert other is not first and type(other.params["age_years"]) is float
    odd = {"flags": ["flood"]}  # not hashable: built, not kept
    made = _shared_outcome(Rule.FLAGS, Status.FAIL, Code.EXCLUDED_FLAG, odd, writer)
    assert made.params is odd and made.message == render_reason(Code.EXCLUDED_FLAG, odd)
