"""What the engine returns: one :class:`MatchResult` per program for a single match, or a
:class:`BatchResult` of arrays for many appraisals.

Results are named tuples rather than pydantic models because a single match builds hundreds of
them and must stay well under two milliseconds (a tuple is built at C level from its fields);
``model_dump()`` gives the JSON-ready dict (money in cents, APR and LTV in percent).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, overload

import numpy as np
import numpy.typing as npt

from gateway.matching.reasons import (
    BIT,
    FAIL_MASK,
    GATING_MASK,
    RULE_CODES,
    Code,
    Rule,
    Status,
    codes_in,
)


class LtvCurve(Sequence[float]):
    """A priced offer's loan-to-value in percent for every month from signing (month 0) to the
    last payment, rounded to hundredths; read-only.

    A single match prices up to hundreds of offers of up to 85 months each: their curves share
    one numpy array, and each curve is a window on it. Python floats are made only when a curve
    is read, so a match whose curves nobody reads does not pay for thousands of them (a curve
    kept on its own keeps that array: a float per month of every offer its match priced).
    Compares equal to another curve or a tuple of the same floats.
    """

    __slots__ = ("_start", "_stop", "_values")

    def __init__(self, values: npt.NDArray[np.float64], start: int, stop: int) -> None:
        """``values[start:stop]``; ``values`` must not change after (make it read-only)."""
        self._values = values
        self._start = start
        self._stop = stop

    @classmethod
    def of(cls, floats: Sequence[float]) -> LtvCurve:
        """A curve holding ``floats`` (already rounded)."""
        values = np.array(floats, np.float64).reshape(-1)
        values.flags.writeable = False
        return cls(values, 0, values.size)

    def tolist(self) -> list[float]:
        """The curve as a list of Python floats (what JSON carries)."""
        items: list[float] = self._values[self._start : self._stop].tolist()
        return items

    def __len__(self) -> int:
        return self._stop - self._start

    @overload
    def __getitem__(self, index: int) -> float: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[float, ...]: ...

    def __getitem__(self, index: int | slice) -> float | tuple[float, ...]:
        if isinstance(index, slice):
            return tuple(self.tolist()[index])
        size = self._stop - self._start
        k = index.__index__()
        if k < 0:
            k += size
        if not 0 <= k < size:
            raise IndexError("LTV curve index out of range")
        value: float = self._values[self._start + k].item()
        return value

    def __iter__(self) -> Iterator[float]:
        return iter(self.tolist())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LtvCurve):
            return self.tolist() == other.tolist()
        if isinstance(other, tuple):
            return tuple(self.tolist()) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self.tolist()))

    def __repr__(self) -> str:
        return f"LtvCurve({tuple(self.tolist())!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (LtvCurve.of, (self.tolist(),))


class RuleOutcome(NamedTuple):
    """One rule's outcome for one pair: its code, pass/fail/note/skipped, parameters, sentence.

    A named tuple: immutable, cheap to build (a single match builds hundreds), shareable.
    """

    rule: Rule
    status: Status
    code: Code
    message: str
    params: Mapping[str, Any]

    def model_dump(self) -> dict[str, Any]:
        return {
            "rule": self.rule.value,
            "status": self.status.value,
            "code": self.code.value,
            "message": self.message,
            "params": {k: _jsonable(v) for k, v in self.params.items()},
        }


class MatchResult(NamedTuple):
    """One appraisal with its loan request against one program (immutable).

    Priced fields (APR, payment, LTV) are ``None`` when the program could not price the deal at
    all (wrong loan kind, no valuation, score below every tier, no rate in the grid).
    """

    appraisal_id: str
    program_id: str
    program_version: int
    lender: str
    lender_kind: str
    loan_kind: str
    currency: str
    eligible: bool
    rank: int | None
    score: float | None
    credit_tier: str | None
    apr_pct: float | None
    requested_term_months: int
    term_months: int | None
    amount_financed_minor: int
    max_amount_minor: int | None
    monthly_payment_minor: int | None
    ltv_pct: float | None
    peak_ltv_pct: float | None
    peak_ltv_month: int | None
    pti_pct: float | None
    outcomes: tuple[RuleOutcome, ...]
    ltv_curve_pct: LtvCurve | None = None

    @property
    def reasons(self) -> list[str]:
        """Sentences for every failed rule (empty when eligible)."""
        return [o.message for o in self.outcomes if o.status is Status.FAIL]

    @property
    def notes(self) -> list[str]:
        return [o.message for o in self.outcomes if o.status is Status.NOTE]

    def model_dump(self) -> dict[str, Any]:
        """A JSON-ready dict of every field, outcomes included."""
        return {
            "appraisal_id": self.appraisal_id,
            "program_id": self.program_id,
            "program_version": self.program_version,
            "lender": self.lender,
            "lender_kind": self.lender_kind,
            "loan_kind": self.loan_kind,
            "currency": self.currency,
            "eligible": self.eligible,
            "rank": self.rank,
            "score": self.score,
            "credit_tier": self.credit_tier,
            "apr_pct": self.apr_pct,
            "requested_term_months": self.requested_term_months,
            "term_months": self.term_months,
            "amount_financed_minor": self.amount_financed_minor,
            "max_amount_minor": self.max_amount_minor,
            "monthly_payment_minor": self.monthly_payment_minor,
            "ltv_pct": self.ltv_pct,
            "peak_ltv_pct": self.peak_ltv_pct,
            "peak_ltv_month": self.peak_ltv_month,
            "pti_pct": self.pti_pct,
            "reasons": self.reasons,
            "notes": self.notes,
            "outcomes": [o.model_dump() for o in self.outcomes],
            "ltv_curve_pct": None if self.ltv_curve_pct is None else self.ltv_curve_pct.tolist(),
        }


@dataclass(frozen=True, slots=True)
class AprSpread:
    """How far apart the eligible lenders' APRs are for one customer and car."""

    eligible_count: int
    min_apr_pct: float | None
    max_apr_pct: float | None

    @property
    def spread_pct(self) -> float | None:
        if self.min_apr_pct is None or self.max_apr_pct is None:
            return None
        return round(self.max_apr_pct - self.min_apr_pct, 2)

    def model_dump(self) -> dict[str, Any]:
        return {
            "eligible_count": self.eligible_count,
            "min_apr_pct": self.min_apr_pct,
            "max_apr_pct": self.max_apr_pct,
            "spread_pct": self.spread_pct,
        }


