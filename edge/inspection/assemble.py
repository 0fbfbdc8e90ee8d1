"""Pure rules that turn what the kiosk read into the appraisal's vehicle, condition and flags.

What the OBD read could not establish must not read as good news: a VIN typed by the dealer is
checked like one read from the car, an odometer no car can have is set aside (and flagged), and
fault codes that were not (fully) read are flagged and keep the car from being valued as if it
had none (see :func:`value_blocker`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from edge.obd.decoders import MAX_PLAUSIBLE_ODOMETER_KM
from edge.obd.reading import DTC_KINDS, DtcKind, dtc_gaps, odometer_problem
from edge.obd.vin import check_vin
from edge.protocol import (
    Condition,
    Deduction,
    Flag,
    ObdSummary,
    OdometerSource,
    Valuation,
    ValuationStatus,
    Vehicle,
    VinSource,
)

#: Since-clear thresholds below which codes count as "recently cleared" (a common fraud: clear
#: the codes just before the inspection so the MIL is off).
RECENT_CLEAR_WARMUPS = 10
RECENT_CLEAR_KM = 160.0
#: The DTC kinds the value depends on: stored codes grade the condition, permanent codes are
#: deducted. Pending codes change neither, so missing them is flagged but does not stop a value.
VALUE_DTC_KINDS: tuple[DtcKind, ...] = ("stored", "permanent")
#: A typed "VIN" longer than this is cut in the report (a VIN has 17 characters; the problems say
#: so), so a pasted paragraph cannot swell the appraisal past the message size limit.
TYPED_VIN_MAX_CHARS = 64
_MANUAL_PREFIX = "manual appraisal required: "


def typed_vin(hints: Mapping[str, Any]) -> str | None:
    """The VIN the dealer typed, normalised (upper case, no whitespace anywhere), or None."""
    raw = hints.get("vin")
    if raw is None:
        return None
    text = "".join(str(raw).split()).upper()
    return text[:TYPED_VIN_MAX_CHARS] or None


def merge_vehicle(read: Vehicle, hints: Mapping[str, Any], *, today: date | None = None) -> Vehicle:
    """The OBD reading completed with what the dealer typed (model, trim, options, VIN).

    A typed VIN (used when the car gave none) goes through the same checks as one read over
    OBD: alphabet, length and check digit, with the problems listed when it fails; when valid,
    its make and model year fill in what the car did not say (before the dealer's typed make,
    as an OBD VIN's would).
    """
    update: dict[str, Any] = {}
    typed = typed_vin(hints)
    if read.vin is None and typed is not None:
        check = check_vin(typed, today=today)
        update["vin"] = check.vin
        update["vin_source"] = VinSource.TYPED
        update["vin_valid"] = check.valid
        update["vin_problems"] = list(check.problems)
        if check.valid:
            if check.manufacturer and not read.make:
                update["make"] = check.manufacturer
            if check.model_year is not None and read.model_year is None:
                update["model_year"] = check.model_year
    for key in ("make", "model", "trim", "body"):
        if hints.get(key) and not (update.get(key) or getattr(read, key)):
            update[key] = hints[key]
    if hints.get("options"):
        update["options"] = {**read.options, **hints["options"]}
    return read.model_copy(update=update)


def screen_vehicle(vehicle: Vehicle, obd: ObdSummary | None) -> tuple[Vehicle, list[Flag]]:
    """Set aside values no car can have, with a flag saying what was seen.

    An odometer past :data:`MAX_PLAUSIBLE_ODOMETER_KM` (``FF FF FF FF`` over OBD reads as
    429,496,729.5 km) is unknown, not a mileage: kept, it would stop the valuation and make every
    later appraisal of the car look like an odometer rollback. The OBD reader already sets such an
    answer aside and says why in ``partial_reasons``; a value from elsewhere is caught here.
    """
    detail = odometer_problem(obd.partial_reasons) if obd is not None else None
    evidence: dict[str, str | int | float | bool | None] = {}
    odometer = vehicle.odometer_km
    if odometer is not None and odometer > MAX_PLAUSIBLE_ODOMETER_KM:
        detail = detail or (
            f"the odometer reads {odometer:,.1f} km ({vehicle.odometer_source.value}), more than"
            f" any car covers ({MAX_PLAUSIBLE_ODOMETER_KM:,} km)"
        )
        evidence["odometer_km"] = odometer
        vehicle = vehicle.model_copy(
            update={"odometer_km": None, "odometer_source": OdometerSource.UNKNOWN}
        )
    if detail is None:
        return vehicle, []
    flag = Flag(
        code="odometer_implausible",
        severity="warning",
        message="An odometer reading no car can have was set aside; read the odometer from the"
        " dashboard.",
        evidence={"detail": detail, "max_plausible_km": MAX_PLAUSIBLE_ODOMETER_KM, **evidence},
    )
    return vehicle, [flag]


def condition_from_obd(obd: ObdSummary | None) -> Condition:
    """Condition grade from OBD health (the inspector's checklist adds to it later)."""
    deductions: list[Deduction] = []
    if obd is not None:
        if obd.mil_on:
            deductions.append(
                Deduction(code="mil_on", description="Check-engine light on", points=0.5)
            )
        permanent = [d for d in obd.dtcs if d.kind == "permanent"]
        stored = [d for d in obd.dtcs if d.kind == "stored"]
        if permanent:
            deductions.append(
                Deduction(
                    code="permanent_dtcs",
                    description=f"{len(permanent)} permanent fault code(s)",
                    points=min(0.25 * len(permanent), 1.0),
                )
            )
        if stored:
            deductions.append(
                Deduction(
                    code="stored_dtcs",
                    description=f"{len(stored)} stored fault code(s)",
                    points=min(0.2 * len(stored), 1.0),
                )
            )
        incomplete = [m for m, s in obd.readiness.items() if s == "incomplete"]
        if incomplete:
            deductions.append(
                Deduction(
                    code="readiness_incomplete",
                    description="Readiness monitors incomplete: " + ", ".join(sorted(incomplete)),
                    points=0.25,
                )
            )
    grade = max(0.0, round(5.0 - sum(d.points for d in deductions), 2))
    return Condition(grade=grade, deductions=deductions)


def value_blocker(obd: ObdSummary | None) -> str | None:
    """Why the OBD read cannot support a value, or None.

    Stored or permanent codes that were not (fully) read make the condition grade and the OBD
    deductions unknown; valuing the car anyway would value it as one without faults. Like any
    other missing fact the value depends on (model year, odometer), this asks for a manual
    appraisal, with the reason.
    """
    if obd is None:
        return None
    gaps = dtc_gaps(obd.partial_reasons)
    missing = [kind for kind in VALUE_DTC_KINDS if kind in gaps]
    if not missing:
        return None
    return (
        f"fault codes not fully read ({', '.join(gaps[k] for k in missing)}): the condition"
        " grade and OBD deductions depend on them; read the car again"
    )


def withhold_value(valuation: Valuation, reason: str) -> Valuation:
    """The valuation as a manual appraisal for ``reason`` (any reason it already had is kept
    after it); model versions and the valuation time stay for the audit."""
    reasons = [reason]
    if valuation.status is ValuationStatus.MANUAL and valuation.reason:
        reasons.append(valuation.reason.removeprefix(_MANUAL_PREFIX))
    return Valuation(
        status=ValuationStatus.MANUAL,
        reason=_MANUAL_PREFIX + "; ".join(reasons),
        model_version=valuation.model_version,
        residual_model_version=valuation.residual_model_version,
        currency=valuation.currency,
        valued_at=valuation.valued_at,
    )


def _dtc_read_flag(obd: ObdSummary) -> Flag | None:
    gaps = dtc_gaps(obd.partial_reasons)
    if not gaps:
        return None
    not_read = [k for k in DTC_KINDS if k in gaps]
    read = [k for k in DTC_KINDS if k not in gaps]
    evidence: dict[str, str | int | float | bool | None] = {
        "kinds_read": ", ".join(read) or "none",
        "kinds_not_read": ", ".join(not_read),
        "value_withheld": any(k in gaps for k in VALUE_DTC_KINDS),
        "codes_found": len(obd.dtcs),
    }
    evidence.update({f"{kind}_dtcs": reason for kind, reason in gaps.items()})
    return Flag(
        code="dtc_read_incomplete",
        severity="warning",
        message=f"Fault codes not fully read ({', '.join(not_read)}): no codes reported is not"
        " no codes present; read the car again.",
        evidence=evidence,
    )


def flags_for(vehicle: Vehicle, obd: ObdSummary | None, hints: Mapping[str, Any]) -> list[Flag]:
    """Fraud and risk signals with their evidence."""
    flags: list[Flag] = []
    if vehicle.vin is not None and not vehicle.vin_valid:
        typed_in = vehicle.vin_source is VinSource.TYPED
        problems = vehicle.vin_problems or check_vin(vehicle.vin).problems
        flags.append(
            Flag(
                code="vin_invalid",
                severity="warning",
                message=(
                    "The VIN typed in does not pass validation; check it against the VIN plate."
                    if typed_in
                    else "The VIN read does not pass validation; check the VIN plate."
                ),
                evidence={
                    "vin": vehicle.vin,
                    "vin_source": vehicle.vin_source.value if vehicle.vin_source else None,
                    "problems": "; ".join(problems) or "not validated",
                },
            )
        )
    typed = typed_vin(hints)
    if typed and vehicle.vin and vehicle.vin_source is VinSource.OBD and typed != vehicle.vin:
        flags.append(
            Flag(
                code="vin_mismatch",
                severity="critical",
                message="The VIN from the car's computer differs from the VIN typed in.",
                evidence={
                    "obd_vin": vehicle.vin,
                    "typed_vin": typed,
                    "typed_vin_problems": "; ".join(check_vin(typed).problems) or None,
                },
            )
        )
    if obd is not None:
        dtc_flag = _dtc_read_flag(obd)
        if dtc_flag is not None:
            flags.append(dtc_flag)
    if obd is not None and obd.warmups_since_clear is not None:
        few_warmups = obd.warmups_since_clear < RECENT_CLEAR_WARMUPS
        short = (
            obd.distance_since_clear_km is not None
            and obd.distance_since_clear_km < RECENT_CLEAR_KM
        )
        incomplete = sum(1 for s in obd.readiness.values() if s == "incomplete")
        if few_warmups and (short or incomplete):
            flags.append(
                Flag(
                    code="codes_recently_cleared",
                    severity="warning",
                    message="Fault codes were cleared recently; faults may be hidden.",
                    evidence={
                        "warmups_since_clear": obd.warmups_since_clear,
                        "distance_since_clear_km": obd.distance_since_clear_km,
                        "monitors_incomplete": incomplete,
                    },
                )
            )
    return flags
