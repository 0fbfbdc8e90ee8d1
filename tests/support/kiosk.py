"""Stand-ins for a kiosk agent's car and valuation, for tests of what the agent does around them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from edge.protocol import Condition, Flag, ObdSummary, Valuation, ValuationStatus, Vehicle


class MalibuReader:
    """Reads a Malibu without a VIN; counts its reads and runs ``during_read`` in each."""

    def __init__(self) -> None:
        self.reads = 0
        self.during_read: Callable[[], None] = lambda: None

    def read(self) -> tuple[Vehicle, ObdSummary]:
        self.reads += 1
        self.during_read()
        return Vehicle(make="Chevrolet", model="Malibu"), ObdSummary(mil_on=False)


class ManualValuer:
    """Values nothing: every car is a manual appraisal (reason "fake")."""

    @property
    def versions(self) -> dict[str, str]:
        return {"valuation": "fake"}

    def value(
        self, vehicle: Vehicle, obd: ObdSummary | None, condition: Condition, *, valued_at: datetime
    ) -> tuple[Valuation, list[Flag]]:
        return Valuation(status=ValuationStatus.MANUAL, reason="fake"), []