def apr_spread(results: Sequence[MatchResult]) -> AprSpread:
    """The APR spread across the eligible results of one single match."""
    aprs = [r.apr_pct for r in results if r.eligible and r.apr_pct is not None]
    if not aprs:
        return AprSpread(0, None, None)
    return AprSpread(len(aprs), min(aprs), max(aprs))


IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class BatchResult:
    """Arrays of shape (appraisals, programs), row *i* for ``appraisal_ids[i]``, column *j* for
    ``program_ids[j]``.

    Sentinels for pairs the program could not price: ``apr_bp``, ``term_months``,
    ``monthly_payment_minor``, ``max_amount_minor`` and ``peak_ltv_month`` are −1, ``peak_ltv``
    and ``ltv`` NaN. ``rank`` is 1 for the best eligible offer of an appraisal, 0 when ineligible.
    ``outcome_mask`` holds each pair's fail and note codes (see :func:`codes`).
    """

    appraisal_ids: tuple[str, ...]
    program_ids: tuple[str, ...]
    eligible: npt.NDArray[np.bool_]
    outcome_mask: npt.NDArray[np.uint32]
    tier_index: npt.NDArray[np.int8]
    apr_bp: npt.NDArray[np.int32]
    term_months: npt.NDArray[np.int16]
    amount_financed_minor: IntArray
    max_amount_minor: IntArray
    monthly_payment_minor: IntArray
    ltv: npt.NDArray[np.float32]
    peak_ltv: npt.NDArray[np.float32]
    peak_ltv_month: npt.NDArray[np.int16]
    score: npt.NDArray[np.float32]
    rank: npt.NDArray[np.int16]
    eligible_count: npt.NDArray[np.int32]
    min_apr_bp: npt.NDArray[np.int32]
    max_apr_bp: npt.NDArray[np.int32]

    @property
    def pairs(self) -> int:
        return int(self.eligible.size)

    def codes(self, appraisal: int, program: int) -> list[Code]:
        """The fail and note codes of one pair (every other rule passed)."""
        return codes_in(int(self.outcome_mask[appraisal, program]))

    def failed_count(self, code: Code) -> int:
        """How many pairs failed (or were noted) with ``code``."""
        return int(np.count_nonzero(self.outcome_mask & np.uint32(BIT[code])))

    def apr_spread(self, appraisal: int) -> AprSpread:
        n = int(self.eligible_count[appraisal])
        if n == 0:
            return AprSpread(0, None, None)
        return AprSpread(
            n, int(self.min_apr_bp[appraisal]) / 100, int(self.max_apr_bp[appraisal]) / 100
        )

    def ranked(self, appraisal: int) -> list[int]:
        """Program indices of the eligible offers for one appraisal, best first."""
        row = self.rank[appraisal]
        idx = np.flatnonzero(row > 0)
        return [int(i) for i in idx[np.argsort(row[idx], kind="stable")]]


def rule_statuses(mask: int) -> dict[Rule, Status]:
    """Every rule's status from an outcome mask (a rule with no bit set passed, rules after a
    gating failure were skipped)."""
    out: dict[Rule, Status] = {}
    gated = bool(mask & GATING_MASK)
    for rule, (_, others) in RULE_CODES.items():
        if gated and not any(BIT[c] & GATING_MASK for c in others):
            out[rule] = Status.SKIPPED
            continue
        status = Status.PASS
        for code in others:
            if mask & BIT[code]:
                status = Status.FAIL if BIT[code] & FAIL_MASK else Status.NOTE
                if status is Status.FAIL:
                    break
        out[rule] = status
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, frozenset | set | tuple):
        return sorted(value) if isinstance(value, frozenset | set) else list(value)
    if isinstance(value, np.generic):
        return value.item()
    return value
