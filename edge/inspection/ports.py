"""The small interfaces the inspection runs against (real adapters in ``edge.adapters``)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from edge.protocol import Condition, ObdSummary, PhotoRecord, Valuation, Vehicle


class VehicleReader(Protocol):
    def read(self) -> tuple[Vehicle, ObdSummary]:
        """Read the car over OBD-II; raises when there is no vehicle data at all."""
        ...


class Valuer(Protocol):
    def value(
        self, vehicle: Vehicle, obd: ObdSummary | None, condition: Condition, *, valued_at: datetime
    ) -> Valuation: ...

    @property
    def versions(self) -> dict[str, str]: ...


class PhotoTaker(Protocol):
    def take(self) -> list[PhotoRecord]: ...
