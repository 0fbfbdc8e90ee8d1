"""The lender program document: a rate sheet and its eligibility rules, validated.

A program is what a lender publishes (YAML or JSON, see :mod:`gateway.matching.loader`). It is
shaped like a US auto-finance rate sheet:

- who: ``program_id``, ``lender``, ``lender_kind``, ``version`` and the dates it is in force;
- what: ``loan_kind`` (``purchase`` for a car bought at the dealer, ``equity`` for a loan against
  a car the borrower owns — auto equity / title loans) and ``currency``;
- ``credit``: the score model and the tiers (score cut-off and maximum LTV per tier);
- ``rate_grid``: buy rate by tier × term band × vehicle-age band, LTV add-ons, floor and cap;
- ``term_limits``: the longest term by vehicle age and by odometer;
- ``amount``: amount financed limits, with higher minimums for long terms;
- ``financed_items``: what the loan amount may include (taxes and fees, backend products);
- ``affordability``: payment-to-income limit and minimum down payment (purchase loans);
- ``vehicle``: age, odometer, excluded flags, required photos, minimum condition grade;
- ``residual``: the loan-to-value ceiling that must hold in *every* month of the term, as the
  balance amortises and the car depreciates.

Every model forbids unknown keys and converts no types (``"4"`` or ``true`` is not a number; only
enum names and ISO dates are read from text); every field has a description and bounds; rules that
tie fields together fail with a plain sentence saying what is wrong and what to change.

Money is in integer minor units (cents). APRs are percent, quoted to a hundredth (basis points), as
rate sheets quote them; the engine works in integer basis points.
"""

from __future__ import annotations

import itertools
from datetime import date
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

SCHEMA_VERSION = 1
MAX_TERM_MONTHS = 84
"""The longest term the engine evaluates (the residual curve runs month 0..84)."""
MAX_APR_PCT = 199.99


class _Strict(BaseModel):
    # strict: a rate sheet that says `version: "4"` or `floor_apr: true` has a mistake in it.
    # Enums and dates opt out (``strict=False``): in a document they can only be text.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class LoanKind(StrEnum):
    """What the loan finances."""

    PURCHASE = "purchase"  # a car bought at the dealer
    EQUITY = "equity"  # cash against a car the borrower already owns (auto equity / title loan)


class LenderKind(StrEnum):
    BANK = "bank"
    CREDIT_UNION = "credit_union"
    CAPTIVE = "captive"
    SUBPRIME = "subprime"
    TITLE_LENDER = "title_lender"
    ONLINE = "online"
    OTHER = "other"


class ScoreModel(StrEnum):
    """The credit score a program's cut-offs are written against."""

    FICO_8 = "fico_8"
    FICO_9 = "fico_9"
    FICO_AUTO_8 = "fico_auto_8"
    FICO_AUTO_9 = "fico_auto_9"
    VANTAGESCORE_3 = "vantagescore_3"
    VANTAGESCORE_4 = "vantagescore_4"


class VehicleFlag(StrEnum):
    """Risk flags a program may exclude (appraisal flag codes or condition deduction codes)."""

    SALVAGE = "salvage"
    FLOOD = "flood"
    FRAME_DAMAGE = "frame_damage"
    ODOMETER_ROLLBACK = "odometer_rollback"
    CODES_RECENTLY_CLEARED = "codes_recently_cleared"
    VIN_MISMATCH = "vin_mismatch"
    DUPLICATE_PHOTO = "duplicate_photo"


class PhotoView(StrEnum):
    """Photo views a program may require (the names the kiosk uses on the wire)."""

    FRONT = "front"
    REAR = "rear"
    LEFT = "left"
    RIGHT = "right"
    INTERIOR = "interior"
    DASHBOARD = "dashboard"
    VIN_PLATE = "vin_plate"


Apr = Annotated[
    float,
    Field(ge=0, le=MAX_APR_PCT, description="Annual percentage rate, percent, to 0.01"),
]
Minor = Annotated[int, Field(ge=0, le=10**11, description="Money in minor units (cents)")]
Term = Annotated[int, Field(ge=1, le=MAX_TERM_MONTHS, description="Months")]


