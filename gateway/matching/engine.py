"""The matching engine: pure, vectorised over (appraisal, program) pairs with numpy.

Programs are compiled once into padded arrays (:class:`ProgramSet`). A batch is evaluated in
chunks of whole appraisals against every program, each chunk a 2-D grid of pairs, so memory stays
bounded by ``chunk_pairs`` whatever the batch size. A single match is a batch of one, followed by
the explanation (every rule's outcome as a sentence) and, on request, the LTV curve.

How a pair is priced:

1. tier = the first credit tier whose cut-off the score reaches;
2. term = the requested term, shortened to the longest the program allows for the car's age and
   odometer (a *note*, not a refusal);
3. buy rate = grid[tier, term band, age band] + the LTV add-on, clamped to [floor, cap];
4. amount financed = price − down payment + taxes/fees and backend products the program finances;
5. payment = exact amortisation in cents; LTV at signing = amount ÷ appraisal value;
6. LTV in month m = balance(m) ÷ (value × residual(m)); its peak over the term must stay within the
   residual rule's limit, and caps the amount together with the tier's LTV, the program's maximum
   and the payment-to-income limit (``max_amount_minor``).

The remaining-balance fraction after m payments is ``(G_n − G_m) / (G_n − 1)`` with
``G_k = (1 + r)^k``; the engine looks ``G`` up in a table indexed by APR basis points, so the
whole curve of a pair is one row gather, one subtraction and one multiplication.

Rank: among an appraisal's eligible offers, lower score is better, with
``score = w_apr·APR/20% + w_term·term/84 + w_ltv·peak LTV/150%``. The weights move from APR
towards term and LTV as the car's forecast depreciation over the next year rises from 10% to 25%:
a fast-falling car is better financed short and with equity.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import logging
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from gateway.matching.amortise import factor_from_growth, growth_tables, round_half_up
from gateway.matching.errors import MatchInputError, ProgramIssue, ProgramSetError
from gateway.matching.facts import CURVE_MONTHS, CollateralFacts, LoanRequest
from gateway.matching.program import (
    LenderProgram,
    LoanKind,
    PhotoView,
    VehicleFlag,
    apr_to_bp,
)
from gateway.matching.reasons import (
    BIT,
    FAIL_MASK,
    GATING_CODES,
    GATING_MASK,
    RULE_CODES,
    Code,
    Partial,
    Rule,
    SentenceWriter,
    Status,
    fill_columns,
    partial,
    render_reason,
)
from gateway.matching.results import (
    BatchResult,
    LtvCurve,
    MatchResult,
    RuleOutcome,
)

logger = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
DEFAULT_CHUNK_PAIRS = 25_000
_BIG = np.int64(1 << 40)
_FLAG_BIT = {f.value: 1 << i for i, f in enumerate(VehicleFlag)}
_VIEW_BIT = {v.value: 1 << i for i, v in enumerate(PhotoView)}
_KIND = {LoanKind.PURCHASE: 0, LoanKind.EQUITY: 1}
# Depreciation over the next 12 months at which rank weights start and finish shifting.
_DEP_SLOW, _DEP_FAST = 0.10, 0.25


def _pad(rows: Sequence[Sequence[Any]], fill: Any, dtype: Any) -> npt.NDArray[Any]:
    width = max((len(r) for r in rows), default=0) or 1
    out = np.full((len(rows), width), fill, dtype=dtype)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


class ProgramSet:
    """Programs compiled into arrays for the engine; build once, reuse for every match.

    Raises :class:`ProgramSetError` when two programs share a ``program_id``.
    """

    def __init__(self, programs: Sequence[LenderProgram]) -> None:
        ids = [p.program_id for p in programs]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ProgramSetError(
                [
                    ProgramIssue(
                        "<programs>",
                        None,
                        None,
                        "program_id",
                        "program id used twice",
                        d,
                        "give each program its own program_id",
                    )
                    for d in dupes
                ]
            )
        self.programs: tuple[LenderProgram, ...] = tuple(programs)
        self.program_ids: tuple[str, ...] = tuple(ids)
        ps = self.programs
        self.size = len(ps)
        self.effective_from = np.array([p.effective_from.toordinal() for p in ps], np.int64)
        self.effective_to = np.array(
            [p.effective_to.toordinal() if p.effective_to else 10**9 for p in ps], np.int64
        )
        self.kind = np.array([_KIND[p.loan_kind] for p in ps], np.int8)
        self.currency = [p.currency for p in ps]
        self.currency_codes = {c: i for i, c in enumerate(dict.fromkeys(self.currency))}
        self.currency_index = np.array([self.currency_codes[c] for c in self.currency], np.int32)
        self._effective: tuple[int, npt.NDArray[np.bool_]] | None = None
        # credit tiers: padding −1 is never above a score, so "cut-offs above the score" counts
        # the tiers the score misses.
        self.tier_min = _pad([[t.min_score for t in p.credit.tiers] for p in ps], -1, np.int32)
        self.tier_count = np.array([len(p.credit.tiers) for p in ps], np.int32)
        self.tier_max_ltv = _pad(
            [[t.max_ltv_pct / 100 for t in p.credit.tiers] for p in ps], 0.0, np.float64
        )
        # rate grid [program, tier, term band, age band] in bp, −1 where not offered
        n_t = self.tier_min.shape[1]
        self.term_bounds = _pad([p.rate_grid.term_bands_months for p in ps], 10**4, np.int32)
        self.age_bounds = _pad([p.rate_grid.age_bands_years for p in ps], 10**4, np.int32)
        self.term_band_count = np.array([len(p.rate_grid.term_bands_months) for p in ps], np.int64)
        self.age_band_count = np.array([len(p.rate_grid.age_bands_years) for p in ps], np.int64)
        n_tb, n_ab = self.term_bounds.shape[1], self.age_bounds.shape[1]
        grid = np.full((len(ps), n_t, n_tb, n_ab), -1, np.int32)
        for pi, p in enumerate(ps):
            for ti, tier in enumerate(p.credit.tiers):
                for bi, row in enumerate(p.rate_grid.rates[tier.name]):
                    grid[pi, ti, bi, : len(row)] = [-1 if v is None else apr_to_bp(v) for v in row]
        self.grid_flat = grid.reshape(-1)
        self.grid_strides = (n_t * n_tb * n_ab, n_tb * n_ab, n_ab)
        self.floor_bp = np.array([apr_to_bp(p.rate_grid.floor_apr) for p in ps], np.int64)
        self.cap_bp = np.array([apr_to_bp(p.rate_grid.cap_apr) for p in ps], np.int64)
        self.max_bp = int(self.cap_bp.max(initial=0))
        self.addon_above = _pad(
            [[a.above_ltv_pct / 100 for a in p.rate_grid.ltv_addons] for p in ps],
            np.inf,
            np.float64,
        )
        self.addon_bp = _pad(
            [[0] + [apr_to_bp(a.add_apr) for a in p.rate_grid.ltv_addons] for p in ps],
            0,
            np.int64,
        )
        tl = [p.term_limits for p in ps]
        self.min_term = np.array([t.min_term_months for t in tl], np.int64)
        self.term_age_upto = _pad([[r.up_to_years for r in t.by_age] for t in tl], 10**4, np.int64)
        self.term_age_max = _pad([[r.max_term_months for r in t.by_age] for t in tl], 0, np.int64)
        self.term_age_count = np.array([len(t.by_age) for t in tl], np.int64)
        self.term_odo_upto = _pad(
            [[r.up_to_km for r in t.by_odometer] for t in tl], 1e12, np.float64
        )
        self.term_odo_max = _pad(
            [[r.max_term_months for r in t.by_odometer] for t in tl], 0, np.int64
        )
        self.term_odo_count = np.array([len(t.by_odometer) for t in tl], np.int64)
        self.min_fin = np.array([p.amount.min_financed_minor for p in ps], np.int64)
        self.max_fin = np.array([p.amount.max_financed_minor for p in ps], np.int64)
        self.lt_over = _pad(
            [[m.term_over_months for m in p.amount.long_term_minimums] for p in ps],
            10**4,
            np.int64,
        )
        self.lt_min = _pad(
            [[m.min_financed_minor for m in p.amount.long_term_minimums] for p in ps], 0, np.int64
        )
        self.fin_taxes = np.array([p.financed_items.taxes_and_fees for p in ps])
        self.fin_backend = np.array([p.financed_items.backend_products for p in ps])
        self.backend_max = np.array(
            [
                1e9
                if p.financed_items.max_backend_pct_of_value is None
                else p.financed_items.max_backend_pct_of_value / 100
                for p in ps
            ]
        )
        self.max_pti = np.array(
            [
                np.inf if p.affordability.max_pti_pct is None else p.affordability.max_pti_pct / 100
                for p in ps
            ]
        )
        self.down_pct = np.array([p.affordability.min_down_payment_pct / 100 for p in ps])
        self.down_min = np.array([p.affordability.min_down_payment_minor for p in ps], np.int64)
        self.is_purchase = self.kind == _KIND[LoanKind.PURCHASE]
        self.max_age = np.array([p.vehicle.max_age_years for p in ps], np.int64)
        self.max_odo = np.array([p.vehicle.max_odometer_km for p in ps], np.float64)
        self.excluded = np.array(
            [sum(_FLAG_BIT[f.value] for f in set(p.vehicle.excluded_flags)) for p in ps], np.int64
        )
        self.required_photos = np.array(
            [sum(_VIEW_BIT[v.value] for v in set(p.vehicle.required_photos)) for p in ps],
            np.int64,
        )
        self.min_grade = np.array([p.vehicle.min_condition_grade for p in ps])
        self.residual_max = np.array([p.residual.max_ltv_pct / 100 for p in ps])
        # Lookup tables indexed by small integers (score, age, term) replace per-pair searches.
        # Each is [value, program]: one appraisal's score reads one contiguous row.
        self.missed_by_score = _index_table(self.tier_min, None, _SCORE_SLOTS, above=True)
        ages = _index_table(self.term_age_upto, self.term_age_count, _AGE_SLOTS)
        self.max_term_by_age = np.take_along_axis(self.term_age_max, ages.T, axis=1).T.copy()
        self.age_band_by_age = _index_table(self.age_bounds, self.age_band_count, _AGE_SLOTS)
        self.term_band_by_term = _index_table(self.term_bounds, self.term_band_count, _TERM_SLOTS)
        terms = np.arange(_TERM_SLOTS)[:, None, None]
        self.long_min_by_term = np.where(
            terms > self.lt_over[None, :, :], self.lt_min[None, :, :], 0
        ).max(axis=2, initial=0)
        self.program_index = np.arange(len(ps), dtype=np.int64)[None, :]
        # Pass outcomes per program and tier, built once: a pair that passes a rule shares them.
        pass_outcomes = [_pass_outcomes(p) for p in ps]
        # every program's pass outcomes per tier, flat: program j's tier t at pass_offset[j] + t
        self.pass_flat = [row for per_tier in pass_outcomes for row in per_tier]
        self.pass_offset = np.cumsum([0] + [len(t) for t in pass_outcomes[:-1]])
        # the same pass outcomes as a table, one row per program and tier, a column per rule
        self.pass_table = np.empty((len(self.pass_flat), len(RULE_CODES)), dtype=object)
        for i, outcomes in enumerate(self.pass_flat):
            self.pass_table[i] = np.fromiter(outcomes, dtype=object, count=len(outcomes))
        self.static_groups = _static_groups(ps)
        # Sentences whose numbers differ per program, with the program's own numbers rendered.
        self.partials: _Partials = _program_partials(ps)
        growth_tables()  # built once per process; pay for it here rather than in a first match
        self.tier_names = [[t.name for t in p.credit.tiers] for p in ps]
        # each program's place in program-id order (the last key of the report order)
        self.id_order = np.argsort(np.array(ids, dtype=object), kind="stable").argsort()
        # Each program's identity, as columns: program id, version, lender, lender kind, loan
        # kind, currency (the first fields of a MatchResult).
        # program_id, version, lender, lender kind, loan kind, currency: one row each
        self.header = np.empty((6, len(ps)), dtype=object)
        for j, p in enumerate(ps):
            self.header[:, j] = (p.program_id, p.version, p.lender, p.lender_kind.value,
                                 p.loan_kind.value, p.currency)  # fmt: skip

    def effective_on(self, as_of: date) -> npt.NDArray[np.bool_]:
        """Which programs are in force on ``as_of`` (read-only; remembered for the last day)."""
        day = as_of.toordinal()
        last = self._effective
        if last is not None and last[0] == day:
            return last[1]
        found = (self.effective_from <= day) & (day <= self.effective_to)
        found.flags.writeable = False
        self._effective = (day, found)
        return found


_SCORE_SLOTS = 901  # scores 0..900
_AGE_SLOTS = 42  # ages 0..41; any age above 40 is beyond every bound, like 41
_TERM_SLOTS = CURVE_MONTHS  # terms 0..84


def _index_table(
    bounds: npt.NDArray[Any],
    counts: npt.NDArray[Any] | None,
    slots: int,
    *,
    above: bool = False,
) -> I64:
    """For every value 0..slots−1 and program: how many of the program's bounds lie below the
    value (or, with ``above``, above it), capped at the last real bound when ``counts`` is
    given. Shape (slots, programs)."""
    values = np.arange(slots)[:, None, None]
    hits = bounds[None, :, :] > values if above else bounds[None, :, :] < values
    found: I64 = hits.sum(axis=2, dtype=np.int64)
    if counts is not None:
        found = np.minimum(found, counts[None, :] - 1)
    return found


def _lookup(ps: ProgramSet, table: I64, values: npt.NDArray[Any]) -> I64:
    """``table[value, program]`` for a (appraisals, programs) grid of values, or for one value
    per appraisal (a column: that value's rows, copied whole)."""
    if values.shape[1] == 1:
        rows: I64 = table.take(values[:, 0], axis=0)
        return rows
    out: I64 = table.reshape(-1).take(values * table.shape[1] + ps.program_index)
    return out


def compile_programs(programs: Sequence[LenderProgram] | ProgramSet) -> ProgramSet:
    """A :class:`ProgramSet` for ``programs`` (returned as is when already compiled)."""
    return programs if isinstance(programs, ProgramSet) else ProgramSet(programs)


# --- inputs as columns ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Columns:
    """Collateral and request facts as arrays, one row per appraisal."""

    value: F64
    valued: npt.NDArray[np.bool_]
    currency: list[str]
    age: I64  # −1 when unknown
    odo: F64  # NaN when unknown
    flags: I64
    photos: I64
    grade: F64
    inv_curve: npt.NDArray[np.float32]  # 1 / residual ratio, months 0..84 (finds peak months)
    inv_curve64: F64  # the same in float64 (the peak's value at its month)
    has_curve: npt.NDArray[np.bool_]
    dep_weight: F64  # 0 (slow depreciation) … 1 (fast)
    kind: npt.NDArray[np.int8]
    price: I64
    taxes: I64
    backend: I64
    down: I64
    term: I64
    income: I64
    score: I64


def _curve_row(curve: Sequence[float]) -> tuple[npt.NDArray[np.float64], bool]:
    c = np.asarray(curve, dtype=np.float64)
    if c.size == 0:
        return np.ones(CURVE_MONTHS), False
    c = c / c[0]
    if c.size < CURVE_MONTHS:
        # Continue the forecast at its last year's average monthly rate of decline.
        look = min(12, c.size - 1)
        rate = (c[-1] / c[-1 - look]) ** (1 / look) if look else 0.99
        tail = c[-1] * rate ** np.arange(1, CURVE_MONTHS - c.size + 1)
        c = np.concatenate([c, tail])
    c = c[:CURVE_MONTHS]
    return np.minimum(np.maximum(c, 1e-3), 10.0), True


def _columns(collaterals: Sequence[CollateralFacts], requests: Sequence[LoanRequest]) -> _Columns:
    if len(collaterals) != len(requests):
        raise MatchInputError(
            f"{len(collaterals)} collaterals but {len(requests)} loan requests; give one request "
            "per appraisal, in the same order"
        )
    n = len(collaterals)
    curves = np.empty((n, CURVE_MONTHS), np.float64)
    has_curve = np.empty(n, bool)
    for i, c in enumerate(collaterals):
        curves[i], has_curve[i] = _curve_row(c.residual_curve)
    dep = 1.0 - curves[:, 12]
    return _Columns(
        value=np.array([c.value_minor or 0 for c in collaterals], np.float64),
        valued=np.array([c.is_valued for c in collaterals], bool),
        currency=[c.currency for c in collaterals],
        age=np.array(
            [-1 if c.vehicle_age_years is None else c.vehicle_age_years for c in collaterals],
            np.int64,
        ),
        odo=np.array(
            [np.nan if c.odometer_km is None else c.odometer_km for c in collaterals], np.float64
        ),
        flags=np.array([sum(_FLAG_BIT.get(f, 0) for f in c.flags) for c in collaterals], np.int64),
        photos=np.array(
            [sum(_VIEW_BIT.get(v, 0) for v in c.photo_views) for c in collaterals], np.int64
        ),
        grade=np.array([c.condition_grade for c in collaterals], np.float64),
        inv_curve=(1.0 / curves).astype(np.float32),
        inv_curve64=1.0 / curves,
        has_curve=has_curve,
        dep_weight=np.minimum(np.maximum((dep - _DEP_SLOW) / (_DEP_FAST - _DEP_SLOW), 0.0), 1.0),
        kind=np.array([_KIND[r.loan_kind] for r in requests], np.int8),
        price=np.array([r.amount_requested_minor for r in requests], np.int64),
        taxes=np.array([r.taxes_and_fees_minor for r in requests], np.int64),
        backend=np.array([r.backend_products_minor for r in requests], np.int64),
        down=np.array([r.down_payment_minor for r in requests], np.int64),
        term=np.array([r.term_months for r in requests], np.int64),
        income=np.array([r.monthly_income_minor for r in requests], np.int64),
        score=np.array([r.effective_score for r in requests], np.int64),
    )


# --- the vectorised core ------------------------------------------------------------------------


@dataclass
class _Chunk:
    """Per-pair arrays of one chunk, shape (appraisals in chunk, programs)."""

    mask: npt.NDArray[np.uint32]
    eligible: npt.NDArray[np.bool_]
    priced: npt.NDArray[np.bool_]
    tier: I64
    apr_bp: I64
    term: I64
    term_all: I64  # the offered term even where the pair is not priced (for explanations)
    max_term_age: I64
    max_term_odo: I64
    financed: I64
    required_down: I64
    long_term_min: I64
    max_amount: I64
    payment: I64
    ltv: F64
    ltv_all: F64  # LTV at signing even where the pair is not priced (for explanations)
    peak_ltv: F64
    peak_month: I64
    ratio_rows: npt.NDArray[np.float32] | None  # (pairs priced, 85) balance/value ratio ÷ LTV0
    priced_index: I64
    score: F64
    rank: I64


_N_BITS = len(BIT)
_PLANE = {code: bit.bit_length() - 1 for code, bit in BIT.items()}
_BIT_WEIGHTS = (np.uint32(1) << np.arange(_N_BITS, dtype=np.uint32))[:, None, None]


def _count_below(bounds: npt.NDArray[Any], values: npt.NDArray[Any]) -> I64:
    """For each pair, how many of the program's padded ``bounds`` lie below ``values``."""
    counts: I64 = (bounds[None, :, :] < values[:, :, None]).sum(axis=2, dtype=np.int64)
    return counts


def _evaluate(
    ps: ProgramSet,
    cols: _Columns,
    lo: int,
    hi: int,
    effective: npt.NDArray[np.bool_],
    currency_ok: npt.NDArray[np.bool_],
    *,
    keep_rows: bool = False,
) -> _Chunk:
    a = slice(lo, hi)
    shape = (hi - lo, ps.size)
    # One plane per fail and note code, combined into the outcome mask at the end: a plain copy
    # per rule costs less than an OR into the mask where the condition holds.
    planes = np.zeros((_N_BITS, *shape), bool)

    def flag(cond: npt.NDArray[np.bool_], code: Code) -> None:
        planes[_PLANE[code]] = cond

    def col(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return x[a][:, None]  # a per-appraisal column, broadcast over programs

    value, valued, age, odo = col(cols.value), col(cols.valued), col(cols.age), col(cols.odo)
    score, term_req = col(cols.score), col(cols.term)

    flag(~effective[None, :], Code.PROGRAM_NOT_IN_FORCE)
    kind_ok = col(cols.kind) == ps.kind[None, :]
    flag(~kind_ok, Code.LOAN_KIND_NOT_OFFERED)
    cur_ok = currency_ok[a]
    flag(~cur_ok, Code.CURRENCY_MISMATCH)
    valued_b = valued & (value > 0)
    flag(~valued_b, Code.MANUAL_APPRAISAL_REQUIRED)

    missed = _lookup(ps, ps.missed_by_score, np.minimum(np.maximum(score, 0), 900))
    has_tier = missed < ps.tier_count[None, :]
    flag(~has_tier, Code.CREDIT_SCORE_BELOW_MINIMUM)
    tier = np.minimum(missed, ps.tier_count[None, :] - 1)

    age_known = age >= 0
    flag(~age_known, Code.VEHICLE_AGE_UNKNOWN)
    flag(age_known & (age > ps.max_age[None, :]), Code.VEHICLE_TOO_OLD)
    odo_known = ~np.isnan(odo)
    flag(~odo_known, Code.ODOMETER_UNKNOWN)
    flag(odo_known & (odo > ps.max_odo[None, :]), Code.ODOMETER_TOO_HIGH)  # NaN: quietly False
    flag((col(cols.flags) & ps.excluded[None, :]) != 0, Code.EXCLUDED_FLAG)
    flag(col(cols.grade) < ps.min_grade[None, :], Code.CONDITION_TOO_LOW)
    flag((ps.required_photos[None, :] & ~col(cols.photos)) != 0, Code.PHOTOS_MISSING)

    # Term: the request, shortened to what the car's age and odometer allow.
    age_safe = np.where(age_known, age, 0)
    odo_safe = np.where(odo_known, odo, 0.0)
    age_slot = np.minimum(age_safe, _AGE_SLOTS - 1)
    io = np.minimum(
        _count_below(ps.term_odo_upto, odo_safe),
        ps.term_odo_count[None, :] - 1,
    )
    p_idx = np.arange(ps.size)[None, :]
    max_term_age = _lookup(ps, ps.max_term_by_age, age_slot)
    max_term_odo = ps.term_odo_max[p_idx, io]
    term = np.minimum(np.minimum(term_req, max_term_age), max_term_odo)
    flag(term < term_req, Code.TERM_SHORTENED)
    flag(term < ps.min_term[None, :], Code.TERM_TOO_SHORT)
    term = np.maximum(term, 1)

    # Buy rate from the grid.
    tb = _lookup(ps, ps.term_band_by_term, term)
    ab = _lookup(ps, ps.age_band_by_age, age_slot)
    s0, s1, s2 = ps.grid_strides
    rate = ps.grid_flat[p_idx * s0 + tier * s1 + tb * s2 + ab].astype(np.int64)
    has_rate = rate >= 0
    flag(has_tier & ~has_rate, Code.RATE_NOT_OFFERED)

    # Amount financed: what the program lets into the loan.
    taxes, backend = col(cols.taxes), col(cols.backend)
    fin_taxes = np.where(ps.fin_taxes[None, :], taxes, 0)
    fin_backend = np.where(ps.fin_backend[None, :], backend, 0)
    flag((taxes > 0) & ~ps.fin_taxes[None, :], Code.TAXES_FEES_NOT_FINANCED)
    flag((backend > 0) & ~ps.fin_backend[None, :], Code.BACKEND_NOT_FINANCED)
    # Limits in percent of a value in cents are exact to 1e-4 cent; 1e-6 absorbs the float's
    # error (29 % of $1,000.00 is 28,999.999999999996 cents in floating point).
    flag(fin_backend > ps.backend_max[None, :] * value + _CENT_TOLERANCE, Code.BACKEND_ABOVE_LIMIT)
    financed = np.maximum(col(cols.price) - col(cols.down) + fin_taxes + fin_backend, 0)
    flag(financed < ps.min_fin[None, :], Code.AMOUNT_BELOW_MINIMUM)
    flag(financed > ps.max_fin[None, :], Code.AMOUNT_ABOVE_MAXIMUM)
    long_term_min = _lookup(ps, ps.long_min_by_term, term)
    flag(financed < long_term_min, Code.AMOUNT_BELOW_LONG_TERM_MINIMUM)
    required_down = np.where(
        ps.is_purchase[None, :],
        np.maximum(round_half_up(ps.down_pct[None, :] * col(cols.price)), ps.down_min[None, :]),
        0,
    )
    flag(col(cols.down) < required_down, Code.DOWN_PAYMENT_TOO_LOW)

    # LTV at signing, the add-on it earns, and the APR.
    safe_value = np.where(value > 0, value, 1.0)
    ltv = financed / safe_value
    tier_ltv = ps.tier_max_ltv[p_idx, tier]
    flag(has_tier & (ltv > tier_ltv + 1e-12), Code.LTV_ABOVE_MAXIMUM)
    addon_idx = _count_below(ps.addon_above, ltv)
    addon = ps.addon_bp[p_idx, addon_idx]
    apr = np.minimum(np.maximum(np.maximum(rate, 0) + addon, ps.floor_bp), ps.cap_bp)

    priced = kind_ok & cur_ok & valued_b & has_tier & has_rate
    g32, g64 = growth_tables()
    g_n = g64[apr, term]
    factor = factor_from_growth(apr, term, g_n)
    payment = round_half_up(financed * factor)
    income = col(cols.income)
    # The largest payment the payment-to-income limit allows, in whole cents (+inf: no limit).
    # A limit in percent with two decimals times whole cents is exact to 1e-4 cent.
    most_payment = np.floor(ps.max_pti[None, :] * income + _CENT_TOLERANCE)
    flag(priced & (payment > most_payment), Code.PTI_EXCEEDED)  # needs a real APR

    # The residual rule: peak of balance ÷ forecast value over months 0..term.
    idx = priced.ravel().nonzero()[0]
    g_n_priced = g_n.reshape(-1)[idx]
    denom = g_n_priced - 1.0
    apr_priced = apr.reshape(-1)[idx]
    app_priced = idx // ps.size + lo
    _, month, rows = _peaks(
        g32,
        apr_priced,
        term.reshape(-1)[idx],
        g_n_priced.astype(np.float32),
        cols.inv_curve,
        app_priced,
        keep_rows=keep_rows,
    )
    # float32 finds the month; the peak's value there is computed again in float64. Month 0's
    # ratio is exactly 1 (the balance is the amount financed, the curve starts at 1): float32's
    # 1 ± 1e-7 (1e-4 at the lowest APRs) refused deals financed exactly at the limit.
    peak_ratio = (g_n_priced - g64[apr_priced, month]) * cols.inv_curve64[app_priced, month] / denom
    at_start = peak_ratio <= 1.0
    peak_ratio[at_start] = 1.0
    month[at_start] = 0
    peak_ratio_full = np.ones(shape)
    peak_ratio_full.reshape(-1)[idx] = peak_ratio
    peak_month = np.full(shape, -1, np.int64)
    peak_month.reshape(-1)[idx] = month
    peak_ltv = ltv * peak_ratio_full
    has_curve = col(cols.has_curve)
    flag(~has_curve, Code.RESIDUAL_CURVE_MISSING)
    flag(
        priced & has_curve & (peak_ltv > ps.residual_max[None, :] + 1e-12),
        Code.RESIDUAL_LTV_EXCEEDED,
    )

    # The most the program would finance for this car and customer at this APR and term.
    with np.errstate(divide="ignore", invalid="ignore"):
        caps = np.minimum(
            np.minimum(ps.max_fin[None, :].astype(np.float64), tier_ltv * value),
            np.where(has_curve, ps.residual_max[None, :] * value / peak_ratio_full, np.inf),
        )
    caps = np.floor(np.where(np.isfinite(caps), caps, 0) + _CENT_TOLERANCE)
    max_amount = np.minimum(caps, _pti_cap(most_payment, factor)).astype(np.int64)

    mask = np.bitwise_or.reduce(planes * _BIT_WEIGHTS, axis=0)  # each code its own bit
    # After a gating failure the other rules mean nothing; keep only the gating codes.
    gated = (mask & np.uint32(GATING_MASK)) != 0
    np.bitwise_and(mask, np.uint32(GATING_MASK), out=mask, where=gated)
    eligible = (mask & np.uint32(FAIL_MASK)) == 0
    eligible &= priced  # defensive: an unpriced pair always has a failing rule
    w = col(cols.dep_weight)
    w_ltv, w_term = 0.15 + 0.35 * w, 0.10 + 0.25 * w
    w_apr = 1.0 - w_ltv - w_term
    score_v = w_apr * (apr / 2000.0) + w_term * (term / 84.0) + w_ltv * (peak_ltv / 1.5)
    score_v = np.where(eligible, score_v, np.inf)
    order = score_v.argsort(axis=1, kind="stable")
    rank = np.empty_like(order)
    rank[np.arange(shape[0])[:, None], order] = np.arange(1, ps.size + 1)
    rank = np.where(eligible, rank, 0)

    neg = ~priced
    return _Chunk(
        mask=mask,
        eligible=eligible,
        priced=priced,
        tier=np.where(has_tier, tier, -1),
        apr_bp=np.where(neg, -1, apr),
        term=np.where(neg, -1, term),
        term_all=term,
        max_term_age=max_term_age,
        max_term_odo=max_term_odo,
        financed=financed,
        required_down=required_down,
        long_term_min=long_term_min,
        max_amount=np.where(neg, -1, max_amount),
        payment=np.where(neg, -1, payment),
        ltv=np.where(neg | ~valued_b, np.nan, ltv),
        ltv_all=ltv,
        peak_ltv=np.where(neg, np.nan, peak_ltv),
        peak_month=peak_month,
        ratio_rows=_divided_rows(rows, denom),
        priced_index=idx,
        score=np.where(eligible, score_v, np.nan),
        rank=rank,
    )


_CENT_TOLERANCE = 1e-6


def _pti_cap(most_payment: F64, factor: F64) -> F64:
    """The largest principal whose payment, rounded to the cent as every payment is, is at most
    ``most_payment`` (+inf where that is +inf). Found in floating point, then checked and moved a
    cent either way, so the amount quoted passes the check and a cent more does not."""
    limited = np.isfinite(most_payment)
    most = np.where(limited, most_payment, 0.0)
    cap = np.maximum(np.ceil((most + 0.5) / factor) - 1.0, 0.0)
    cap -= (round_half_up(cap * factor) > most) & (cap > 0)
    cap += round_half_up((cap + 1) * factor) <= most
    return np.where(limited, cap, np.inf)


def _divided_rows(
    rows: npt.NDArray[np.float32] | None, denom: F64
) -> npt.NDArray[np.float32] | None:
    """``rows / denom`` per row (in float32), in place: the rows are :func:`_peaks`'s own."""
    if rows is not None:
        np.divide(rows, denom[:, None].astype(np.float32), out=rows)
        rows[:, :1] = 1.0  # month 0: the amount financed over the value, exactly
    return rows


_CURVE_BLOCK = 4096  # pairs per block: the month-by-month arrays of a block stay in cache


def _peaks(
    g32: npt.NDArray[np.float32],
    apr: I64,
    term: I64,
    g_n: npt.NDArray[np.float32],
    inv_curve: npt.NDArray[np.float32],
    app_of: I64,
    *,
    keep_rows: bool,
) -> tuple[F64, I64, npt.NDArray[np.float32] | None]:
    """Per pair, the peak over months 0..term of ``(G_n − G_m) / residual(m)`` and its month.

    Dividing by ``G_n − 1`` turns the peak into the balance ÷ value ratio relative to month 0.
    Months after the term give negative values and never win (month 0 is always positive).
    """
    k = apr.size
    peak = np.empty(k, np.float64)
    month = np.empty(k, np.int64)
    kept: list[npt.NDArray[np.float32]] = []
    for start in range(0, k, _CURVE_BLOCK):
        end = min(k, start + _CURVE_BLOCK)
        width = int(np.maximum.reduce(term[start:end])) + 1  # later months cannot matter here
        rows = g32[apr[start:end], :width]
        np.subtract(g_n[start:end, None], rows, out=rows)
        first, last = int(app_of[start]), int(app_of[end - 1])  # ascending: pairs by appraisal
        rows *= inv_curve[first, :width] if first == last else inv_curve[app_of[start:end], :width]
        m = rows.argmax(axis=1)
        month[start:end] = m
        peak[start:end] = rows[np.arange(end - start), m]
        if keep_rows:
            kept.append(rows)
    if not keep_rows:
        return peak, month, None
    if not kept:
        return peak, month, np.empty((0, CURVE_MONTHS), np.float32)
    if len(kept) == 1:
        return peak, month, kept[0]
    width = max(r.shape[1] for r in kept)
    return peak, month, np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]))) for r in kept])


