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

from edge.inspection.assemble import (
    condition_from_obd,
    flags_for,
    merge_vehicle,
    screen_vehicle,
    value_blocker,
    withhold_value,
)
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
    vehicle, screen_flags = screen_vehicle(
        merge_vehicle(vehicle_read, hints, today=started.date()), obd
    )
    records = []
    if photos is not None:
        on_state(InspectionState.TAKING_PHOTOS)
        records = photos.take(on_prompt)
    on_state(InspectionState.VALUING)
    condition = condition_from_obd(obd)
    valuation, valuation_flags = valuer.value(vehicle, obd, condition, valued_at=started)
    blocker = value_blocker(obd)
    if blocker is not None:
        # Fault codes not read: the value would be that of a car without faults. The valuer's
        # own flags describe a value no longer given, so they go with it.
        logger.warning("appraisal %s: no value: %s", appraisal_id, blocker)
        valuation, valuation_flags = withhold_value(valuation, blocker), []
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
        flags=[*screen_flags, *flags_for(vehicle, obd, hints), *valuation_flags],
    )
    on_state(InspectionState.DONE)
    return body
