"""The engine's inputs: what is known about the collateral, and what the customer asks for.

:func:`collateral_from_appraisal` is the one place the wire appraisal
(:class:`edge.protocol.AppraisalBody`) becomes :class:`CollateralFacts`; everything downstream is
independent of the wire format.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.protocol import AppraisalBody, ValuationStatus
from gateway.matching.program import MAX_TERM_MONTHS, LoanKind, VehicleFlag

logger = logging.getLogger(__name__)

CURVE_MONTHS = MAX_TERM_MONTHS + 1
"""The residual curve the engine uses covers months 0..84."""


class CreditBand(StrEnum):
    """Credit bands a dealer can give instead of a score (Experian's score ranges).

    The engine prices a band at the *lowest* score in it, so a band never gets better terms than
    an actual score in that band would.
    """

    SUPER_PRIME = "super_prime"  # 781–850
    PRIME = "prime"  # 661–780
    NEAR_PRIME = "near_prime"  # 601–660
    SUBPRIME = "subprime"  # 501–600
    DEEP_SUBPRIME = "deep_subprime"  # 300–500


BAND_FLOOR_SCORE: dict[CreditBand, int] = {
    CreditBand.SUPER_PRIME: 781,
    CreditBand.PRIME: 661,
    CreditBand.NEAR_PRIME: 601,
    CreditBand.SUBPRIME: 501,
    CreditBand.DEEP_SUBPRIME: 300,
}

Minor = Annotated[int, Field(ge=0, le=10**11, description="Money in minor units (cents)")]
# CollateralFacts' bounds; collateral_from_appraisal treats a value beyond them as unknown.
_MAX_CURVE = 400
_MAX_AGE = 100
_MAX_ODOMETER_KM = 5_000_000


class CollateralFacts(BaseModel):
    """What the engine needs to know about one appraised car."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    appraisal_id: str = Field(min_length=1, max_length=64, description="The appraisal's UUID")
    value_minor: Minor | None = Field(
        None, description="Appraisal value in cents; null when the car needs a manual appraisal"
    )
    manual_appraisal_reason: str | None = Field(
        None, max_length=500, description="Why there is no value (manual appraisal required)"
    )
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 currency")
    vehicle_age_years: int | None = Field(
        None, ge=0, le=_MAX_AGE, description="As-of year minus model year; null when unknown"
    )
    odometer_km: float | None = Field(None, ge=0, le=_MAX_ODOMETER_KM, description="Odometer, km")
    flags: frozenset[str] = Field(
        frozenset(), description="Risk flag codes on the car (e.g. flood, salvage)"
    )
    condition_grade: float = Field(0, ge=0, le=5, description="Condition grade 0–5")
    photo_views: frozenset[str] = Field(
        frozenset(), description="Views with a photo that passed its checks"
    )
    residual_curve: tuple[float, ...] = Field(
        (),
        max_length=_MAX_CURVE,
        description="Forecast value ratio to today's value at month 0, 1, ... (1.0 at month 0)",
    )

    @model_validator(mode="after")
    def _valued_or_reason(self) -> Self:
        if self.value_minor is None and not self.manual_appraisal_reason:
            raise ValueError("a car without value_minor needs manual_appraisal_reason saying why")
        if any(not (0 < r <= 10) for r in self.residual_curve):
            raise ValueError("residual_curve ratios must be positive (and at most 10)")
        return self

    @property
    def is_valued(self) -> bool:
        return self.value_minor is not None and self.manual_appraisal_reason is None


class LoanRequest(BaseModel):
    """What the dealer asks for on the customer's behalf.

    Amount financed = ``amount_requested_minor`` − ``down_payment_minor`` + the taxes/fees and
    backend products the program allows to be financed (the rest is due at signing).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    loan_kind: LoanKind = Field(
        LoanKind.PURCHASE, description="purchase (car bought at the dealer) or equity (title)"
    )
    amount_requested_minor: Minor = Field(
        description="Purchase: the car's selling price. Equity: the cash the customer wants"
    )
    taxes_and_fees_minor: Minor = Field(0, description="Sales tax, title and registration fees")
    backend_products_minor: Minor = Field(0, description="GAP, service contract and the like")
    down_payment_minor: Minor = Field(0, description="Cash and trade-in equity put down")
    term_months: int = Field(ge=1, le=MAX_TERM_MONTHS, description="Requested term in months")
    monthly_income_minor: int = Field(
        gt=0,
        le=10**11,
        description="Gross monthly income in cents (more than 0: payment-to-income needs it)",
    )
    credit_score: int | None = Field(None, ge=250, le=900, description="Applicant's score")
    credit_band: CreditBand | None = Field(
        None, description="Used when no score is given; priced at the band's lowest score"
    )

    @model_validator(mode="after")
    def _score_or_band(self) -> Self:
        if self.credit_score is None and self.credit_band is None:
            raise ValueError("give the applicant's credit_score or credit_band")
        return self

    @property
    def effective_score(self) -> int:
        """The score the engine prices: the actual score, else the band's lowest score."""
        if self.credit_score is not None:
            return self.credit_score
        assert self.credit_band is not None  # the validator guarantees one of them
        return BAND_FLOOR_SCORE[self.credit_band]


_FLAG_CODES = frozenset(f.value for f in VehicleFlag)


def collateral_from_appraisal(
    body: AppraisalBody, *, as_of: date, extra_flags: Iterable[str] = ()
) -> CollateralFacts:
    """The facts about an appraised car, as of ``as_of`` (the day the match is made).

    ``extra_flags`` are flag codes raised outside the report, e.g. by the gateway across
    appraisals (``duplicate_photo``, ``odometer_rollback``).

    Age is ``as_of.year − model_year`` (never negative). Flags are the appraisal's flag codes plus
    condition deductions whose code names an excludable flag (salvage, flood, frame damage
    reported on the inspector's checklist). Only photos that passed their checks count. An
    appraisal whose valuation status is ``manual_appraisal_required`` (or that has no value) has
    no ``value_minor``, so every program declines it with ``manual_appraisal_required``.
    """
    valuation = body.valuation
    reason: str | None = None
    if valuation.status is ValuationStatus.MANUAL:
        reason = valuation.reason or "the valuation model could not value this car"
    elif valuation.value_minor is None:
        reason = "the appraisal carries no value"
    year = body.vehicle.model_year
    curve = tuple(valuation.residual_curve)
    if len(curve) > _MAX_CURVE or any(not (0 < r <= 10) for r in curve):
        # The wire takes any finite floats; a forecast the engine cannot use is treated as
        # missing (the residual rule then says so), not an error that leaves the request unmatched.
        logger.warning(
            "appraisal %s: residual curve unusable (%d points, each must be in (0, 10]); "
            "matched as if it had none",
            body.appraisal_id,
            len(curve),
        )
        curve = ()
    age = None if year is None else max(0, as_of.year - year)
    odometer = body.vehicle.odometer_km
    flags = {f.code for f in body.flags}
    flags.update(d.code for d in body.condition.deductions if d.code in _FLAG_CODES)
    flags.update(extra_flags)
    return CollateralFacts(
        appraisal_id=body.appraisal_id,
        value_minor=None if reason else valuation.value_minor,
        manual_appraisal_reason=reason,
        currency=valuation.currency,
        vehicle_age_years=age if age is None or age <= _MAX_AGE else None,
        odometer_km=odometer if odometer is None or odometer <= _MAX_ODOMETER_KM else None,
        flags=frozenset(flags),
        condition_grade=body.condition.grade,
        photo_views=frozenset(p.view for p in body.photos if p.passed),
        residual_curve=curve,
    )