def _currency_ok(ps: ProgramSet, cols: _Columns) -> npt.NDArray[np.bool_]:
    codes = ps.currency_codes
    app = np.array([codes.get(c, -1) for c in cols.currency], np.int32)
    same: npt.NDArray[np.bool_] = app[:, None] == ps.currency_index[None, :]
    return same


# --- public entry points ------------------------------------------------------------------------


def match_batch(
    collaterals: Sequence[CollateralFacts],
    requests: Sequence[LoanRequest],
    programs: Sequence[LenderProgram] | ProgramSet,
    *,
    as_of: date,
    chunk_pairs: int = DEFAULT_CHUNK_PAIRS,
) -> BatchResult:
    """Evaluate every appraisal (with its request, same order) against every program.

    Work is done in chunks of about ``chunk_pairs`` pairs so memory stays bounded.
    """
    ps = compile_programs(programs)
    cols = _columns(collaterals, requests)
    n_app, n_prog = len(collaterals), ps.size
    shape = (n_app, n_prog)
    out = {
        "eligible": np.zeros(shape, bool),
        "outcome_mask": np.zeros(shape, np.uint32),
        "tier_index": np.zeros(shape, np.int8),
        "apr_bp": np.zeros(shape, np.int32),
        "term_months": np.zeros(shape, np.int16),
        "amount_financed_minor": np.zeros(shape, np.int64),
        "max_amount_minor": np.zeros(shape, np.int64),
        "monthly_payment_minor": np.zeros(shape, np.int64),
        "ltv": np.zeros(shape, np.float32),
        "peak_ltv": np.zeros(shape, np.float32),
        "peak_ltv_month": np.zeros(shape, np.int16),
        "score": np.zeros(shape, np.float32),
        "rank": np.zeros(shape, np.int16),
    }
    if n_prog and n_app:
        effective = ps.effective_on(as_of)
        currency_ok = _currency_ok(ps, cols)
        step = max(1, chunk_pairs // n_prog)
        for lo in range(0, n_app, step):
            hi = min(n_app, lo + step)
            ch = _evaluate(ps, cols, lo, hi, effective, currency_ok)
            out["eligible"][lo:hi] = ch.eligible
            out["outcome_mask"][lo:hi] = ch.mask
            out["tier_index"][lo:hi] = ch.tier
            out["apr_bp"][lo:hi] = ch.apr_bp
            out["term_months"][lo:hi] = ch.term
            out["amount_financed_minor"][lo:hi] = ch.financed
            out["max_amount_minor"][lo:hi] = ch.max_amount
            out["monthly_payment_minor"][lo:hi] = ch.payment
            out["ltv"][lo:hi] = ch.ltv
            out["peak_ltv"][lo:hi] = ch.peak_ltv
            out["peak_ltv_month"][lo:hi] = ch.peak_month
            out["score"][lo:hi] = ch.score
            out["rank"][lo:hi] = ch.rank
    elig = out["eligible"]
    apr = out["apr_bp"]
    return BatchResult(
        appraisal_ids=tuple(c.appraisal_id for c in collaterals),
        program_ids=ps.program_ids,
        eligible_count=elig.sum(axis=1, dtype=np.int32),
        min_apr_bp=np.where(elig, apr, np.iinfo(np.int32).max)
        .min(axis=1, initial=np.iinfo(np.int32).max)
        .astype(np.int32),
        max_apr_bp=np.where(elig, apr, -1).max(axis=1, initial=-1).astype(np.int32),
        **out,
    )


def match(
    collateral: CollateralFacts,
    request: LoanRequest,
    programs: Sequence[LenderProgram] | ProgramSet,
    *,
    as_of: date,
    with_curve: bool = False,
) -> list[MatchResult]:
    """One appraisal against every program, fully explained; eligible offers first, by rank.

    ``with_curve`` adds each priced result's LTV for every month of its term.
    """
    ps = compile_programs(programs)
    if ps.size == 0:
        return []
    cols = _columns([collateral], [request])
    ch = _evaluate(
        ps, cols, 0, 1, ps.effective_on(as_of), _currency_ok(ps, cols), keep_rows=with_curve
    )
    curves = np.full(ps.size, None, dtype=object)  # by program
    if with_curve and ch.ratio_rows is not None and ch.priced_index.size:
        idx = ch.priced_index
        scaled = ch.ratio_rows  # this match's own: scaled in place
        scaled *= (ch.ltv.reshape(-1)[idx] * 100.0).astype(np.float32)[:, None]
        # Months 0..term of each pair, in one flat read-only array the curves are windows on.
        terms = ch.term_all.reshape(-1)[idx]
        within = np.arange(scaled.shape[1])[None, :] <= terms[:, None]
        flat = scaled[within].astype(np.float64)
        flat.round(2, out=flat)
        flat.flags.writeable = False
        ends = (terms + 1).cumsum()
        made = map(LtvCurve, itertools.repeat(flat), (ends - terms - 1).tolist(), ends.tolist())
        curves[idx] = np.fromiter(made, dtype=object, count=idx.size)
    ctx = _Ctx(collateral, request, as_of)
    income = request.monthly_income_minor
    # Round in numpy, once, rather than per pair in Python (no income: no ratio).
    pti = (100.0 * ch.payment[0] / income).round(2) if income > 0 else np.full(ps.size, np.nan)
    # Results in report order: eligible offers first by rank, then the rest, each by program id.
    order = np.lexsort((ps.id_order, ch.rank[0], ~ch.eligible[0]))
    lists = _Lists(ch)
    arrays = {name: getattr(ch, name)[0] for name in _BUILDER_ARRAYS}
    all_outcomes = _explain_all(ps, ch.mask[0], ch.mask[0].tolist(), ctx, lists, arrays)
    # Every field as a column in report order, None where it does not apply, then each result
    # built from its row at C level.
    unpriced = ~ch.priced[0][order]
    tier = ch.tier[0][order]
    ltv = (ch.ltv[0][order] * 100.0).round(2)
    peak = (ch.peak_ltv[0][order] * 100.0).round(2)
    score = ch.score[0][order].round(6)
    pti = pti[order]
    rows = zip(
        itertools.repeat(collateral.appraisal_id),
        *ps.header[:, order].tolist(),
        ch.eligible[0][order].tolist(),
        _none_where(ch.rank[0][order], ch.rank[0][order] == 0),
        _none_where(score, np.isnan(score)),
        _tier_names(ps, tier, order),
        _none_where(ch.apr_bp[0][order] / 100, unpriced),
        itertools.repeat(request.term_months),
        _none_where(ch.term[0][order], unpriced),
        ch.financed[0][order].tolist(),
        _none_where(ch.max_amount[0][order], unpriced),
        _none_where(ch.payment[0][order], unpriced),
        _none_where(ltv, np.isnan(ltv)),
        _none_where(peak, np.isnan(peak)),
        _none_where(ch.peak_month[0][order], unpriced),
        _none_where(pti, unpriced | np.isnan(pti)),
        map(all_outcomes.__getitem__, order.tolist()),
        curves[order].tolist(),
    )
    return list(map(_new_tuple, itertools.repeat(MatchResult), rows))


def _none_where(values: npt.NDArray[Any], missing: npt.NDArray[np.bool_]) -> list[Any]:
    """``values`` as Python numbers, ``None`` where ``missing``."""
    out = values.astype(object)
    out[missing] = None
    items: list[Any] = out.tolist()
    return items


# --- explanation (single match) -----------------------------------------------------------------


class _Lists(dict[str, list[Any]]):
    """A match's per-program numbers by name as Python lists, each made on first use (most
    matches read only a few)."""

    def __init__(self, chunk: _Chunk) -> None:
        super().__init__()
        self._chunk = chunk

    def __missing__(self, name: str) -> list[Any]:
        items: list[Any] = getattr(self._chunk, name)[0].tolist()
        self[name] = items
        return items


@dataclass(frozen=True)
class _Ctx:
    collateral: CollateralFacts
    request: LoanRequest
    as_of: date


# (rule, the bits of its fail/note codes, [(code, bit, status)]) in report order
_RULE_SPECS: list[tuple[Rule, int, list[tuple[Code, int, Status]]]] = [
    (
        rule,
        sum(BIT[c] for c in others),
        [(c, BIT[c], Status.FAIL if BIT[c] & FAIL_MASK else Status.NOTE) for c in others],
    )
    for rule, (_, others) in RULE_CODES.items()
]
_N_GATING = len(GATING_CODES)  # the gating rules come first in report order
# what a gated pair reports for every rule after the gating ones
_SKIPPED_ROW = np.fromiter(
    (
        RuleOutcome(rule, Status.SKIPPED, Code.NOT_EVALUATED, render_reason(Code.NOT_EVALUATED), {})
        for rule in list(RULE_CODES)[_N_GATING:]
    ),
    dtype=object,
    count=len(RULE_CODES) - _N_GATING,
)


def _static_keys(p: LenderProgram) -> dict[Code, tuple[Any, ...]]:
    """For codes whose sentence depends only on the program (within one match), the program's
    numbers that go into it: equal keys mean equal outcomes."""
    v = p.vehicle
    return {
        Code.PROGRAM_NOT_IN_FORCE: (p.effective_from, p.effective_to),
        Code.LOAN_KIND_NOT_OFFERED: (p.loan_kind,),
        Code.CURRENCY_MISMATCH: (p.currency,),
        Code.MANUAL_APPRAISAL_REQUIRED: (),
        Code.CREDIT_SCORE_BELOW_MINIMUM: (p.credit.tiers[-1].min_score,),
        Code.VEHICLE_TOO_OLD: (v.max_age_years,),
        Code.VEHICLE_AGE_UNKNOWN: (),
        Code.ODOMETER_TOO_HIGH: (v.max_odometer_km,),
        Code.ODOMETER_UNKNOWN: (),
        Code.EXCLUDED_FLAG: (frozenset(v.excluded_flags),),
        Code.CONDITION_TOO_LOW: (v.min_condition_grade,),
        Code.PHOTOS_MISSING: (frozenset(v.required_photos),),
        Code.TAXES_FEES_NOT_FINANCED: (p.currency,),
        Code.BACKEND_NOT_FINANCED: (p.currency,),
        Code.BACKEND_ABOVE_LIMIT: (p.currency, p.financed_items.max_backend_pct_of_value),
        Code.RESIDUAL_CURVE_MISSING: (),
    }


def _pass_outcomes(p: LenderProgram) -> list[tuple[RuleOutcome, ...]]:
    """Every rule's pass outcome for each tier of a program, in report order."""
    fixed: dict[Code, dict[str, Any]] = {
        Code.VEHICLE_AGE_OK: {"max_age_years": p.vehicle.max_age_years},
        Code.ODOMETER_OK: {"max_odometer_km": p.vehicle.max_odometer_km},
        Code.CONDITION_OK: {"min_grade": p.vehicle.min_condition_grade},
        Code.RESIDUAL_OK: {"max_ltv_pct": p.residual.max_ltv_pct},
    }
    out = []
    for tier in p.credit.tiers:
        per_tier: dict[Code, dict[str, Any]] = {
            Code.CREDIT_TIER_ASSIGNED: {"tier": tier.name},
            Code.LTV_OK: {"max_ltv_pct": tier.max_ltv_pct, "tier": tier.name},
        }
        row = []
        for rule, (ok, _) in RULE_CODES.items():
            prm: dict[str, Any] = per_tier.get(ok) or fixed.get(ok) or {}
            row.append(RuleOutcome(rule, Status.PASS, ok, render_reason(ok, prm), prm))
        out.append(tuple(row))
    return out


_N_RULES = len(_RULE_SPECS)
# the bits of each rule that has more than one fail or note code
_MULTI_CODE_RULE_BITS = tuple(bits for _, bits, codes in _RULE_SPECS if len(codes) > 1)


@functools.lru_cache(maxsize=4096)
def _assembler(mask: int) -> Callable[[tuple[RuleOutcome, ...]], Any] | None:
    """How to report a pair with outcome ``mask`` when it has two outcomes for one rule (else
    ``None``: its row of the table in :func:`_explain_all` holds them): a C-level getter that
    picks the pair's outcomes in report order from its tier's pass outcomes
    (``ProgramSet.pass_flat``) followed by its outcome for every fail and note code (in bit
    order, ``None`` where it has none; :func:`_outcome_row`)."""
    if mask & GATING_MASK:
        return None  # a gated pair's other bits are cleared, and gating rules have one code
    for bits in _MULTI_CODE_RULE_BITS:
        if (mask & bits) & ((mask & bits) - 1):  # two bits of one rule
            break
    else:
        return None
    positions: list[int] = []
    for r, (_, bits, codes) in enumerate(_RULE_SPECS):
        if not mask & bits:
            positions.append(r)
            continue
        # a pair's fail and note outcomes follow its pass outcomes (see _outcome_row)
        positions += (_N_RULES + _BIT_INDEX[code] for code, bit, _ in codes if mask & bit)
    return operator.itemgetter(*positions)  # at least two positions: returns a tuple


# Fail and note codes by bit index: (bit, rule, code, status).
_BIT_CODES: tuple[tuple[int, Rule, Code, Status], ...] = tuple(
    sorted(
        (bit, rule, code, status) for rule, _, codes in _RULE_SPECS for code, bit, status in codes
    )
)
_BIT_INDEX: dict[Code, int] = {code: k for k, (_, _, code, _) in enumerate(_BIT_CODES)}
# The rule (its column in a pair's outcomes, in report order) of each code by bit index.
_RULE_COLUMN: tuple[int, ...] = tuple(list(RULE_CODES).index(rule) for _, rule, _, _ in _BIT_CODES)


class _RecentOutcomes:
    """Outcomes whose parameters recur from match to match (a car's age, the requested term, the
    program's dates), kept across matches: rendering a sentence costs more than finding it.

    Kept in two generations of at most ``limit`` each. When the newer is full it becomes the
    older and the older is dropped; an outcome found in the older moves to the newer. So the
    outcomes still in use survive, and no match pays for rendering all of them again at once.
    """

    __slots__ = ("limit", "newer", "older")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.newer: dict[tuple[Any, ...], RuleOutcome] = {}
        self.older: dict[tuple[Any, ...], RuleOutcome] = {}

    def get(self, key: tuple[Any, ...]) -> RuleOutcome | None:
        found = self.newer.get(key)
        if found is None:
            found = self.older.get(key)
            if found is not None:
                self.put(key, found)
        return found

    def put(self, key: tuple[Any, ...], outcome: RuleOutcome) -> None:
        if len(self.newer) >= self.limit:
            self.older = self.newer
            self.newer = {}
        self.newer[key] = outcome


_RECENT_OUTCOMES = _RecentOutcomes(4096)


def _shared_outcome(
    rule: Rule, status: Status, code: Code, params: dict[str, Any], writer: SentenceWriter
) -> RuleOutcome:
    """The outcome of ``code`` with ``params``: one built by an earlier match when its
    parameters were the same values of the same types, else a new one."""
    try:
        key = (code, *params.values(), *map(type, params.values()))
        found = _RECENT_OUTCOMES.get(key)
    except TypeError:  # a value that cannot be a key
        return RuleOutcome(rule, status, code, writer.render(code, params), params)
    if found is None:
        found = RuleOutcome(rule, status, code, writer.render(code, params), params)
        _RECENT_OUTCOMES.put(key, found)
    return found


def _static_groups(programs: Sequence[LenderProgram]) -> list[I64 | None]:
    """Per bit index, for codes whose outcome depends only on the program within one match: each
    program's group (programs in one group share the outcome); ``None`` for other codes."""
    keys = [_static_keys(p) for p in programs]
    out: list[I64 | None] = []
    for _, _, code, _ in _BIT_CODES:
        if not keys or code not in keys[0]:
            out.append(None)
            continue
        ids: dict[tuple[Any, ...], int] = {}
        out.append(np.array([ids.setdefault(k[code], len(ids)) for k in keys], np.int64))
    return out


def _explain_all(
    ps: ProgramSet,
    masks: npt.NDArray[np.uint32],
    mask_list: list[int],
    ctx: _Ctx,
    v: dict[str, list[Any]],
    arrays: dict[str, npt.NDArray[Any]],
) -> list[tuple[RuleOutcome, ...]]:
    """Every rule's outcome for every program of one match, in report order.

    Works code by code over the pairs that carry it, so an outcome shared by many programs is
    built and rendered once. Each pair's outcomes start as its tier's pass outcomes (a row of a
    table, one column per rule); a gating failure turns the rules after the gating ones into
    skipped outcomes, and each fail or note outcome takes its rule's place. A pair with two
    outcomes for one rule is assembled on its own (:func:`_assembler`).
    """
    union = int(np.bitwise_or.reduce(masks)) if masks.size else 0
    table = ps.pass_table.take(ps.pass_offset + np.maximum(arrays["tier"], 0), axis=0)
    if union & GATING_MASK:
        table[(masks & np.uint32(GATING_MASK)) != 0, _N_GATING:] = _SKIPPED_ROW
    writer = SentenceWriter()
    tier_list = v["tier"]
    programs = ps.programs
    found: list[tuple[int, list[int], list[RuleOutcome]]] = []  # (bit index, pairs, outcomes)
    for k, (bit, rule, code, status) in enumerate(_BIT_CODES):
        if not union & bit:
            continue
        hits = (masks & np.uint32(bit)).nonzero()[0]
        js: list[int] = hits.tolist()
        build = _BUILDERS.get(code)
        outs: list[RuleOutcome]
        if build is not None:
            outs = build(ps, ctx, arrays, js, hits)
        elif (keys := _outcome_keys(ps, k, code, arrays, hits)) is not None:
            params = _PARAMS[code]
            made: dict[Any, RuleOutcome] = {}
            # each key's first pair (a dict keeps the last value written for a key)
            names = ps.tier_names
            for key, j in dict(zip(reversed(keys), reversed(js), strict=True)).items():
                ti = tier_list[j]
                prm = params(programs[j], ctx, v, j, names[j][ti] if ti >= 0 else None)
                made[key] = _shared_outcome(rule, status, code, prm, writer)
            outs = list(map(made.__getitem__, keys))
        else:
            params = _PARAMS[code]
            cache: dict[tuple[Any, ...], RuleOutcome] = {}
            names = ps.tier_names
            outs = []
            for j in js:
                ti = tier_list[j]
                prm = params(programs[j], ctx, v, j, names[j][ti] if ti >= 0 else None)
                key = tuple(prm.values())
                hit = cache.get(key)
                if hit is None:
                    hit = _shared_outcome(rule, status, code, prm, writer)
                    cache[key] = hit
                outs.append(hit)
        if len(outs) != len(js):
            raise AssertionError(f"{code}: {len(outs)} outcomes for {len(js)} pairs")
        table[hits, _RULE_COLUMN[k]] = np.fromiter(outs, dtype=object, count=len(outs))
        found.append((k, js, outs))
    rows: list[tuple[RuleOutcome, ...]] = list(map(tuple, table.tolist()))
    if any(map(_assembler, set(mask_list))):  # a pair with two outcomes for one rule
        for j, getter in enumerate(map(_assembler, mask_list)):
            if getter is not None:
                rows[j] = getter(_outcome_row(ps, j, tier_list[j], found))
    return rows


def _outcome_keys(
    ps: ProgramSet, k: int, code: Code, arrays: dict[str, npt.NDArray[Any]], hits: I64
) -> list[Any] | None:
    """For a code whose outcomes many pairs share: each pair's key (equal keys, one outcome);
    ``None`` for codes whose parameters are the pair's own."""
    groups = ps.static_groups[k]
    if groups is not None:
        # Within one match these outcomes depend only on the program's own numbers.
        keys: list[Any] = groups[hits].tolist()
        return keys
    keys_of = _KEYS.get(code)
    # Outcomes many programs share, found by a key cheaper than their parameters.
    return keys_of(ps, arrays, hits) if keys_of is not None else None


def _outcome_row(
    ps: ProgramSet, j: int, tier: int, found: list[tuple[int, list[int], list[RuleOutcome]]]
) -> tuple[Any, ...]:
    """What :func:`_assembler`'s getters pick from for pair ``j``: its tier's pass outcomes,
    then its outcome for every fail and note code (``None`` where none)."""
    row: list[Any] = [None] * len(_BIT_CODES)
    for k, js, outs in found:
        at = bisect.bisect_left(js, j)
        if at < len(js) and js[at] == j:
            row[k] = outs[at]
    return ps.pass_flat[int(ps.pass_offset[j]) + max(tier, 0)] + tuple(row)


# --- sentences whose numbers differ per pair: built for every pair, program parts prerendered


@dataclass(frozen=True, slots=True)
class _Sentences:
    """One failing code's sentences per program (and tier): the partials with the program's own
    numbers rendered, their pieces, and whether each can be joined from its pieces."""

    partials: npt.NDArray[np.object_]  # Partial | None
    pieces: npt.NDArray[np.object_]  # one more axis: the pieces
    joinable: npt.NDArray[np.bool_]
    fixed: I64  # the program's numbers in the sentence and its parameters: equal ids, equal numbers


@dataclass(frozen=True, slots=True)
class _Partials:
    """Per program (and tier): its sentences of the codes whose numbers differ per pair, and the
    program's numbers that go into them, as object arrays a match takes its failing pairs' rows
    from."""

    odometer: _Sentences
    pti: _Sentences
    residual: _Sentences
    ltv: _Sentences  # [program, tier]
    currency: npt.NDArray[np.object_]
    max_odometer_km: npt.NDArray[np.object_]
    max_pti_pct: npt.NDArray[np.object_]
    residual_max_ltv_pct: npt.NDArray[np.object_]
    tier_name: npt.NDArray[np.object_]  # [program, tier]
    tier_max_ltv_pct: npt.NDArray[np.object_]  # [program, tier]


def _objects(rows: Sequence[Any] | Sequence[Sequence[Any]], width: int = 0) -> npt.NDArray[Any]:
    """An object array of ``rows`` (of rows ``width`` wide, padded with None), element by element:
    numpy would unpack the named tuples among them."""
    out = np.full((len(rows), width) if width else len(rows), None, dtype=object)
    for i, row in enumerate(rows):
        if width:
            for k, item in enumerate(cast(Sequence[Any], row)):
                out[i, k] = item
        else:
            out[i] = row
    return out


def _sentences(code: Code, fixed: npt.NDArray[np.object_]) -> _Sentences:
    """``code``'s sentences for the program's own numbers in ``fixed`` (a dict each; None for
    padding)."""
    numbers = fixed.reshape(-1).tolist()
    ids: dict[tuple[Any, ...], int] = {}
    fixed_ids = np.array(
        [
            -1
            if f is None
            else ids.setdefault(tuple((k, type(v), v) for k, v in f.items()), len(ids))
            for f in numbers
        ],
        np.int64,
    ).reshape(fixed.shape)
    partials = _objects([None if f is None else partial(code, f) for f in numbers]).reshape(
        fixed.shape
    )
    flat = partials.reshape(-1).tolist()
    width = next((len(p.pieces) for p in flat if p is not None and p.pieces), 1)
    pieces = np.full((len(flat), width), None, dtype=object)
    joinable = np.zeros(len(flat), bool)
    for i, p in enumerate(flat):
        if p is not None and p.pieces is not None and len(p.pieces) == width:
            pieces[i] = p.pieces
            joinable[i] = True
    return _Sentences(
        partials,
        pieces.reshape(*partials.shape, width),
        joinable.reshape(partials.shape),
        fixed_ids,
    )


def _program_partials(programs: Sequence[LenderProgram]) -> _Partials:
    tiers = max((len(p.credit.tiers) for p in programs), default=1)
    return _Partials(
        odometer=_sentences(
            Code.ODOMETER_TOO_HIGH,
            _objects([{"max_odometer_km": p.vehicle.max_odometer_km} for p in programs]),
        ),
        pti=_sentences(
            Code.PTI_EXCEEDED,
            _objects(
                [
                    {"currency": p.currency, "max_pti_pct": p.affordability.max_pti_pct}
                    for p in programs
                ]
            ),
        ),
        residual=_sentences(
            Code.RESIDUAL_LTV_EXCEEDED,
            _objects(
                [{"currency": p.currency, "max_ltv_pct": p.residual.max_ltv_pct} for p in programs]
            ),
        ),
        ltv=_sentences(
            Code.LTV_ABOVE_MAXIMUM,
            _objects(
                [
                    [
                        {"currency": p.currency, "tier": t.name, "max_ltv_pct": t.max_ltv_pct}
                        for t in p.credit.tiers
                    ]
                    for p in programs
                ],
                tiers,
            ),
        ),
        currency=_objects([p.currency for p in programs]),
        max_odometer_km=_objects([p.vehicle.max_odometer_km for p in programs]),
        max_pti_pct=_objects([p.affordability.max_pti_pct for p in programs]),
        residual_max_ltv_pct=_objects([p.residual.max_ltv_pct for p in programs]),
        tier_name=_objects([[t.name for t in p.credit.tiers] for p in programs], tiers),
        tier_max_ltv_pct=_objects(
            [[t.max_ltv_pct for t in p.credit.tiers] for p in programs], tiers
        ),
    )  # fmt: skip


def _repeated(value: Any, n: int) -> npt.NDArray[Any]:
    """``n`` times ``value`` as an array whose items are ``value`` again (an int or a float as
    such, anything else as an object)."""
    kind = np.int64 if type(value) is int else np.float64 if type(value) is float else object
    return np.full(n, value, dtype=kind)


_Builder = Callable[
    [ProgramSet, _Ctx, dict[str, npt.NDArray[Any]], list[int], I64], list[RuleOutcome]
]
_new_tuple = tuple.__new__  # a named tuple from its fields without the Python-level __new__


def _rounded2(x: F64) -> F64:
    """``round(v, 2)`` of each value, the same floats, without Python's decimal rounding per
    value: away from a tie, rounding the (half-ulp exact) product by 100 in numpy and dividing
    back gives the nearest double to the rounded decimal, as ``round`` does; values near a tie
    (or huge, or not finite) go through ``round``."""
    hundredths = x * 100.0
    rounded = np.rint(hundredths)
    out: F64 = rounded / 100.0
    # within 1e-6 of a tie: at least 0.499999 from the nearest integer (NaN: not below it)
    risky = ~((np.abs(hundredths - rounded) < 0.499999) & (np.abs(hundredths) < 1e12))
    for i in risky.nonzero()[0].tolist():
        out[i] = round(float(x[i]), 2)
    return out


def _outcomes(
    rule: Rule,
    code: Code,
    sentences: _Sentences,
    at: I64 | tuple[I64, I64],
    make: Callable[..., dict[str, Any]],
    values: list[npt.NDArray[Any]],
    columns: dict[str, int],
    numbers: list[npt.NDArray[Any]] | None,
) -> list[RuleOutcome]:
    """Failing outcomes of one code for many pairs: pair ``i`` takes the sentence of its program
    (and tier) at ``at[i]`` of ``sentences`` and its parameters ``make(*row i of values)`` (each
    array's item as a Python value: object arrays keep the program's own); the sentence's open
    fields take the values at ``columns[field]``.

    ``numbers`` are per-pair arrays that, with the program's numbers, determine every parameter:
    pairs with equal ones share one outcome (many programs of one match often do), built once.
    """
    shared = _shared([sentences.fixed[at], *numbers]) if numbers is not None else None
    if shared is None:
        return _outcome_rows(rule, code, sentences, at, make, values, columns)
    first, each = shared
    made = _outcome_rows(
        rule,
        code,
        sentences,
        (at[0][first], at[1][first]) if isinstance(at, tuple) else at[first],
        make,
        [column[first] for column in values],
        columns,
    )
    return list(map(made.__getitem__, each.tolist()))


def _shared(numbers: list[npt.NDArray[Any]]) -> tuple[I64, I64] | None:
    """For pairs described by ``numbers`` (row ``i`` of each array: pair ``i``): the first pair
    of each distinct row and each pair's row among them. ``None`` when (nearly) every row
    differs (the last array, the most varied, tells cheaply) or when numbers could be confused
    (negative ones: −0.0 equals 0.0 but is written "-0.0"; integers beyond 2**53, which floats
    lose)."""
    if len(set(numbers[-1].tolist())) * 5 > numbers[-1].size * 4:
        return None  # hardly any pair to share with: not worth finding them
    for column in numbers:
        if column.dtype.kind in "iu" and not np.logical_and.reduce(np.abs(column) < 2**53):
            return None
    rows = np.array(numbers, np.float64)
    if np.logical_or.reduce(np.signbit(rows), axis=None):
        return None
    order = np.lexsort(rows)
    ranked = rows[:, order]
    starts = np.empty(order.size, bool)
    starts[:1] = True
    np.logical_or.reduce(ranked[:, 1:] != ranked[:, :-1], axis=0, out=starts[1:])  # NaN: unequal
    if np.logical_and.reduce(starts):
        return None
    each = np.empty(order.size, np.int64)
    each[order] = starts.cumsum() - 1
    return order[starts], each


def _outcome_rows(
    rule: Rule,
    code: Code,
    sentences: _Sentences,
    at: I64 | tuple[I64, I64],
    make: Callable[..., dict[str, Any]],
    values: list[npt.NDArray[Any]],
    columns: dict[str, int],
) -> list[RuleOutcome]:
    lists = [column.tolist() for column in values]
    params = list(map(make, *lists))
    partials: list[Partial | None] = sentences.partials[at].tolist()
    messages = None
    if partials and np.logical_and.reduce(sentences.joinable[at]):
        fields = cast(Partial, partials[0]).fields
        pieces = sentences.pieces[at].T.tolist()
        open_ = [columns[name] for name, _, _ in fields]
        messages = fill_columns(
            fields, pieces, [values[k] for k in open_], [lists[k] for k in open_]
        )
    if messages is None:  # values the bulk path does not render: row by row, as render_reason
        messages = SentenceWriter().fill_many(code, partials, params)
    rows = zip(itertools.repeat(rule), itertools.repeat(Status.FAIL), itertools.repeat(code),
               messages, params, strict=False)  # fmt: skip
    return list(map(_new_tuple, itertools.repeat(RuleOutcome), rows))


def _build_odometer(
    ps: ProgramSet, ctx: _Ctx, a: dict[str, npt.NDArray[Any]], js: list[int], idx: I64
) -> list[RuleOutcome]:
    odo = _repeated(ctx.collateral.odometer_km, len(js))
    return _outcomes(
        Rule.ODOMETER, Code.ODOMETER_TOO_HIGH, ps.partials.odometer, idx,
        lambda km, most: {"odometer_km": km, "max_odometer_km": most},
        [odo, ps.partials.max_odometer_km[idx]], {"odometer_km": 0},
        None,  # each program's own limit: rarely shared
    )  # fmt: skip


def _build_pti(
    ps: ProgramSet, ctx: _Ctx, a: dict[str, npt.NDArray[Any]], js: list[int], idx: I64
) -> list[RuleOutcome]:
    program = ps.partials
    income = ctx.request.monthly_income_minor
    payments = a["payment"][idx]
    ptis = _rounded2(payments * 100 / income) if income else np.full(len(js), 100.0)
    values = [program.currency[idx], payments, ptis, program.max_pti_pct[idx]]
    columns = {"payment_minor": 1, "pti_pct": 2}
    return _outcomes(
        Rule.PAYMENT_TO_INCOME, Code.PTI_EXCEEDED, program.pti, idx,
        lambda currency, payment, pti, most: {
            "currency": currency, "payment_minor": payment, "pti_pct": pti, "max_pti_pct": most,
        },
        values, columns, None,  # each program's own payment (rate and term): rarely shared
    )  # fmt: skip


def _build_residual(
    ps: ProgramSet, ctx: _Ctx, a: dict[str, npt.NDArray[Any]], js: list[int], idx: I64
) -> list[RuleOutcome]:
    program = ps.partials
    months, most = a["peak_month"][idx], a["max_amount"][idx]
    peaks = _rounded2(100 * a["peak_ltv"][idx].astype(np.float64))
    values = [program.currency[idx], months, peaks, program.residual_max_ltv_pct[idx], most]
    columns = {"month": 1, "peak_ltv_pct": 2, "max_amount_minor": 4}
    return _outcomes(
        Rule.RESIDUAL, Code.RESIDUAL_LTV_EXCEEDED, program.residual, idx,
        lambda currency, month, peak, limit, most_j: {
            "currency": currency, "month": month, "peak_ltv_pct": peak, "max_ltv_pct": limit,
            "max_amount_minor": most_j,
        },
        values, columns, [months, peaks, most],
    )  # fmt: skip


def _build_ltv(
    ps: ProgramSet, ctx: _Ctx, a: dict[str, npt.NDArray[Any]], js: list[int], idx: I64
) -> list[RuleOutcome]:
    program = ps.partials
    tiers = np.maximum(a["tier"][idx], 0)
    financed = a["financed"][idx]
    value = ctx.collateral.value_minor or 0
    ltv_pcts = _rounded2(100 * a["ltv_all"][idx].astype(np.float64))
    limits = program.tier_max_ltv_pct[idx, tiers]
    most = a["max_amount"][idx].copy()
    for i in (most < 0).nonzero()[0].tolist():
        # unpriced pairs have no overall maximum; the tier's advance limit still applies
        most[i] = math.floor(value * limits[i] / 100)
    values = [
        program.currency[idx],
        financed,
        _repeated(value, len(js)),
        ltv_pcts,
        program.tier_name[idx, tiers],
        limits,
        most,
    ]
    columns = {"amount_minor": 1, "value_minor": 2, "ltv_pct": 3, "max_amount_minor": 6}
    return _outcomes(
        Rule.LTV, Code.LTV_ABOVE_MAXIMUM, program.ltv, (idx, tiers),
        lambda currency, fin, value_j, ltv_pct, name, limit, most_j: {
            "currency": currency, "amount_minor": fin, "value_minor": value_j, "ltv_pct": ltv_pct,
            "tier": name, "max_ltv_pct": limit, "max_amount_minor": most_j,
        },
        values, columns, [financed, most],  # the LTV follows from the amount financed
    )  # fmt: skip


# For codes whose parameters (within one match) follow from a few of the pair's numbers: those
# numbers for each pair of ``idx``, so pairs with the same key share one outcome. Each key covers
# every parameter.
_KEYS: dict[Code, Callable[[ProgramSet, dict[str, npt.NDArray[Any]], I64], list[Any]]] = {
    Code.TERM_SHORTENED: lambda ps, a, idx: list(
        zip(
            a["term_all"][idx].tolist(),
            (a["max_term_age"][idx] <= a["max_term_odo"][idx]).tolist(),
            strict=True,
        )
    ),
    Code.TERM_TOO_SHORT: lambda ps, a, idx: list(
        zip(a["term_all"][idx].tolist(), ps.min_term[idx].tolist(), strict=True)
    ),
    Code.DOWN_PAYMENT_TOO_LOW: lambda ps, a, idx: list(
        zip(ps.partials.currency[idx].tolist(), a["required_down"][idx].tolist(), strict=True)
    ),
    Code.RATE_NOT_OFFERED: lambda ps, a, idx: list(
        zip(
            _tier_names(ps, a["tier"][idx], idx),
            a["term_all"][idx].tolist(),
            strict=True,
        )
    ),
    Code.AMOUNT_BELOW_MINIMUM: lambda ps, a, idx: _amount_keys(ps, a, idx, ps.min_fin),
    Code.AMOUNT_ABOVE_MAXIMUM: lambda ps, a, idx: _amount_keys(ps, a, idx, ps.max_fin),
}


def _amount_keys(
    ps: ProgramSet, a: dict[str, npt.NDArray[Any]], idx: I64, limits: I64
) -> list[tuple[str, int, int]]:
    """(currency, amount financed, the program's limit) of each pair of ``idx``."""
    currency, financed = ps.partials.currency[idx].tolist(), a["financed"][idx].tolist()
    return list(zip(currency, financed, limits[idx].tolist(), strict=True))


def _tier_names(ps: ProgramSet, tiers: I64, idx: I64) -> list[str | None]:
    """The credit tier's name of each pair of ``idx`` (``None`` without a tier)."""
    names: list[str | None] = _none_where(
        ps.partials.tier_name[idx, np.maximum(tiers, 0)], tiers < 0
    )
    return names


# The per-pair arrays the builders and keys read (one match's row of each).
_BUILDER_ARRAYS = (
    "payment", "peak_month", "max_amount", "peak_ltv", "tier", "financed", "ltv_all", "term_all",
    "max_term_age", "max_term_odo", "required_down",
)  # fmt: skip
_BUILDERS: dict[Code, _Builder] = {
    Code.ODOMETER_TOO_HIGH: _build_odometer,
    Code.PTI_EXCEEDED: _build_pti,
    Code.RESIDUAL_LTV_EXCEEDED: _build_residual,
    Code.LTV_ABOVE_MAXIMUM: _build_ltv,
}


_ParamFn = Callable[[LenderProgram, _Ctx, dict[str, list[Any]], int, str | None], dict[str, Any]]


def _not_in_force(p: LenderProgram, ctx: _Ctx, *_: Any) -> dict[str, Any]:
    return {
        "as_of": ctx.as_of.isoformat(),
        "effective_from": p.effective_from.isoformat(),
        "effective_to": p.effective_to.isoformat() if p.effective_to else None,
    }


def _long_term_minimum(
    p: LenderProgram, ctx: _Ctx, v: dict[str, list[Any]], j: int, _: str | None
) -> dict[str, Any]:
    term = v["term_all"][j]
    over = max(
        (m.term_over_months for m in p.amount.long_term_minimums if term > m.term_over_months),
        default=0,
    )
    return {
        "currency": p.currency,
        "amount_minor": v["financed"][j],
        "min_minor": v["long_term_min"][j],
        "term_over_months": over,
    }


def _backend_above_limit(p: LenderProgram, ctx: _Ctx, *_: Any) -> dict[str, Any]:
    pct = p.financed_items.max_backend_pct_of_value or 0.0
    return {
        "currency": p.currency,
        "backend_minor": ctx.request.backend_products_minor,
        "max_minor": int((ctx.collateral.value_minor or 0) * pct / 100),
        "max_pct": pct,
    }


def _term_shortened(
    p: LenderProgram, ctx: _Ctx, v: dict[str, list[Any]], j: int, _: str | None
) -> dict[str, Any]:
    by_age = v["max_term_age"][j] <= v["max_term_odo"][j]
    return {
        "requested_months": ctx.request.term_months,
        "offered_months": v["term_all"][j],
        "limited_by": "age" if by_age else "mileage",
    }


_PARAMS: dict[Code, _ParamFn] = {
    Code.PROGRAM_NOT_IN_FORCE: _not_in_force,
    Code.LOAN_KIND_NOT_OFFERED: lambda p, ctx, *_: {
        "offered": p.loan_kind.value,
        "requested": ctx.request.loan_kind.value,
    },
    Code.CURRENCY_MISMATCH: lambda p, ctx, *_: {
        "appraisal_currency": ctx.collateral.currency,
        "program_currency": p.currency,
    },
    Code.MANUAL_APPRAISAL_REQUIRED: lambda p, ctx, *_: {
        "reason": ctx.collateral.manual_appraisal_reason or "no value",
    },
    Code.CREDIT_SCORE_BELOW_MINIMUM: lambda p, ctx, *_: {
        "score": ctx.request.effective_score,
        "min_score": p.credit.tiers[-1].min_score,
    },
    Code.VEHICLE_TOO_OLD: lambda p, ctx, *_: {
        "age_years": ctx.collateral.vehicle_age_years,
        "max_age_years": p.vehicle.max_age_years,
    },
    Code.VEHICLE_AGE_UNKNOWN: lambda *_: {},
    Code.ODOMETER_UNKNOWN: lambda *_: {},
    Code.EXCLUDED_FLAG: lambda p, ctx, *_: {
        "flags": tuple(sorted(ctx.collateral.flags & {f.value for f in p.vehicle.excluded_flags}))
    },
    Code.CONDITION_TOO_LOW: lambda p, ctx, *_: {
        "grade": ctx.collateral.condition_grade,
        "min_grade": p.vehicle.min_condition_grade,
    },
    Code.PHOTOS_MISSING: lambda p, ctx, *_: {
        "views": tuple(
            sorted({view.value for view in p.vehicle.required_photos} - ctx.collateral.photo_views)
        )
    },
    Code.TERM_SHORTENED: _term_shortened,
    Code.TERM_TOO_SHORT: lambda p, ctx, v, j, _: {
        "term_months": v["term_all"][j],
        "min_term_months": p.term_limits.min_term_months,
    },
    Code.RATE_NOT_OFFERED: lambda p, ctx, v, j, tier: {
        "tier": tier,
        "term_months": v["term_all"][j],
        "age_years": ctx.collateral.vehicle_age_years,
    },
    Code.AMOUNT_BELOW_MINIMUM: lambda p, ctx, v, j, _: {
        "currency": p.currency,
        "amount_minor": v["financed"][j],
        "min_minor": p.amount.min_financed_minor,
    },
    Code.AMOUNT_ABOVE_MAXIMUM: lambda p, ctx, v, j, _: {
        "currency": p.currency,
        "amount_minor": v["financed"][j],
        "max_minor": p.amount.max_financed_minor,
    },
    Code.AMOUNT_BELOW_LONG_TERM_MINIMUM: _long_term_minimum,
    Code.DOWN_PAYMENT_TOO_LOW: lambda p, ctx, v, j, _: {
        "currency": p.currency,
        "down_minor": ctx.request.down_payment_minor,
        "required_minor": v["required_down"][j],
    },
    Code.TAXES_FEES_NOT_FINANCED: lambda p, ctx, *_: {
        "currency": p.currency,
        "amount_minor": ctx.request.taxes_and_fees_minor,
    },
    Code.BACKEND_NOT_FINANCED: lambda p, ctx, *_: {
        "currency": p.currency,
        "amount_minor": ctx.request.backend_products_minor,
    },
    Code.BACKEND_ABOVE_LIMIT: _backend_above_limit,
    Code.RESIDUAL_CURVE_MISSING: lambda *_: {},
}
