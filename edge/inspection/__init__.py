"""The inspection flow and the pure rules that assemble an appraisal."""

from edge.inspection.assemble import (
    condition_from_obd,
    flags_for,
    merge_vehicle,
    screen_vehicle,
    value_blocker,
    withhold_value,
)
from edge.inspection.flow import InspectionState, run_inspection
from edge.inspection.ports import PhotoTaker, Valuer, VehicleReader

__all__ = [
    "InspectionState",
    "PhotoTaker",
    "Valuer",
    "VehicleReader",
    "condition_from_obd",
    "flags_for",
    "merge_vehicle",
    "run_inspection",
    "screen_vehicle",
    "value_blocker",
    "withhold_value",
]
