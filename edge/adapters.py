"""Real adapters behind the inspection's ports, and the kiosk agent built from configuration."""

from __future__ import annotations

import logging
from datetime import datetime

from edge.app import KioskAgent
from edge.obd import ObdError, read_vehicle
from edge.protocol import Condition, ObdSummary, Valuation, Vehicle
from firmware_config import KioskConfig
from firmware_config.schema import ObdConfig

logger = logging.getLogger(__name__)


class ObdVehicleReader:
    """Reads the car through the configured adapter (serial, Bluetooth RFCOMM or TCP)."""

    def __init__(self, config: ObdConfig) -> None:
        self._config = config
        self.state: str | None = "idle"

    def read(self) -> tuple[Vehicle, ObdSummary]:
        self.state = "reading"
        try:
            reading = read_vehicle(
                self._config.port_url, timeout=self._config.timeout_s, protocol=self._config.protocol
            )
        except ObdError as exc:
            self.state = f"error: {type(exc).__name__}"
            raise
        self.state = "partial" if reading.partial else "ok"
        return reading.to_protocol()


class TfliteValuer:
    """The on-device valuation and residual models (TFLite, run by LiteRT)."""

    def __init__(self) -> None:
        from edge.inference import Valuator

        self._valuator = Valuator.load()

    @property
    def versions(self) -> dict[str, str]:
        return self._valuator.versions

    def value(
        self, vehicle: Vehicle, obd: ObdSummary | None, condition: Condition, *, valued_at: datetime
    ) -> Valuation:
        return self._valuator.appraise_vehicle(vehicle, obd, condition, valued_at=valued_at)


def build_agent(config: KioskConfig) -> KioskAgent:
    reader = ObdVehicleReader(config.obd)
    return KioskAgent(
        config, reader=reader, valuer=TfliteValuer(), adapter_state=lambda: reader.state
    )
