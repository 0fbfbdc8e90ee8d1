"""The small interfaces the inspection runs against (real adapters in ``edge.adapters``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from edge.protocol import Condition, Flag, ObdSummary, PhotoRecord, Valuation, Vehicle


class VehicleReader(Protocol):
    def read(self) -> tuple[Vehicle, ObdSummary]:
        """Read the car over OBD-II; raises when there is no vehicle data at all."""
        ...


class Valuer(Protocol):
    def value(
        self, vehicle: Vehicle, obd: ObdSummary | None, condition: Condition, *, valued_at: datetime
    ) -> tuple[Valuation, Sequence[Flag]]:
        """The valuation, and the risk flags it raised (e.g. mileage beyond the data)."""
        ...

    @property
    def versions(self) -> dict[str, str]: ...


class PhotoTaker(Protocol):
    def take(self, on_prompt: Callable[[str, str], None] | None = None) -> list[PhotoRecord]:
        """Guide the inspector through the views; ``on_prompt(view, text)`` before each capture."""
        ...
