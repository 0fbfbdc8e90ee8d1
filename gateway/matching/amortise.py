"""Fully amortising loan arithmetic in integer cents and integer basis points.

The monthly rate is ``apr_bp / 120000`` (APR in basis points over twelve months). The payment is
``P·r / (1 − (1 + r)^−n)`` rounded half up to the cent; interest each month is rounded half up to
the cent, and the last payment takes whatever balance is left, so the schedule repays the
principal exactly.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def growth(apr_bp: npt.ArrayLike, months: npt.ArrayLike) -> FloatArray:
    """``(1 + r)^months`` for APRs in basis points; at 0% it is ``1 + months``.

    The 0% convention keeps one formula for balances: the remaining-balance fraction
    ``(G_n − G_m) / (G_n − 1)`` becomes ``(n − m) / n``, the straight-line balance of a 0% loan.
    """
    bp = np.asarray(apr_bp, dtype=np.float64)
    m = np.asarray(months, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(bp > 0, np.power(1.0 + bp / 120000.0, m), 1.0 + m)


MAX_BP = 19_999  # 199.99 %, the schema's ceiling
TABLE_MONTHS = 85  # months 0..84


@functools.cache
def growth_tables() -> tuple[npt.NDArray[np.float32], FloatArray]:
    """``G[bp, m]`` for every APR in basis points and months 0..84, as float32 (for LTV curves)
    and float64 (for money). Built once per process (about 20 MB): every payment in the engine
    and in :func:`monthly_payment_minor` is computed from the same numbers."""
    # Repeated multiplication (a running product) instead of a power per cell: 30× faster to
    # build, and the error after 84 steps is a few ulps, far below a cent.
    steps = np.empty((MAX_BP + 1, TABLE_MONTHS), np.float64)
    steps[:, 0] = 1.0
    steps[:, 1:] = 1.0 + np.arange(MAX_BP + 1, dtype=np.float64)[:, None] / 120000.0
    g64 = np.cumprod(steps, axis=1, dtype=np.float64)
    g64[0] = 1.0 + np.arange(TABLE_MONTHS)  # the 0 % convention of growth()
    return g64.astype(np.float32), g64


def factor_from_growth(
    apr_bp: npt.NDArray[Any], term_months: npt.NDArray[Any], g_n: FloatArray
) -> FloatArray:
    """Monthly payment per unit of principal, given ``G_n``: ``r·G_n / (G_n − 1)``, or ``1/n``.

    Terms are at least one month and ``G_n`` is :func:`growth`'s (``1 + n`` at 0%), so nothing
    here divides by zero (no error state to set: this runs for every match).
    """
    r = apr_bp / 120000.0
    out: FloatArray = np.where(apr_bp > 0, r * g_n / (g_n - 1.0), 1.0 / term_months)
    return out


def payment_factor(apr_bp: npt.ArrayLike, term_months: npt.ArrayLike) -> FloatArray:
    """Monthly payment per unit of principal (``1/n`` at 0%) for integer APRs and terms."""
    bp = np.clip(np.asarray(apr_bp, dtype=np.int64), 0, MAX_BP)
    n = np.clip(np.asarray(term_months, dtype=np.int64), 1, TABLE_MONTHS - 1)
    return factor_from_growth(bp, n, growth_tables()[1][bp, n])


def round_half_up(x: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """Round non-negative amounts of cents half up (the convention of US truth-in-lending)."""
    return np.floor(x + 0.5).astype(np.int64)


def monthly_payment_minor(principal_minor: int, apr_bp: int, term_months: int) -> int:
    """The level monthly payment in cents (the same arithmetic as the vectorised engine)."""
    if principal_minor <= 0:
        return 0
    factor = payment_factor(np.array([apr_bp]), np.array([term_months]))
    return int(round_half_up(principal_minor * factor)[0])


@dataclass(frozen=True, slots=True)
class Installment:
    month: int
    payment_minor: int
    interest_minor: int
    principal_minor: int
    balance_minor: int


def amortisation_schedule(principal_minor: int, apr_bp: int, term_months: int) -> list[Installment]:
    """The month-by-month schedule in exact integer cents; the last payment clears the balance."""
    if term_months < 1:
        raise ValueError("term_months must be at least 1")
    payment = monthly_payment_minor(principal_minor, apr_bp, term_months)
    balance = principal_minor
    out: list[Installment] = []
    for month in range(1, term_months + 1):
        # Half-up rounding of balance·bp/120000 in integers: no float error can creep in.
        interest = (2 * balance * apr_bp + 120000) // 240000
        pay = balance + interest if month == term_months else min(payment, balance + interest)
        principal = pay - interest
        balance -= principal
        out.append(Installment(month, pay, interest, principal, balance))
    return out
