"""The inspection an inspector walks through: read → photos → value → queued.

``run_inspection`` is the sequence; each step reports progress through ``on_state`` so the kiosk
screen and the gateway (as ``inspection_progress`` events) can follow it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from edge.inspection.assemble import condition_from_obd, flags_for, merge_vehicle
from edge.inspection.ports import PhotoTaker, Valuer, VehicleReader
from edge.protocol import AppraisalBody

logger = logging.getLogger(__name__)


class InspectionState(StrEnum):
    READING_OBD = "reading_obd"
    TAKING_PHOTOS = "taking_photos"
    VALUING = "valuing"
    DONE = "done"
    FAILED = "failed"


def run_inspection(
    *,
    appraisal_id: str,
    reader: VehicleReader,
    valuer: Valuer,
    hints: Mapping[str, Any],
    photos: PhotoTaker | None = None,
    command_id: str | None = None,
    on_state: Callable[[InspectionState], None] = lambda _s: None,
    on_prompt: Callable[[str, str], None] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> AppraisalBody:
    started = now()
    on_state(InspectionState.READING_OBD)
    vehicle_read, obd = reader.read()
    vehicle = merge_vehicle(vehicle_read, hints)
    records = []
    if photos is not None:
        on_state(InspectionState.TAKING_PHOTOS)
        records = photos.take(on_prompt)
    on_state(InspectionState.VALUING)
    condition = condition_from_obd(obd)
    valuation, valuation_flags = valuer.value(vehicle, obd, condition, valued_at=started)
    body = AppraisalBody(
        appraisal_id=appraisal_id,
        command_id=command_id,
        started_at=started,
        completed_at=now(),
        vehicle=vehicle,
        obd=obd,
        photos=records,
        condition=condition,
        valuation=valuation,
        flags=[*flags_for(vehicle, obd, hints), *valuation_flags],
    )
    on_state(InspectionState.DONE)
    return body
