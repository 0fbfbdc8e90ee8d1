"""Pure rules that turn what the kiosk read into the appraisal's vehicle, condition and flags."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge.protocol import Condition, Deduction, Flag, ObdSummary, Vehicle, VinSource

#: Since-clear thresholds below which codes count as "recently cleared" (a common fraud: clear
#: the codes just before the inspection so the MIL is off).
RECENT_CLEAR_WARMUPS = 10
RECENT_CLEAR_KM = 160.0


def merge_vehicle(read: Vehicle, hints: Mapping[str, Any]) -> Vehicle:
    """The OBD reading completed with what the dealer typed (model, trim, options, VIN)."""
    update: dict[str, Any] = {}
    for key in ("make", "model", "trim", "body"):
        if hints.get(key) and not getattr(read, key):
            update[key] = hints[key]
    if hints.get("options"):
        update["options"] = {**read.options, **hints["options"]}
    if read.vin is None and hints.get("vin"):
        update["vin"] = str(hints["vin"]).upper()
        update["vin_source"] = VinSource.TYPED
    return read.model_copy(update=update)


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


def flags_for(vehicle: Vehicle, obd: ObdSummary | None, hints: Mapping[str, Any]) -> list[Flag]:
    """Fraud and risk signals with their evidence."""
    flags: list[Flag] = []
    if vehicle.vin is not None and not vehicle.vin_valid:
        flags.append(
            Flag(
                code="vin_invalid",
                severity="warning",
                message="The VIN read does not pass validation; check the VIN plate.",
                evidence={"vin": vehicle.vin, "problems": "; ".join(vehicle.vin_problems)},
            )
        )
    typed = str(hints.get("vin") or "").upper()
    if typed and vehicle.vin and vehicle.vin_source is VinSource.OBD and typed != vehicle.vin:
        flags.append(
            Flag(
                code="vin_mismatch",
                severity="critical",
                message="The VIN from the car's computer differs from the VIN typed in.",
                evidence={"obd_vin": vehicle.vin, "typed_vin": typed},
            )
        )
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
