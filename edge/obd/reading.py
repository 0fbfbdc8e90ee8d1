"""The typed result of reading a vehicle over OBD-II: :class:`VehicleReading`.

Every value says where it came from (``source``, e.g. ``obd:01A6@7E8`` = mode 01 PID A6 answered
by ECU 7E8) and how the read went (``status``): ``ok``, ``unsupported`` (the vehicle says it does
not have it — normal for PID 0xA6 on older cars), ``no_data``, ``error`` or ``not_read`` (the read
stopped before it). The raw adapter exchanges are kept for audit.

JSON field names are a contract (``kioskmatch kiosk read-obd --json``): top-level ``vin`` (string
or null) with ``vin_source`` and ``vin_valid`` beside it; see ``docs/obd.md``.

The appraisal's wire summary (:class:`~edge.protocol.ObdSummary`) keeps only ``partial_reasons``
of all this, so the reasons the appraisal acts on have a fixed opening, made and recognised here
(:func:`dtc_reason` / :func:`dtc_gaps`, :func:`odometer_reason` / :func:`odometer_problem`):
``"<kind> DTCs not read: ..."``, ``"<kind> DTCs unreadable: ..."``, ``"<kind> DTCs incomplete:
..."`` and ``"odometer implausible: ..."``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from edge.obd.decoders import MonitorState
from edge.obd.vin import VinCheck
from edge.protocol import Dtc, ObdSummary, OdometerSource, Vehicle, VinSource

__all__ = [
    "DTC_KINDS",
    "READING_SCHEMA",
    "AdapterInfo",
    "DtcGap",
    "DtcKind",
    "DtcRecord",
    "FieldStatus",
    "ProtocolInfo",
    "RawExchange",
    "Sourced",
    "VehicleReading",
    "dtc_gaps",
    "dtc_reason",
    "odometer_problem",
    "odometer_reason",
]

READING_SCHEMA = "kioskmatch.obd-reading/1"
T = TypeVar("T")

DtcKind = Literal["stored", "pending", "permanent"]
DTC_KINDS: tuple[DtcKind, ...] = ("stored", "pending", "permanent")
#: How a DTC kind was missed: the read stopped before it, the car's answer could not be read,
#: or it was read in part (a lost frame, fewer codes than announced).
DtcGap = Literal["not read", "unreadable", "incomplete"]
_DTC_REASON = re.compile(r"^(stored|pending|permanent) DTCs (not read|unreadable|incomplete): ")
_ODOMETER_REASON = "odometer implausible: "


def dtc_reason(kind: DtcKind, gap: DtcGap, detail: str) -> str:
    """The partial reason for a DTC kind that was not fully read."""
    return f"{kind} DTCs {gap}: {detail}"


def dtc_gaps(reasons: Iterable[str]) -> dict[DtcKind, str]:
    """The DTC kinds a reading did not fully read, each with its (first) partial reason.

    A kind absent here was read, or the car does not have it (``unsupported`` is no gap).
    """
    gaps: dict[DtcKind, str] = {}
    for reason in reasons:
        match = _DTC_REASON.match(reason)
        if match is not None:
            kind = next(k for k in DTC_KINDS if k == match.group(1))
            gaps.setdefault(kind, reason)
    return gaps


def odometer_reason(detail: str) -> str:
    """The partial reason for an odometer answer no car can have."""
    return _ODOMETER_REASON + detail


def odometer_problem(reasons: Iterable[str]) -> str | None:
    """Why the odometer the car answered was set aside, or None."""
    found = (r.removeprefix(_ODOMETER_REASON) for r in reasons if r.startswith(_ODOMETER_REASON))
    return next(found, None)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldStatus(StrEnum):
    OK = "ok"
    UNSUPPORTED = "unsupported"
    NO_DATA = "no_data"
    ERROR = "error"
    NOT_READ = "not_read"


class Sourced(_Model, Generic[T]):
    """One value read from the vehicle, with its provenance and read status."""

    value: T | None = None
    status: FieldStatus = FieldStatus.NOT_READ
    source: str | None = Field(None, description="e.g. 'obd:01A6@7E8', 'adapter:ATRV', 'vininfo'")
    detail: str | None = Field(
        None,
        description="Why not ok, in a sentence; on an ok value, how several ECUs' answers made it",
    )


class DtcRecord(_Model):
    code: str
    kind: DtcKind
    ecu: str | None = None
    source: str = Field(description="'obd:03', 'obd:07' or 'obd:0A'")


class RawExchange(_Model):
    """One command sent to the adapter and the lines it answered, for audit."""

    phase: Literal["connect", "read"]
    request: str
    lines: list[str]
    elapsed_s: float
    outcome: Literal["ok", "timeout", "disconnected"] = "ok"


class ProtocolInfo(_Model):
    number: str | None = Field(None, description="ELM327 protocol number (ATDPN), e.g. '6'")
    name: str | None = Field(None, description="e.g. 'ISO 15765-4 (CAN 11/500)'")
    headers: bool = Field(False, description="Whether responses carried ECU headers")
    pinned: bool = Field(False, description="True when the protocol was set, not searched")


class AdapterInfo(_Model):
    identity: str | None = Field(None, description="ATI, e.g. 'ELM327 v1.5'")
    description: str | None = Field(None, description="AT@1, when the adapter answers it")
    voltage_v: float | None = Field(None, description="ATRV: supply voltage at the OBD socket")
    quirks: list[str] = Field(default_factory=list, description="Commands the adapter refused")


class VehicleReading(_Model):
    """Everything one read of a vehicle produced (see module docstring for field semantics)."""

    schema_: Literal["kioskmatch.obd-reading/1"] = Field("kioskmatch.obd-reading/1", alias="schema")
    port: str
    started_at: datetime
    completed_at: datetime
    duration_s: float = Field(ge=0, description="Seconds for the whole read, connect included")
    connect_s: float = Field(0.0, ge=0, description="Of which connecting (AT setup, search)")
    requests: int = Field(0, ge=0, description="OBD requests sent after connecting")

    vin: str | None = Field(None, description="VIN as read over OBD (mode 09 PID 02), or null")
    vin_source: VinSource | None = None
    vin_valid: bool = False
    vin_problems: list[str] = Field(default_factory=list)
    vin_read: Sourced[str] = Field(
        default_factory=Sourced[str], description="Read status; value is the raw payload in hex"
    )
    vin_decoded: VinCheck | None = Field(None, description="Check digit, vininfo decoding")
    make: Sourced[str] = Field(default_factory=Sourced[str])
    model_year: Sourced[int] = Field(default_factory=Sourced[int])

    odometer_km: Sourced[float] = Field(default_factory=Sourced[float])
    mil_on: Sourced[bool] = Field(default_factory=Sourced[bool])
    dtc_count: Sourced[int] = Field(default_factory=Sourced[int])
    ignition_type: Sourced[str] = Field(default_factory=Sourced[str])
    readiness: Sourced[dict[str, MonitorState]] = Field(
        default_factory=Sourced[dict[str, MonitorState]]
    )
    dtcs: list[DtcRecord] = Field(default_factory=list)
    dtc_reads: dict[str, Sourced[int]] = Field(
        default_factory=dict, description="Per kind: how many codes, and whether the read worked"
    )
    warmups_since_clear: Sourced[int] = Field(default_factory=Sourced[int])
    distance_since_clear_km: Sourced[float] = Field(default_factory=Sourced[float])
    minutes_since_clear: Sourced[int] = Field(default_factory=Sourced[int])
    distance_with_mil_km: Sourced[float] = Field(default_factory=Sourced[float])
    live: dict[str, Sourced[float]] = Field(default_factory=dict)
    supported_pids: dict[str, list[str]] = Field(
        default_factory=dict, description="Mode → supported PIDs (hex), from the bitmaps"
    )

    protocol: ProtocolInfo = Field(default_factory=ProtocolInfo)
    adapter: AdapterInfo = Field(default_factory=AdapterInfo)
    partial: bool = False
    partial_reasons: list[str] = Field(default_factory=list)
    raw: list[RawExchange] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @property
    def has_vehicle_data(self) -> bool:
        """Whether the vehicle answered anything at all (the CLI's exit 0 vs 2)."""
        statuses = [self.vin_read.status, self.odometer_km.status, self.mil_on.status]
        statuses += [read.status for read in self.dtc_reads.values()]
        return bool(self.supported_pids) or FieldStatus.OK in statuses

    def to_json(self, *, indent: int | None = 2) -> str:
        """The reading as JSON, with the documented field names."""
        return self.model_dump_json(by_alias=True, indent=indent)

    def to_protocol(self) -> tuple[Vehicle, ObdSummary]:
        """The appraisal's ``vehicle`` and ``obd`` parts (wire types of ``edge.protocol``).

        Model, trim and body are not knowable from OBD: the kiosk app adds them (dealer input or
        catalogue) with ``vehicle.model_copy(update=...)``.
        """
        odometer = self.odometer_km.value if self.odometer_km.status is FieldStatus.OK else None
        year = self.model_year.value
        vehicle = Vehicle(
            vin=self.vin,
            vin_source=self.vin_source,
            vin_valid=self.vin_valid,
            vin_problems=list(self.vin_problems),
            make=self.make.value,
            model_year=year if year is not None and 1980 <= year <= 2100 else None,
            odometer_km=odometer,
            odometer_source=OdometerSource.OBD if odometer is not None else OdometerSource.UNKNOWN,
        )
        readiness = self.readiness.value or {}
        summary = ObdSummary(
            protocol=self.protocol.name,
            adapter=" / ".join(p for p in (self.adapter.identity, self.adapter.description) if p)
            or None,
            partial=self.partial,
            partial_reasons=list(self.partial_reasons),
            mil_on=self.mil_on.value,
            dtcs=[Dtc(code=d.code, kind=d.kind, ecu=d.ecu) for d in self.dtcs],
            readiness={name: state.value for name, state in readiness.items()},
            warmups_since_clear=self.warmups_since_clear.value,
            distance_since_clear_km=self.distance_since_clear_km.value,
            minutes_since_clear=self.minutes_since_clear.value,
            distance_with_mil_km=self.distance_with_mil_km.value,
            live={
                name: v.value
                for name, v in self.live.items()
                if v.status is FieldStatus.OK and v.value is not None
            },
        )
        return vehicle, summary
