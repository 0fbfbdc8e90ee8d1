"""The kiosk's valuation service: catalogue model + residual model + composition rules.

``Valuator.load()`` loads both shipped models once (sha256-checked) and keeps their interpreters;
``appraise()`` values one car for an appraisal report; ``quote()`` returns catalogue base prices
(step 1 only) for guidebook rows, which is what ``kioskmatch valuation predict`` prints.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edge.inference import compose as cmp
from edge.inference.catalogue import Catalogue, Match
from edge.inference.cpi import price_level
from edge.inference.errors import InputError, ModelIntegrityError
from edge.inference.runtime import Runtime, TfliteModel, find_runtime
from edge.protocol import (
    Condition,
    Flag,
    ObdSummary,
    Valuation,
    ValuationFactor,
    ValuationStatus,
    Vehicle,
)

logger = logging.getLogger(__name__)

INTERVAL = 0.9  # the coverage of Valuation.low/high


def _default_models_dir() -> Path:
    from models import MODELS_DIR

    return MODELS_DIR


# No car has covered more; past this an odometer (or a CSV's mileage) is a data error.
MAX_ODOMETER_KM = 3_000_000


class ValuationRequest(BaseModel):
    """What the kiosk knows about the car. Distances in km; the runtime converts to miles."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    make: str | None = None
    model: str | None = None
    trim: str | None = None
    body: str | None = Field(None, description="e.g. 'Sedan 4D'; checked against the catalogue")
    model_year: int | None = Field(None, ge=1980, le=2100)
    odometer_km: float | None = Field(None, ge=0, le=MAX_ODOMETER_KM)
    options: dict[str, bool] = Field(
        default_factory=dict, description="cruise, sound, leather; other keys are ignored"
    )
    condition_grade: float | None = Field(None, ge=0, le=5)
    mil_on: bool = False
    permanent_dtc_count: int = Field(0, ge=0)
    readiness_incomplete_count: int = Field(0, ge=0)

    @classmethod
    def from_report(
        cls, vehicle: Vehicle, obd: ObdSummary | None = None, condition: Condition | None = None
    ) -> ValuationRequest:
        """Build a request from the appraisal report's parts."""
        return cls(
            make=vehicle.make,
            model=vehicle.model,
            trim=vehicle.trim,
            body=vehicle.body,
            model_year=vehicle.model_year,
            odometer_km=vehicle.odometer_km,
            options=dict(vehicle.options),
            condition_grade=condition.grade if condition else None,
            mil_on=bool(obd and obd.mil_on),
            permanent_dtc_count=sum(1 for d in obd.dtcs if d.kind == "permanent") if obd else 0,
            readiness_incomplete_count=(
                sum(1 for v in obd.readiness.values() if v == "incomplete") if obd else 0
            ),
        )


@dataclass(frozen=True)
class ValuationResult:
    """The wire valuation plus the risk flags it raised (for AppraisalBody.flags)."""

    valuation: Valuation
    flags: tuple[Flag, ...] = ()


@dataclass(frozen=True)
class GuidebookRow:
    """One row of the guidebook CSV (mileage in miles, as in the data)."""

    make: str
    model: str
    trim: str
    miles: float
    cruise: bool = False
    sound: bool = False
    leather: bool = False
    body: str | None = None


@dataclass(frozen=True)
class Quote:
    """A catalogue base price (step 1) in US dollars at the catalogue's price level."""

    status: ValuationStatus
    model_version: str
    reason: str | None = None
    value_usd: float | None = None
    low_usd: float | None = None  # 90 % range
    high_usd: float | None = None
    low80_usd: float | None = None
    high80_usd: float | None = None
    flags: tuple[str, ...] = ()


