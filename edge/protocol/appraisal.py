"""The appraisal report a kiosk publishes (schema ``kioskmatch.appraisal/1``).

Units follow the contract: km, km/h, °C, seconds, RFC 3339 UTC timestamps, money as integer minor
units with an ISO 4217 currency.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code")]
UUIDStr = Annotated[
    str,
    Field(
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        description="UUID in lower-case canonical form",
    ),
]
INT64_MAX = 2**63 - 1
"""The largest integer SQLite and PostgreSQL (BIGINT) store: the bound of those reaching columns."""
MinorUnits = Annotated[
    int, Field(ge=0, le=INT64_MAX, description="Money in integer minor units (cents)")
]


class WireModel(BaseModel):
    """Base for every wire type: unknown fields are ignored (additive changes are safe).

    Numbers are finite: JSON has no NaN or Infinity (``Infinity`` or ``1e400`` in a payload is
    refused, not read as an infinite odometer that every later appraisal of the car would be
    compared with), and PostgreSQL's JSON columns refuse them.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


class VinSource(StrEnum):
    OBD = "obd"
    PHOTO = "photo"
    TYPED = "typed"


class OdometerSource(StrEnum):
    OBD = "obd"  # PID 0xA6
    DASHBOARD = "dashboard"  # read from the dashboard photo or typed by the inspector
    UNKNOWN = "unknown"


class Vehicle(WireModel):
    vin: str | None = Field(None, description="The VIN as read, or null when none could be read")
    vin_source: VinSource | None = None
    vin_valid: bool = Field(False, description="17 characters, no I/O/Q, check digit where used")
    vin_problems: list[str] = Field(default_factory=list, description="Why the VIN is not valid")
    make: str | None = None
    model: str | None = None
    trim: str | None = None
    body: str | None = Field(None, description="Body style, e.g. 'Sedan 4D'")
    model_year: int | None = Field(None, ge=1980, le=2100)
    odometer_km: float | None = Field(None, ge=0)
    odometer_source: OdometerSource = OdometerSource.UNKNOWN
    options: dict[str, bool] = Field(
        default_factory=dict, description="Equipment flags, e.g. cruise, sound, leather"
    )


class Dtc(WireModel):
    code: str = Field(pattern=r"^[PCBU][0-3][0-9A-F]{3}$")
    kind: Literal["stored", "pending", "permanent"]
    ecu: str | None = Field(None, description="Responding ECU header, when known")


class ObdSummary(WireModel):
    """What the kiosk read over OBD-II. Absent fields were not supported or not read."""

    protocol: str | None = None
    adapter: str | None = Field(None, description="Adapter identity (ATI / AT@1)")
    partial: bool = False
    partial_reasons: list[str] = Field(default_factory=list)
    mil_on: bool | None = None
    dtcs: list[Dtc] = Field(default_factory=list)
    readiness: dict[str, Literal["complete", "incomplete", "unsupported"]] = Field(
        default_factory=dict, description="Readiness monitors from mode 01 PID 01"
    )
    warmups_since_clear: int | None = Field(None, ge=0)
    distance_since_clear_km: float | None = Field(None, ge=0)
    minutes_since_clear: int | None = Field(None, ge=0)
    distance_with_mil_km: float | None = Field(None, ge=0)
    live: dict[str, float] = Field(
        default_factory=dict, description="Snapshot of live PIDs by name (SI units)"
    )


class MaskedArea(WireModel):
    """A region blurred on the kiosk before the photo left it (full-frame pixels)."""

    kind: Literal["face", "plate"]
    box: tuple[int, int, int, int] = Field(description="x, y, width, height")


class PhotoRecord(WireModel):
    view: str = Field(max_length=32)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    phash: str | None = Field(None, max_length=16, description="64-bit perceptual hash, hex")
    passed: bool
    reasons: list[str] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    masked: list[MaskedArea] = Field(
        default_factory=list, description="Faces and plates masked on the kiosk"
    )
    bytes: int | None = Field(None, ge=0, description="Size of the uploaded JPEG")


class Deduction(WireModel):
    code: str
    description: str
    points: float = Field(ge=0, description="Condition-grade points deducted")


class Condition(WireModel):
    grade: float = Field(ge=0, le=5, description="0 (salvage) to 5 (excellent), NAAA style")
    deductions: list[Deduction] = Field(default_factory=list)


class ValuationFactor(WireModel):
    """One step of how the value was composed. Exactly one of ratio / amount applies."""

    code: str = Field(description="catalogue_base, ageing, price_level, condition, obd, ...")
    description: str
    ratio: float | None = Field(None, description="Multiplier applied to the running value")
    amount_minor: int | None = Field(None, description="Signed amount added, in minor units")
    value_after_minor: int = Field(ge=0)


class ValuationStatus(StrEnum):
    VALUED = "valued"
    MANUAL = "manual_appraisal_required"


class Valuation(WireModel):
    status: ValuationStatus
    reason: str | None = Field(None, description="Why no value was given, for manual appraisal")
    model_version: str | None = None
    residual_model_version: str | None = None
    currency: Currency = "USD"
    value_minor: MinorUnits | None = None
    low_minor: MinorUnits | None = None
    high_minor: MinorUnits | None = None
    interval: float | None = Field(None, gt=0, lt=1, description="Coverage of [low, high]")
    valued_at: AwareDatetime | None = None
    factors: list[ValuationFactor] = Field(default_factory=list)
    residual_curve: list[float] = Field(
        default_factory=list,
        description="Value ratio to today's value at month 0, 1, ... of a term (non-increasing)",
    )


class Flag(WireModel):
    code: str = Field(description="e.g. codes_recently_cleared, vin_mismatch, odometer_rollback")
    severity: Literal["info", "warning", "critical"]
    message: str
    evidence: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


class AppraisalBody(WireModel):
    appraisal_id: UUIDStr = Field(description="From the start command or made by the kiosk")
    command_id: UUIDStr | None = Field(None, description="The start_appraisal command, if any")
    inspector: str | None = None
    started_at: AwareDatetime
    completed_at: AwareDatetime
    vehicle: Vehicle
    obd: ObdSummary | None = None
    photos: list[PhotoRecord] = Field(default_factory=list)
    condition: Condition
    valuation: Valuation
    flags: list[Flag] = Field(default_factory=list)
