"""Fully amortising loan arithmetic in integer cents and integer basis points.

The monthly rate is ``apr_bp / 120000`` (APR in basis points over twelve months). The payment is
``P·r / (1 − (1 + r)^−n)`` rounded half up to the cent; interest each month is rounded half up to
the cent, and the last payment takes whatever balance is left, so the schedule repays the
principal exactly.
"""

from __future__ import annotations

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


def payment_factor(apr_bp: npt.ArrayLike, term_months: npt.ArrayLike) -> FloatArray:
    """Monthly payment per unit of principal (``1/n`` at 0%)."""
    bp = np.asarray(apr_bp, dtype=np.float64)
    n = np.maximum(np.asarray(term_months, dtype=np.float64), 1.0)
    g = growth(bp, n)
    r = bp / 120000.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(bp > 0, r * g / (g - 1.0), 1.0 / n)


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