class Valuator:
    """Values cars with the shipped TFLite models. Not thread-safe: one per thread."""

    def __init__(
        self,
        valuation: TfliteModel,
        residual: TfliteModel,
        policy: cmp.DeductionPolicy | None = None,
    ) -> None:
        vspec, rspec = valuation.manifest.valuation, residual.manifest.residual
        if vspec is None or rspec is None:
            raise ModelIntegrityError(
                valuation.model_dir, "expected a valuation and a residual model"
            )
        self._val, self._res = valuation, residual
        self._vspec, self._rspec = vspec, rspec
        self.policy = policy or cmp.DeductionPolicy()
        self.catalogue = Catalogue(vspec.catalogue)
        self._age_q90 = rspec.interval_log_halfwidth["0.9"]
        # Tensors reused for the one-car path (allocated once, filled in place).
        self._trim1 = np.zeros(1, dtype=np.int32)
        self._feat1 = np.zeros((1, 4), dtype=np.float32)
        self._points = np.zeros((rspec.term_months + 2, 2), dtype=np.float32)
        self._val.prepare(trim_index=self._trim1.shape, features=self._feat1.shape)
        self._res.prepare(points=self._points.shape)

    @classmethod
    def load(
        cls,
        models_dir: Path | None = None,
        *,
        runtime: Runtime | None = None,
        policy: cmp.DeductionPolicy | None = None,
    ) -> Valuator:
        """Load ``valuation`` and ``residual`` from ``models_dir`` (default: the shipped models)."""
        from models import RESIDUAL_MODEL, VALUATION_MODEL

        root = models_dir or _default_models_dir()
        runtime = runtime or find_runtime()
        return cls(
            TfliteModel.load(root / VALUATION_MODEL, runtime=runtime),
            TfliteModel.load(root / RESIDUAL_MODEL, runtime=runtime),
            policy,
        )

    @property
    def model_version(self) -> str:
        return self._val.manifest.version

    @property
    def residual_model_version(self) -> str:
        return self._res.manifest.version

    @property
    def runtime(self) -> str:
        return self._val.runtime

    # --- step 1: catalogue base -------------------------------------------------------------

    def _features(self, miles: float, options: dict[str, bool]) -> list[float]:
        return [miles / self._vspec.miles_scale] + [
            1.0 if options.get(o, False) else 0.0 for o in self._vspec.options
        ]

    def _base_one(self, index: int, miles: float, options: dict[str, bool]) -> list[float]:
        """The model's five prices (value, low80, high80, low90, high90) for one car, USD."""
        self._trim1[0] = index
        self._feat1[0, :] = self._features(miles, options)
        out = self._val.run(trim_index=self._trim1, features=self._feat1)["price"]
        return [float(x) for x in out[0]]

    def quote(self, rows: Sequence[GuidebookRow]) -> list[Quote]:
        """Catalogue base prices for guidebook rows, one TFLite batch for the rows it knows."""
        matches: list[Match] = [
            self.catalogue.lookup(r.make, r.model, r.trim, r.body) for r in rows
        ]
        known = [i for i, m in enumerate(matches) if m.entry is not None]
        out: list[Quote] = [
            Quote(ValuationStatus.MANUAL, self.model_version, reason=m.reason) for m in matches
        ]
        if not known:
            return out
        for i in known:
            if not math.isfinite(rows[i].miles) or rows[i].miles < 0:
                raise InputError(f"mileage {rows[i].miles} is not a non-negative number")
        max_miles = MAX_ODOMETER_KM / self._vspec.km_per_mile
        for i in [i for i in known if rows[i].miles > max_miles]:
            out[i] = Quote(
                ValuationStatus.MANUAL,
                self.model_version,
                reason=f"mileage {rows[i].miles:,.0f} mi is not plausible (more than"
                f" {max_miles:,.0f} mi): check the odometer reading",
            )
        known = [i for i in known if rows[i].miles <= max_miles]
        if not known:
            return out
        trim = np.array([matches[i].entry.index for i in known], dtype=np.int32)  # type: ignore[union-attr]
        feats = np.array(
            [
                self._features(
                    rows[i].miles,
                    {"cruise": rows[i].cruise, "sound": rows[i].sound, "leather": rows[i].leather},
                )
                for i in known
            ],
            dtype=np.float32,
        )
        prices = self._val.run(trim_index=trim, features=feats)["price"].astype(np.float64)
        hi_m = self._vspec.miles_range[1]
        for j, i in enumerate(known):
            value, lo80, hi80, lo90, hi90 = (float(v) for v in prices[j])
            if not (math.isfinite(value) and value >= 1.0 and math.isfinite(hi90)):
                # So far past the data that the model's price has collapsed: no number to give.
                out[i] = Quote(
                    ValuationStatus.MANUAL,
                    self.model_version,
                    reason=f"mileage {rows[i].miles:,.0f} mi is too far beyond the model's data"
                    f" ({self._vspec.miles_range[1]:,.0f} mi) to price",
                )
                continue
            flags: tuple[str, ...] = ()
            if rows[i].miles > hi_m:
                # Outside the data: keep the point value, widen the range, say so. The graph's
                # own half-widths (they depend on the value) are scaled.
                w = self.policy.beyond_data_widening
                h80, h90 = w * math.log(hi80 / value), w * math.log(hi90 / value)
                lo80, hi80 = value * math.exp(-h80), value * math.exp(h80)
                lo90, hi90 = value * math.exp(-h90), value * math.exp(h90)
                flags = (f"mileage_beyond_data: {rows[i].miles:.0f} mi > {hi_m:.0f} mi",)
            out[i] = Quote(
                ValuationStatus.VALUED,
                self.model_version,
                value_usd=value,
                low_usd=lo90,
                high_usd=hi90,
                low80_usd=lo80,
                high80_usd=hi80,
                flags=flags,
            )
        return out

    # --- the whole composition --------------------------------------------------------------

    def _manual(self, reason: str, valued_at: datetime) -> ValuationResult:
        return ValuationResult(
            Valuation(
                status=ValuationStatus.MANUAL,
                reason=f"manual appraisal required: {reason}",
                model_version=self.model_version,
                residual_model_version=self.residual_model_version,
                valued_at=valued_at,
            )
        )

    def appraise(self, request: ValuationRequest, *, valued_at: datetime) -> ValuationResult:
        """Value one car at ``valued_at`` (timezone-aware). An unknown car or missing facts give
        status ``manual_appraisal_required`` with the reason, never a guessed number."""
        if valued_at.tzinfo is None:
            raise InputError("valued_at must be timezone-aware (UTC)")
        match = self.catalogue.lookup(request.make, request.model, request.trim, request.body)
        if match.entry is None:
            return self._manual(match.reason or "not in the catalogue", valued_at)
        if request.model_year is None:
            return self._manual("model year unknown: the catalogue price cannot be aged", valued_at)
        if request.model_year > valued_at.year + 1:
            return self._manual(
                f"model year {request.model_year} is after the valuation date", valued_at
            )
        if request.odometer_km is None:
            return self._manual("odometer not read: the value depends on mileage", valued_at)
        entry, v, r = match.entry, self._vspec, self._rspec
        age = cmp.age_years(request.model_year, valued_at)
        kmi = request.odometer_km / v.km_per_mile / 1000.0
        ref_kmi = v.reference_miles / 1000.0

        prices = self._base_one(entry.index, v.reference_miles, request.options)
        base, base_halfwidth = prices[0], math.log(prices[4] / prices[0])
        rate = cmp.annual_kmi(age, kmi, r.default_annual_kmi, r.annual_kmi_bounds)
        self._points[0] = (v.reference_age_years, ref_kmi)
        self._points[1:] = cmp.curve_points(age, kmi, rate, r.term_months)
        log_index = self._res.run(points=self._points)["log_value"][:, 0].astype(np.float64)
        ageing = math.exp(float(log_index[1] - log_index[0]))
        curve = cmp.residual_curve(log_index[1:])

        flags: list[Flag] = []
        halfwidth = math.hypot(base_halfwidth, self._age_q90)
        beyond = []
        if age > r.age_range_years[1]:
            beyond.append(f"age {age:.1f} years > {r.age_range_years[1]:.0f}")
        if kmi > r.mileage_range_kmi[1]:
            beyond.append(
                f"odometer {request.odometer_km:,.0f} km > "
                f"{r.mileage_range_kmi[1] * 1000 * v.km_per_mile:,.0f} km"
            )
        if beyond:
            halfwidth *= self.policy.beyond_data_widening
            flags.append(
                Flag(
                    code="valuation_beyond_data",
                    severity="warning",
                    message="value extrapolated beyond the residual model's data ("
                    + "; ".join(beyond)
                    + "): range widened",
                    evidence={"age_years": round(age, 2), "odometer_km": request.odometer_km},
                )
            )
        end_age, end_kmi = age + r.term_months / 12.0, kmi + rate * r.term_months / 12.0
        if end_age > r.age_range_years[1] or end_kmi > r.mileage_range_kmi[1]:
            flags.append(
                Flag(
                    code="residual_curve_extrapolated",
                    severity="info",
                    message=f"the {r.term_months}-month residual curve reaches age {end_age:.1f} "
                    f"years and {end_kmi * 1000 * v.km_per_mile:,.0f} km, beyond the data",
                    evidence={
                        "end_age_years": round(end_age, 2),
                        "end_odometer_km": round(end_kmi * 1000 * v.km_per_mile),
                    },
                )
            )
        if request.model_year != v.catalogue_model_year:
            flags.append(
                Flag(
                    code="valuation_model_year_approximated",
                    severity="info",
                    message=f"model year {request.model_year} priced from the "
                    f"{v.catalogue_model_year} catalogue trim, aged and indexed: an "
                    "approximation untested against real sales",
                    evidence={
                        "model_year": request.model_year,
                        "catalogue_model_year": v.catalogue_model_year,
                    },
                )
            )

        level = price_level(v.price_level_year, valued_at.year)
        composition = cmp.compose(
            base_usd=base,
            base_description=(
                f"catalogue base: {entry.make} {entry.model} {entry.trim}, "
                f"{v.catalogue_model_year} guidebook at {v.reference_miles:,.0f} mi "
                f"({v.reference_miles * v.km_per_mile:,.0f} km), "
                f"{v.reference_age_years:g} year old, USD {v.price_level_year}"
            ),
            ageing_ratio=ageing,
            ageing_description=(
                f"ageing: {v.reference_age_years:g} → {age:.1f} years, "
                f"{v.reference_miles * v.km_per_mile:,.0f} → {request.odometer_km:,.0f} km"
            ),
            price_ratio=level.ratio,
            price_description=level.describe(),
            condition_grade=request.condition_grade,
            obd=cmp.ObdFacts(
                request.mil_on, request.permanent_dtc_count, request.readiness_incomplete_count
            ),
            log_halfwidth=halfwidth,
            policy=self.policy,
        )
        factors = [
            ValuationFactor(
                code=s.code,
                description=s.description,
                ratio=None if s.ratio is None else round(s.ratio, 6),
                amount_minor=None if s.amount_usd is None else round(s.amount_usd * 100),
                value_after_minor=cmp.to_minor(s.value_after_usd),
            )
            for s in composition.steps
        ]
        valuation = Valuation(
            status=ValuationStatus.VALUED,
            model_version=self.model_version,
            residual_model_version=self.residual_model_version,
            currency="USD",
            value_minor=cmp.to_minor(composition.value_usd),
            low_minor=cmp.to_minor(composition.low_usd),
            high_minor=cmp.to_minor(composition.high_usd),
            interval=INTERVAL,
            valued_at=valued_at,
            factors=factors,
            residual_curve=curve,
        )
        return ValuationResult(valuation, tuple(flags))
