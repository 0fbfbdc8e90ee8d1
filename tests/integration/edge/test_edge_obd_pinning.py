"""The kiosk pins the protocol it found, and still reads a car on another bus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge import adapters
from edge.adapters import ObdVehicleReader
from edge.obd import ReadOptions, VehicleReading, read_vehicle, start_simulator
from firmware_config.schema import ObdConfig


def test_protocol_is_pinned_then_falls_back(tmp_path: Path) -> None:
    state = tmp_path / "obd-protocol"
    with start_simulator("malibu_2019", latency_s=0) as sim:
        reader = ObdVehicleReader(
            ObdConfig.model_validate(
                {"transport": {"type": "serial", "port": sim.port}, "timeout_s": 30}
            ),
            state_file=state,
        )
        vehicle, _ = reader.read()
    assert vehicle.vin is not None and vehicle.vin.startswith("1")
    can = state.read_text()
    assert can == reader.pinned_protocol() and can != "0"

    with start_simulator("legacy_iso9141", latency_s=0) as sim:
        reader = ObdVehicleReader(
            ObdConfig.model_validate(
                {"transport": {"type": "serial", "port": sim.port}, "timeout_s": 30}
            ),
            state_file=state,
        )
        _, obd = reader.read()
    assert obd.protocol is not None and "9141" in obd.protocol
    assert state.read_text() != can  # re-pinned to the bus this kiosk now sees


def test_a_fixed_baud_rate_reaches_the_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[ReadOptions | None] = []
    real = read_vehicle

    def recording(port: str, **kwargs: Any) -> VehicleReading:
        seen.append(kwargs.get("options"))
        return real(port, **kwargs)

    monkeypatch.setattr(adapters, "read_vehicle", recording)
    with start_simulator("malibu_2019", latency_s=0) as sim:
        config = {"type": "serial", "port": sim.port, "baudrate": 115200}
        reader = ObdVehicleReader(ObdConfig.model_validate({"transport": config, "timeout_s": 30}))
        vehicle, _ = reader.read()  # python-obd skips its baud detection for a fixed rate
    assert vehicle.vin is not None
    assert [options.baudrate if options else None for options in seen] == [115200]
