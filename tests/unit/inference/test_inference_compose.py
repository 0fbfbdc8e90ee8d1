"""Pure composition rules: CPI factor, deductions, ages, mileage accrual, curve shape."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.inference import compose as cmp
from edge.inference.cpi import CPI_U_ANNUAL_AVERAGE, LAST_YEAR, price_level


def test_price_level_ratio_of_annual_averages() -> None:
    pl = price_level(2005, 2019)
    assert pl.ratio == pytest.approx(255.657 / 195.3)
    assert not pl.stale
    assert "2005 → 2019" in pl.describe()


def test_price_level_past_the_table_uses_last_year_and_says_so() -> None:
    pl = price_level(2005, LAST_YEAR + 3)
    assert pl.to_year == LAST_YEAR
    assert pl.stale
    assert pl.ratio == pytest.approx(CPI_U_ANNUAL_AVERAGE[LAST_YEAR] / 195.3)
    assert "last published" in pl.describe()


def test_price_level_unknown_base_year_is_an_error() -> None:
    with pytest.raises(ValueError, match="1990"):
        price_level(1990, 2020)


def test_condition_ratio_table_and_interpolation() -> None:
    p = cmp.DeductionPolicy()
    assert p.condition_ratio(5) == 1.0
    assert p.condition_ratio(4) == pytest.approx(0.94)
    assert p.condition_ratio(4.5) == pytest.approx(0.97)
    with pytest.raises(ValueError):
        p.condition_ratio(5.5)


@given(st.floats(0, 5), st.floats(0, 5))
def test_a_better_grade_never_lowers_the_ratio(a: float, b: float) -> None:
    p = cmp.DeductionPolicy()
    lo, hi = sorted((a, b))
    assert p.condition_ratio(lo) <= p.condition_ratio(hi)


def test_age_counts_from_first_of_january_of_the_model_year() -> None:
    assert cmp.age_years(2019, datetime(2020, 1, 1, tzinfo=UTC)) == pytest.approx(1.0, abs=0.01)
    assert cmp.age_years(2027, datetime(2026, 11, 1, tzinfo=UTC)) == 0.0


def test_annual_mileage_own_rate_bounded_default_when_new() -> None:
    assert cmp.annual_kmi(0.5, 10.0, 12.0, (5.0, 30.0)) == 12.0
    assert cmp.annual_kmi(4.0, 60.0, 12.0, (5.0, 30.0)) == 15.0
    assert cmp.annual_kmi(4.0, 400.0, 12.0, (5.0, 30.0)) == 30.0
    assert cmp.annual_kmi(4.0, 1.0, 12.0, (5.0, 30.0)) == 5.0


def test_curve_points_accrue_mileage_monthly() -> None:
    pts = cmp.curve_points(2.0, 24.0, 12.0, 84)
    assert len(pts) == 85
    assert tuple(pts[0]) == (2.0, 24.0)
    assert tuple(pts[12]) == pytest.approx((3.0, 36.0))


def test_residual_curve_starts_at_one_and_follows_the_index() -> None:
    curve = cmp.residual_curve([0.0, -0.1, -0.2])
    assert curve == [1.0, round(math.exp(-0.1), 6), round(math.exp(-0.2), 6)]


def _compose(**kw: object) -> cmp.Composition:
    args: dict[str, object] = dict(
        base_usd=10_000.0,
        base_description="base",
        ageing_ratio=0.5,
        ageing_description="age",
        price_ratio=1.5,
        price_description="cpi",
        condition_grade=4.0,
        obd=cmp.ObdFacts(),
        log_halfwidth=0.1,
        policy=cmp.DeductionPolicy(),
    )
    args.update(kw)
    return cmp.compose(**args)  # type: ignore[arg-type]


def test_compose_applies_ratios_in_order_then_amounts() -> None:
    c = _compose(obd=cmp.ObdFacts(mil_on=True, permanent_dtc_count=5, readiness_incomplete_count=2))
    codes = [s.code for s in c.steps]
    assert codes == [
        "catalogue_base",
        "ageing",
        "price_level",
        "condition",
        "obd_mil",
        "obd_permanent_dtc",
        "obd_readiness",
    ]
    before_amounts = 10_000 * 0.5 * 1.5 * 0.94
    assert c.steps[3].value_after_usd == pytest.approx(before_amounts)
    # Permanent codes are capped at three; readiness counts two at 60 USD.
    assert [s.amount_usd for s in c.steps[4:]] == [-450.0, -900.0, -120.0]
    assert c.value_usd == pytest.approx(before_amounts - 1470.0)
    assert c.low_usd == pytest.approx(before_amounts * math.exp(-0.1) - 1470.0)
    assert c.high_usd == pytest.approx(before_amounts * math.exp(0.1) - 1470.0)


def test_compose_ungraded_condition_is_listed_with_ratio_one() -> None:
    c = _compose(condition_grade=None)
    cond = next(s for s in c.steps if s.code == "condition")
    assert cond.ratio == 1.0 and "not graded" in cond.description


def test_deductions_never_drive_the_value_below_zero() -> None:
    c = _compose(base_usd=100.0, obd=cmp.ObdFacts(mil_on=True))
    assert c.value_usd == 0.0 and c.low_usd == 0.0


@given(st.floats(0, 1e6, allow_nan=False))
def test_to_minor_is_cents_and_never_negative(usd: float) -> None:
    assert cmp.to_minor(usd) == round(usd * 100)
    assert cmp.to_minor(-usd) == 0 or usd == 0