class CrossFieldError(ValueError):
    """A cross-field rule broken; ``loc`` is where, relative to the model that checked it."""

    def __init__(self, message: str, *loc: str | int) -> None:
        super().__init__(message)
        self.loc: tuple[str | int, ...] = loc


def apr_to_bp(apr: float) -> int:
    """An APR in percent as integer basis points (6.49 → 649)."""
    return round(apr * 100)


def _check_hundredths(value: float, what: str) -> float:
    if abs(value * 100 - round(value * 100)) > 1e-6:
        raise ValueError(
            f"{what} {value} has more than two decimals; rate sheets quote APRs to 0.01% "
            f"(write {round(value, 2)})"
        )
    return value


# --- identity ---------------------------------------------------------------------------------


class CreditTier(_Strict):
    """One credit tier: everyone scoring at least ``min_score`` (and below the better tier)."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9+_-]{0,15}$",
        description="Tier label as the rate sheet prints it, e.g. 'A+', 'tier1'",
    )
    min_score: int = Field(ge=250, le=900, description="Lowest score in this tier")
    max_ltv_pct: float = Field(
        gt=0,
        le=200,
        description="Largest amount financed as a percentage of the appraisal value, at signing",
    )
    description: str = Field("", max_length=200, description="Free text for people")


class CreditPolicy(_Strict):
    score_model: ScoreModel = Field(
        ScoreModel.FICO_AUTO_8,
        strict=False,
        description="The score the cut-offs are written against",
    )
    tiers: list[CreditTier] = Field(
        min_length=1,
        max_length=12,
        description="Tiers from best to worst; a score below the last tier's cut-off is declined",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise CrossFieldError(f"credit tier names must be unique, got {names}", "tiers")
        for i, (better, worse) in enumerate(zip(self.tiers, self.tiers[1:], strict=False)):
            if worse.min_score >= better.min_score:
                raise CrossFieldError(
                    f"credit tiers go from best to worst, so tier {worse.name!r} must start "
                    f"below tier {better.name!r} ({worse.min_score} is not below "
                    f"{better.min_score}); reorder the tiers or fix the cut-offs",
                    "tiers",
                    i + 1,
                    "min_score",
                )
        return self


class LtvAddon(_Strict):
    """A rate add-on for deals financed above an LTV at signing (common on rate sheets)."""

    above_ltv_pct: float = Field(gt=0, le=200, description="Applies when LTV exceeds this")
    add_apr: float = Field(ge=0, le=20, description="Percentage points added to the buy rate")

    @field_validator("add_apr")
    @classmethod
    def _hundredths(cls, v: float) -> float:
        return _check_hundredths(v, "add_apr")


class RateGrid(_Strict):
    """Buy rates: for each tier, one row per term band, one rate per vehicle-age band."""

    term_bands_months: list[Term] = Field(
        min_length=1,
        max_length=10,
        description="Upper bound of each term band, shortest first: [36, 48, 60] means "
        "1–36, 37–48 and 49–60 months",
    )
    age_bands_years: list[Annotated[int, Field(ge=0, le=40)]] = Field(
        min_length=1,
        max_length=10,
        description="Upper bound of each vehicle-age band in years, youngest first: [2, 5, 10] "
        "means 0–2, 3–5 and 6–10 years",
    )
    floor_apr: Apr = Field(0.0, description="No offer is priced below this APR")
    cap_apr: Apr = Field(MAX_APR_PCT, description="No offer is priced above this APR")
    rates: dict[str, list[list[Apr | None]]] = Field(
        description="Tier name → rows (one per term band) of rates (one per age band); null "
        "means the lender does not offer that cell",
    )
    ltv_addons: list[LtvAddon] = Field(
        default_factory=list,
        max_length=8,
        description="Add-ons by LTV at signing; the highest threshold exceeded applies",
    )

    @field_validator("floor_apr", "cap_apr")
    @classmethod
    def _hundredths(cls, v: float) -> float:
        return _check_hundredths(v, "APR")

    @model_validator(mode="after")
    def _shape(self) -> Self:
        _strictly_increasing(self.term_bands_months, "term_bands_months", "term_bands_months")
        _strictly_increasing(self.age_bands_years, "age_bands_years", "age_bands_years")
        _strictly_increasing(
            [a.above_ltv_pct for a in self.ltv_addons], "ltv_addons thresholds", "ltv_addons"
        )
        if self.floor_apr > self.cap_apr:
            raise CrossFieldError(
                f"floor_apr {self.floor_apr} is above cap_apr {self.cap_apr}; the floor must "
                "not exceed the cap",
                "floor_apr",
            )
        adds = [a.add_apr for a in self.ltv_addons]
        if adds != sorted(adds):
            raise CrossFieldError(
                "ltv_addons must not add less for a higher LTV; sort add_apr ascending with "
                "the thresholds",
                "ltv_addons",
            )
        n_terms, n_ages = len(self.term_bands_months), len(self.age_bands_years)
        for tier, rows in self.rates.items():
            if len(rows) != n_terms:
                raise CrossFieldError(
                    f"rates[{tier!r}] has {len(rows)} rows but there are {n_terms} term bands; "
                    "give one row per term band, shortest first",
                    "rates",
                    tier,
                )
            for i, row in enumerate(rows):
                if len(row) != n_ages:
                    raise CrossFieldError(
                        f"rates[{tier!r}] row {i + 1} (terms up to "
                        f"{self.term_bands_months[i]} months) has {len(row)} rates but there "
                        f"are {n_ages} age bands; give one rate per age band, youngest first",
                        "rates",
                        tier,
                        i,
                    )
                for v in row:
                    if v is not None:
                        _check_hundredths(v, f"rates[{tier!r}] rate")
        return self


class TermByAge(_Strict):
    up_to_years: int = Field(ge=0, le=40, description="Applies to cars up to this age")
    max_term_months: Term = Field(description="Longest term for those cars")


class TermByOdometer(_Strict):
    up_to_km: int = Field(ge=0, le=2_000_000, description="Applies up to this odometer reading")
    max_term_months: Term = Field(description="Longest term for those cars")


class TermLimits(_Strict):
    min_term_months: Term = Field(12, description="Shortest term offered")
    by_age: list[TermByAge] = Field(
        min_length=1, max_length=20, description="Longest term by vehicle age, youngest first"
    )
    by_odometer: list[TermByOdometer] = Field(
        min_length=1, max_length=20, description="Longest term by odometer, lowest first"
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        _strictly_increasing([r.up_to_years for r in self.by_age], "by_age up_to_years", "by_age")
        _strictly_increasing(
            [r.up_to_km for r in self.by_odometer], "by_odometer up_to_km", "by_odometer"
        )
        return self


class LongTermMinimum(_Strict):
    term_over_months: Term = Field(description="Applies to terms longer than this")
    min_financed_minor: Minor = Field(description="Smallest amount financed for those terms")


class AmountLimits(_Strict):
    min_financed_minor: Minor = Field(description="Smallest amount financed, cents")
    max_financed_minor: Minor = Field(description="Largest amount financed, cents")
    long_term_minimums: list[LongTermMinimum] = Field(
        default_factory=list,
        max_length=10,
        description="Higher minimums for long terms, shortest threshold first",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min_financed_minor > self.max_financed_minor:
            raise CrossFieldError(
                f"min_financed_minor {self.min_financed_minor} is above max_financed_minor "
                f"{self.max_financed_minor}; the minimum must not exceed the maximum",
                "min_financed_minor",
            )
        _strictly_increasing(
            [m.term_over_months for m in self.long_term_minimums],
            "long_term_minimums term_over_months",
            "long_term_minimums",
        )
        for i, m in enumerate(self.long_term_minimums):
            if not self.min_financed_minor <= m.min_financed_minor <= self.max_financed_minor:
                raise CrossFieldError(
                    f"the minimum for terms over {m.term_over_months} months "
                    f"({m.min_financed_minor}) must lie between min_financed_minor and "
                    "max_financed_minor",
                    "long_term_minimums",
                    i,
                    "min_financed_minor",
                )
        return self


class FinancedItems(_Strict):
    """What the loan amount may include besides the car (or the cash, for equity loans)."""

    taxes_and_fees: bool = Field(
        True, description="Sales tax, title and registration fees may be financed"
    )
    backend_products: bool = Field(
        True, description="GAP, service contracts and similar products may be financed"
    )
    max_backend_pct_of_value: float | None = Field(
        None,
        ge=0,
        le=100,
        description="Backend products may not exceed this percentage of the appraisal value",
    )


class Affordability(_Strict):
    max_pti_pct: float | None = Field(
        None,
        gt=0,
        le=100,
        description="Largest monthly payment as a percentage of gross monthly income",
    )
    min_down_payment_pct: float = Field(
        0, ge=0, le=100, description="Purchase loans: smallest down payment, percent of the price"
    )
    min_down_payment_minor: Minor = Field(
        0, description="Purchase loans: smallest down payment in cents"
    )


class VehicleRules(_Strict):
    max_age_years: int = Field(ge=0, le=40, description="Oldest car accepted (as-of year − MY)")
    max_odometer_km: int = Field(ge=0, le=2_000_000, description="Highest odometer accepted")
    excluded_flags: list[Annotated[VehicleFlag, Strict(False)]] = Field(
        default_factory=lambda: [
            VehicleFlag.SALVAGE,
            VehicleFlag.FLOOD,
            VehicleFlag.FRAME_DAMAGE,
            VehicleFlag.ODOMETER_ROLLBACK,
        ],
        description="A car carrying any of these flags is declined",
    )
    required_photos: list[Annotated[PhotoView, Strict(False)]] = Field(
        default_factory=list, description="Views that must have a photo that passed its checks"
    )
    min_condition_grade: float = Field(0, ge=0, le=5, description="Lowest condition grade (0–5)")

    @field_validator("excluded_flags", "required_photos")
    @classmethod
    def _once_each(cls, values: list[StrEnum]) -> list[StrEnum]:
        seen = [v.value for v in values]
        twice = sorted({v for v in seen if seen.count(v) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} listed more than once; list each once")
        return values


class ResidualRule(_Strict):
    max_ltv_pct: float = Field(
        gt=0,
        le=300,
        description="Balance ÷ forecast value must stay at or below this in every month of the "
        "term",
    )


class LenderProgram(_Strict):
    """One version of one lender program."""

    schema_version: Literal[1] = Field(1, description="Version of this document format")
    program_id: str = Field(
        pattern=r"^[a-z0-9][a-z0-9._-]{2,79}$",
        description="Stable id, lowercase, e.g. 'first-harbor-used-auto'",
    )
    lender: str = Field(min_length=1, max_length=120, description="Lender name as shown")
    lender_kind: LenderKind = Field(LenderKind.OTHER, strict=False, description="Kind of lender")
    version: int = Field(1, ge=1, le=1_000_000, description="Version of this program")
    effective_from: date = Field(strict=False, description="First day the program applies")
    effective_to: date | None = Field(
        None,
        strict=False,
        description="Last day the program applies (inclusive); null means open-ended",
    )
    loan_kind: LoanKind = Field(strict=False, description="purchase or equity (title) loans")
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 currency")
    description: str = Field("", max_length=2000, description="Free text for people")
    credit: CreditPolicy
    rate_grid: RateGrid
    term_limits: TermLimits
    amount: AmountLimits
    financed_items: FinancedItems = Field(default_factory=FinancedItems)
    affordability: Affordability = Field(default_factory=Affordability)
    vehicle: VehicleRules
    residual: ResidualRule

    @field_validator("effective_from", "effective_to", mode="before")
    @classmethod
    def _iso_date(cls, value: object) -> object:
        # Without this a number would be read as a Unix timestamp.
        if value is None or isinstance(value, str | date):
            return value
        raise ValueError(f"write the date as YYYY-MM-DD (got {value!r})")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise CrossFieldError(
                f"effective_to {self.effective_to} is before effective_from "
                f"{self.effective_from}; the program must be in force for at least one day",
                "effective_to",
            )
        tiers = [t.name for t in self.credit.tiers]
        missing = [t for t in tiers if t not in self.rate_grid.rates]
        unknown = [t for t in self.rate_grid.rates if t not in tiers]
        if missing or unknown:
            raise CrossFieldError(
                "rate_grid.rates must have exactly one entry per credit tier"
                + (f"; missing: {missing}" if missing else "")
                + (f"; not a tier: {unknown}" if unknown else ""),
                "rate_grid",
                "rates",
            )
        self._check_tier_monotonic(tiers)
        longest_band = self.rate_grid.term_bands_months[-1]
        limits = [("by_age", i, x) for i, x in enumerate(self.term_limits.by_age)] + [
            ("by_odometer", i, x) for i, x in enumerate(self.term_limits.by_odometer)
        ]
        shortest = self.term_limits.min_term_months
        for table, i, limit in limits:
            if limit.max_term_months < shortest:
                raise CrossFieldError(
                    f"term_limits.{table}[{i}] allows at most {limit.max_term_months} months but "
                    f"min_term_months is {shortest}: those cars could never get a term; raise "
                    "the limit, lower min_term_months, or exclude the cars "
                    "(vehicle.max_age_years, vehicle.max_odometer_km)",
                    "term_limits",
                    table,
                    i,
                    "max_term_months",
                )
            if limit.max_term_months > longest_band:
                raise CrossFieldError(
                    f"term_limits allow {limit.max_term_months} months but the rate grid's "
                    f"longest term band ends at {longest_band}; add a term band or lower the "
                    "limit",
                    "term_limits",
                    table,
                    i,
                    "max_term_months",
                )
        if self.term_limits.min_term_months > longest_band:
            raise CrossFieldError(
                f"min_term_months {self.term_limits.min_term_months} is longer than every "
                "term band",
                "term_limits",
                "min_term_months",
            )
        if self.term_limits.by_age[-1].up_to_years < self.vehicle.max_age_years:
            raise CrossFieldError(
                f"term_limits.by_age stops at {self.term_limits.by_age[-1].up_to_years} years "
                f"but vehicle.max_age_years accepts {self.vehicle.max_age_years}; cover every "
                "age the program accepts",
                "term_limits",
                "by_age",
            )
        if self.term_limits.by_odometer[-1].up_to_km < self.vehicle.max_odometer_km:
            raise CrossFieldError(
                f"term_limits.by_odometer stops at {self.term_limits.by_odometer[-1].up_to_km} "
                f"km but vehicle.max_odometer_km accepts {self.vehicle.max_odometer_km}; cover "
                "every odometer reading the program accepts",
                "term_limits",
                "by_odometer",
            )
        if self.rate_grid.age_bands_years[-1] < self.vehicle.max_age_years:
            raise CrossFieldError(
                f"rate_grid.age_bands_years stops at {self.rate_grid.age_bands_years[-1]} "
                f"years but vehicle.max_age_years accepts {self.vehicle.max_age_years}; add an "
                "age band",
                "rate_grid",
                "age_bands_years",
            )
        if self.loan_kind is LoanKind.EQUITY and (
            self.affordability.min_down_payment_pct or self.affordability.min_down_payment_minor
        ):
            raise CrossFieldError(
                "an equity (title) loan has no down payment; remove min_down_payment_pct and "
                "min_down_payment_minor or make loan_kind purchase",
                "affordability",
            )
        return self

    def _check_tier_monotonic(self, tiers: list[str]) -> None:
        grid = self.rate_grid
        for better, worse in itertools.pairwise(tiers):
            for ti, term in enumerate(grid.term_bands_months):
                for ai, age in enumerate(grid.age_bands_years):
                    b = grid.rates[better][ti][ai]
                    w = grid.rates[worse][ti][ai]
                    cell = f"terms up to {term} months, cars up to {age} years"
                    if w is not None and b is None:
                        raise CrossFieldError(
                            f"tier {worse!r} has a rate for {cell} but the better tier "
                            f"{better!r} does not; a cell offered to a worse tier must be "
                            "offered to every better tier",
                            "rate_grid",
                            "rates",
                            better,
                            ti,
                            ai,
                        )
                    if w is not None and b is not None and b > w:
                        raise CrossFieldError(
                            f"tier {better!r} pays {b}% for {cell}, more than the worse tier "
                            f"{worse!r} ({w}%); a better tier must never get a higher rate",
                            "rate_grid",
                            "rates",
                            worse,
                            ti,
                            ai,
                        )

    def is_effective(self, on: date) -> bool:
        """Whether the program is in force on ``on`` (both ends inclusive)."""
        return self.effective_from <= on and (self.effective_to is None or on <= self.effective_to)


def _strictly_increasing(values: list[int] | list[float], what: str, *loc: str | int) -> None:
    for a, b in itertools.pairwise(values):
        if b <= a:
            raise CrossFieldError(
                f"{what} must be strictly increasing (each bound above the one before), got "
                f"{list(values)}",
                *loc,
            )
