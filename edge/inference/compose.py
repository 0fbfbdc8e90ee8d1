"""How a kiosk value is composed (pure functions over numbers; no model, no IO).

DESIGN.md "Valuation: how a value is composed":

1. catalogue base — the valuation model's price for the catalogue trim at the catalogue's
   reference mileage, in USD at the catalogue's price level (2005);
2. ageing — the residual model's value ratio from the catalogue's reference point (age 1 year,
   median mileage) to the car's age and odometer;
3. price level — CPI-U annual averages from the catalogue's year to the valuation year;
4. condition and OBD deductions — the condition grade as a ratio, OBD findings as amounts.

Deductions are policy, not learned: ``DeductionPolicy`` holds the defaults, documented in
``docs/valuation.md``, and can be replaced per deployment.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

KM_PER_MILE = 1.609344
DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class DeductionPolicy:
    """Condition and OBD deductions. Amounts are US dollars at the valuation date.

    The guidebook prices assume excellent condition (grade 5). Grades follow the NAAA 0–5 scale;
    fractional grades interpolate linearly between the table's points.
    """

    grade_ratio: dict[float, float] = field(
        default_factory=lambda: {
            5.0: 1.00,  # excellent: the guidebook's condition
            4.0: 0.94,  # good: minor reconditioning
            3.0: 0.86,  # average: normal wear, some repairs
            2.0: 0.74,  # below average: visible damage, mechanical work
            1.0: 0.58,  # rough: major repairs
            0.0: 0.35,  # salvage / inoperable
        }
    )
    mil_on_usd: float = 450.0  # diagnosis plus a typical emissions-related repair
    permanent_dtc_usd: float = 300.0  # each confirmed fault the ECU still holds
    permanent_dtc_max_count: int = 3
    readiness_incomplete_usd: float = 60.0  # each monitor that must complete before inspection
    readiness_incomplete_max_count: int = 5
    beyond_data_widening: float = 1.5  # log half-width multiplier when outside the data

    def condition_ratio(self, grade: float) -> float:
        if not 0.0 <= grade <= 5.0:
            raise ValueError(f"condition grade {grade} outside 0–5")
        points = sorted(self.grade_ratio.items())
        for (g0, r0), (g1, r1) in itertools.pairwise(points):
            if g0 <= grade <= g1:
                return r0 + (r1 - r0) * (grade - g0) / (g1 - g0)
        return points[-1][1]


def age_years(model_year: int, valued_at: datetime) -> float:
    """Years since 1 January of the model year (0 before it). Model years go on sale earlier,
    but the residual data's ages are counted the same way (listing year - model year)."""
    start = datetime(model_year, 1, 1, tzinfo=UTC)
    return max(0.0, (valued_at.astimezone(UTC) - start).days / DAYS_PER_YEAR)


def annual_kmi(
    age: float, mileage_kmi: float, default: float, bounds: tuple[float, float]
) -> float:
    """Thousand miles a year the car accrues over a loan term: its own rate (odometer / age)
    within ``bounds`` once it is a year old, else ``default``."""
    if age < 1.0:
        return default
    return min(max(mileage_kmi / age, bounds[0]), bounds[1])


def curve_points(age: float, mileage_kmi: float, rate_kmi: float, months: int) -> np.ndarray:
    """[months + 1, 2]: (age, mileage) at month 0..months, mileage accruing at ``rate_kmi``/year."""
    years = np.arange(months + 1, dtype=np.float64) / 12.0
    return np.stack([age + years, mileage_kmi + rate_kmi * years], axis=1)


def residual_curve(log_index: Sequence[float] | np.ndarray) -> list[float]:
    """Value ratio to month 0 from the log value index at months 0..n (rounded to 1e-6).

    The running minimum only absorbs float rounding: the model's slopes are non-positive, so the
    ratios already fall month by month (the property tests check the raw model output)."""
    arr = np.asarray(log_index, dtype=np.float64)
    ratios = np.round(np.exp(arr - arr[0]), 6)
    out: list[float] = np.minimum.accumulate(ratios).tolist()
    return out


def to_minor(usd: float) -> int:
    """US dollars to integer cents (never negative)."""
    return max(0, round(usd * 100))


@dataclass(frozen=True)
class Step:
    """One factor of the composition, before it becomes a protocol ValuationFactor."""

    code: str
    description: str
    value_after_usd: float
    ratio: float | None = None
    amount_usd: float | None = None


@dataclass(frozen=True)
class Composition:
    value_usd: float
    low_usd: float
    high_usd: float
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class ObdFacts:
    mil_on: bool = False
    permanent_dtc_count: int = 0
    readiness_incomplete_count: int = 0


def compose(
    *,
    base_usd: float,
    base_description: str,
    ageing_ratio: float | None,
    ageing_description: str,
    price_ratio: float,
    price_description: str,
    condition_grade: float | None,
    obd: ObdFacts,
    log_halfwidth: float,
    policy: DeductionPolicy,
) -> Composition:
    """Apply the factors in order; the range is ``value·exp(±log_halfwidth)`` before amounts."""
    steps = [Step("catalogue_base", base_description, base_usd, amount_usd=base_usd)]
    value = base_usd
    ratios: list[tuple[str, str, float]] = []
    if ageing_ratio is not None:
        ratios.append(("ageing", ageing_description, ageing_ratio))
    ratios.append(("price_level", price_description, price_ratio))
    if condition_grade is None:
        ratios.append(
            (
                "condition",
                "condition not graded: the guidebook's excellent condition is assumed",
                1.0,
            )
        )
    else:
        ratios.append(
            (
                "condition",
                f"condition grade {condition_grade:g} of 5",
                policy.condition_ratio(condition_grade),
            )
        )
    for code, text, r in ratios:
        value *= r
        steps.append(Step(code, text, value, ratio=r))
    low = value * math.exp(-log_halfwidth)
    high = value * math.exp(log_halfwidth)
    amounts: list[tuple[str, str, float]] = []
    if obd.mil_on:
        amounts.append(("obd_mil", "malfunction indicator lamp on", policy.mil_on_usd))
    if obd.permanent_dtc_count > 0:
        n = min(obd.permanent_dtc_count, policy.permanent_dtc_max_count)
        amounts.append(
            (
                "obd_permanent_dtc",
                f"{obd.permanent_dtc_count} permanent trouble code(s) "
                f"({n} counted at {policy.permanent_dtc_usd:g} USD)",
                n * policy.permanent_dtc_usd,
            )
        )
    if obd.readiness_incomplete_count > 0:
        n = min(obd.readiness_incomplete_count, policy.readiness_incomplete_max_count)
        amounts.append(
            (
                "obd_readiness",
                f"{obd.readiness_incomplete_count} readiness monitor(s) incomplete "
                f"({n} counted at {policy.readiness_incomplete_usd:g} USD)",
                n * policy.readiness_incomplete_usd,
            )
        )
    for code, text, amount in amounts:
        value = max(0.0, value - amount)
        low = max(0.0, low - amount)
        high = max(0.0, high - amount)
        steps.append(Step(code, text, value, amount_usd=-amount))
    return Composition(value, low, high, tuple(steps))
