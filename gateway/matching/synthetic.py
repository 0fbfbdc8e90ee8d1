"""Synthetic programs, appraisals and loan requests for benchmarks and tests (seeded, pure).

Programs are the shipped samples with their numbers perturbed the way real rate sheets differ
between lenders of a kind (cut-offs, rates, advance rates, limits); cars and customers follow
plausible US used-car distributions (age, mileage, value, depreciation, credit scores, deal
structure). Nothing here is real data.
"""

from __future__ import annotations

import math
import random
from datetime import date
from typing import Any

from gateway.matching.facts import CURVE_MONTHS, CollateralFacts, LoanRequest
from gateway.matching.loader import load_programs, sample_programs_dir
from gateway.matching.program import LenderKind, LenderProgram, LoanKind, PhotoView, VehicleFlag

# Share of each kind of lender among generated programs.
_KIND_WEIGHTS = {
    LenderKind.BANK: 0.30,
    LenderKind.CREDIT_UNION: 0.25,
    LenderKind.CAPTIVE: 0.15,
    LenderKind.SUBPRIME: 0.20,
    LenderKind.TITLE_LENDER: 0.10,
}
_ALL_VIEWS = frozenset(v.value for v in PhotoView)


def _round2(x: float) -> float:
    return round(x + 1e-9, 2)


def _perturb(base: LenderProgram, i: int, rng: random.Random, as_of: date) -> LenderProgram:
    doc: dict[str, Any] = base.model_dump(mode="json")
    doc["program_id"] = f"{base.program_id}-{i:04d}"
    doc["lender"] = f"{base.lender} #{i}"
    doc["version"] = rng.randint(1, 20)
    # About 1 in 25 programs is expired, so the effective-date rule has work to do.
    if rng.random() < 0.04:
        doc["effective_from"] = date(as_of.year - 1, 1, 1).isoformat()
        doc["effective_to"] = date(as_of.year - 1, 12, 31).isoformat()
    shift = rng.randint(-15, 15)
    for tier in doc["credit"]["tiers"]:
        tier["min_score"] = min(900, max(250, tier["min_score"] + shift))
        tier["max_ltv_pct"] = max(20.0, tier["max_ltv_pct"] + rng.choice([-10, -5, 0, 0, 5]))
    scale = rng.uniform(0.9, 1.15)
    grid = doc["rate_grid"]
    for rows in grid["rates"].values():
        for row in rows:
            row[:] = [None if v is None else _round2(v * scale) for v in row]
    grid["floor_apr"] = _round2(grid["floor_apr"] * scale)
    grid["cap_apr"] = min(199.99, _round2(grid["cap_apr"] * scale))
    veh = doc["vehicle"]
    doc["affordability"]["max_pti_pct"] = (
        None
        if doc["affordability"]["max_pti_pct"] is None
        else doc["affordability"]["max_pti_pct"] + rng.choice([-2, 0, 0, 2, 3])
    )
    doc["residual"]["max_ltv_pct"] += rng.choice([-10, -5, 0, 5, 10])
    km_scale = rng.uniform(0.9, 1.1)
    veh["max_odometer_km"] = int(veh["max_odometer_km"] * km_scale)
    last_odo = doc["term_limits"]["by_odometer"][-1]
    last_odo["up_to_km"] = max(last_odo["up_to_km"], veh["max_odometer_km"])
    return LenderProgram.model_validate(doc)


def synthetic_programs(n: int, *, seed: int = 7, as_of: date) -> list[LenderProgram]:
    """``n`` programs perturbed from the samples, mixed by lender kind."""
    rng = random.Random(seed)
    by_kind = {p.lender_kind: p for p in load_programs(sample_programs_dir())}
    kinds = list(_KIND_WEIGHTS)
    weights = [_KIND_WEIGHTS[k] for k in kinds]
    return [_perturb(by_kind[rng.choices(kinds, weights)[0]], i, rng, as_of) for i in range(n)]


def synthetic_cases(n: int, *, seed: int = 11) -> tuple[list[CollateralFacts], list[LoanRequest]]:
    """``n`` appraised cars, each with a loan request."""
    rng = random.Random(seed)
    collaterals: list[CollateralFacts] = []
    requests: list[LoanRequest] = []
    for i in range(n):
        age = min(16, max(0, round(rng.gammavariate(3.0, 2.2))))
        km = max(1000.0, rng.gauss(17_500, 5_000) * max(age, 0.5))
        new_price = rng.uniform(22_000, 55_000)
        value = new_price * 0.86**age * rng.uniform(0.85, 1.1)
        monthly = rng.uniform(0.982, 0.993)  # 8–20 % a year
        curve = tuple(monthly**m * (1 - 0.0004 * m * rng.random()) for m in range(CURVE_MONTHS))
        flags: set[str] = set()
        for flag, p in (
            (VehicleFlag.CODES_RECENTLY_CLEARED, 0.03),
            (VehicleFlag.FLOOD, 0.01),
            (VehicleFlag.SALVAGE, 0.01),
            (VehicleFlag.FRAME_DAMAGE, 0.005),
            (VehicleFlag.ODOMETER_ROLLBACK, 0.005),
        ):
            if rng.random() < p:
                flags.add(flag.value)
        views = set(_ALL_VIEWS)
        if rng.random() < 0.1:
            views.discard(rng.choice(sorted(views)))
        manual = rng.random() < 0.01
        collaterals.append(
            CollateralFacts(
                appraisal_id=f"00000000-0000-4000-8000-{i:012d}",
                value_minor=None if manual else int(value * 100),
                manual_appraisal_reason="unknown trim" if manual else None,
                vehicle_age_years=age,
                odometer_km=round(km, 1),
                flags=frozenset(flags),
                condition_grade=round(min(5.0, max(0.5, rng.gauss(3.6, 0.7))), 1),
                photo_views=frozenset(views),
                residual_curve=curve,
            )
        )
        score = int(min(850, max(300, rng.gauss(690, 75))))
        income = int(rng.lognormvariate(math.log(5_200), 0.4) * 100)
        if rng.random() < 0.12:
            requests.append(
                LoanRequest(
                    loan_kind=LoanKind.EQUITY,
                    amount_requested_minor=int(value * rng.uniform(0.15, 0.6) * 100),
                    term_months=rng.choice([12, 18, 24, 36]),
                    monthly_income_minor=income,
                    credit_score=score,
                )
            )
            continue
        price = value * rng.uniform(0.95, 1.15)
        requests.append(
            LoanRequest(
                loan_kind=LoanKind.PURCHASE,
                amount_requested_minor=int(price * 100),
                taxes_and_fees_minor=int(price * 7) if rng.random() < 0.7 else 0,
                backend_products_minor=rng.randint(50_000, 250_000) if rng.random() < 0.4 else 0,
                down_payment_minor=int(price * rng.uniform(0.0, 0.25) * 100),
                term_months=rng.choices([36, 48, 60, 72, 84], [10, 20, 30, 30, 10])[0],
                monthly_income_minor=income,
                credit_score=score,
            )
        )
    return collaterals, requests
