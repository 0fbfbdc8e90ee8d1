"""Real adapters behind the inspection's ports, and the kiosk agent built from configuration."""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from edge.app import KioskAgent
from edge.obd import ObdError, read_vehicle
from edge.protocol import Condition, Flag, ObdSummary, Valuation, Vehicle
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
            config = self._config
            reading = read_vehicle(
                config.port_url, timeout=config.timeout_s, protocol=config.protocol
            )
        except ObdError as exc:
            self.state = f"error: {type(exc).__name__}"
            raise
        self.state = "partial" if reading.partial else "ok"
        return reading.to_protocol()


class TfliteValuer:
    """The on-device valuation and residual models (TFLite, run by LiteRT).

    The interpreters are not thread-safe; a lock serialises the (sub-millisecond) calls.
    """

    def __init__(self) -> None:
        from edge.inference import Valuator

        self._valuator = Valuator.load()
        self._lock = threading.Lock()

    @property
    def versions(self) -> dict[str, str]:
        return {
            "valuation": self._valuator.model_version,
            "residual": self._valuator.residual_model_version,
        }

    def value(
        self, vehicle: Vehicle, obd: ObdSummary | None, condition: Condition, *, valued_at: datetime
    ) -> tuple[Valuation, list[Flag]]:
        from edge.inference import ValuationRequest

        request = ValuationRequest.from_report(vehicle, obd, condition)
        with self._lock:
            result = self._valuator.appraise(request, valued_at=valued_at)
        return result.valuation, list(result.flags)


def build_agent(config: KioskConfig) -> KioskAgent:
    reader = ObdVehicleReader(config.obd)
    return KioskAgent(
        config, reader=reader, valuer=TfliteValuer(), adapter_state=lambda: reader.state
    )
