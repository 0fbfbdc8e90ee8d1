"""VehicleReading: the JSON contract and the mapping onto edge.protocol."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import edge.obd
from edge.obd.decoders import MonitorState
from edge.obd.reading import DtcRecord, FieldStatus, Sourced, VehicleReading
from edge.protocol import ObdSummary, OdometerSource, Vehicle, VinSource

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def make_reading(**overrides: object) -> VehicleReading:
    fields: dict[str, object] = {
        "port": "/dev/ttyUSB0",
        "started_at": NOW,
        "completed_at": NOW,
        "duration_s": 0.4,
        "vin": "1G1ZB5ST0KF123456",
        "vin_source": VinSource.OBD,
        "vin_valid": True,
        "vin_read": Sourced[str](value="01", status=FieldStatus.OK, source="obd:0902@7E8"),
        "make": Sourced[str](value="Chevrolet", status=FieldStatus.OK, source="vininfo"),
        "model_year": Sourced[int](value=2019, status=FieldStatus.OK, source="vin:position10"),
        "odometer_km": Sourced[float](value=48000.0, status=FieldStatus.OK, source="obd:01A6@7E8"),
        "mil_on": Sourced[bool](value=True, status=FieldStatus.OK, source="obd:0101@7E8"),
        "readiness": Sourced[dict[str, MonitorState]](
            value={"catalyst": MonitorState.INCOMPLETE}, status=FieldStatus.OK, source="obd:0101"
        ),
        "dtcs": [DtcRecord(code="P0420", kind="stored", ecu="7E8", source="obd:03")],
        "live": {
            "engine_rpm": Sourced[float](value=760.0, status=FieldStatus.OK, source="obd:010C"),
            "coolant_temp_c": Sourced[float](status=FieldStatus.UNSUPPORTED, source="obd:0105"),
        },
    }
    fields.update(overrides)
    return VehicleReading.model_validate(fields)


def test_json_has_top_level_vin_with_provenance_siblings() -> None:
    data = json.loads(make_reading().to_json())
    assert data["schema"] == "kioskmatch.obd-reading/1"
    assert data["vin"] == "1G1ZB5ST0KF123456"
    assert data["vin_source"] == "obd"
    assert data["vin_valid"] is True
    assert data["odometer_km"] == {
        "value": 48000.0,
        "status": "ok",
        "source": "obd:01A6@7E8",
        "detail": None,
    }


def test_json_vin_null_when_unread() -> None:
    data = json.loads(make_reading(vin=None, vin_source=None, vin_valid=False).to_json())
    assert data["vin"] is None
    assert data["vin_valid"] is False


def test_json_round_trips() -> None:
    reading = make_reading()
    assert VehicleReading.model_validate_json(reading.to_json()) == reading


def test_to_protocol_maps_vehicle_and_summary() -> None:
    vehicle, summary = make_reading().to_protocol()
    assert isinstance(vehicle, Vehicle)
    assert isinstance(summary, ObdSummary)
    assert vehicle.vin == "1G1ZB5ST0KF123456"
    assert vehicle.vin_source is VinSource.OBD
    assert vehicle.make == "Chevrolet"
    assert vehicle.model_year == 2019
    assert vehicle.odometer_km == 48000.0
    assert vehicle.odometer_source is OdometerSource.OBD
    assert summary.mil_on is True
    assert summary.dtcs[0].code == "P0420"
    assert summary.dtcs[0].ecu == "7E8"
    assert summary.readiness == {"catalyst": "incomplete"}
    assert summary.live == {"engine_rpm": 760.0}  # unsupported values are left out


def test_to_protocol_odometer_unsupported_is_unknown_source() -> None:
    reading = make_reading(
        odometer_km=Sourced[float](status=FieldStatus.UNSUPPORTED, source="obd:01A6")
    )
    vehicle, _ = reading.to_protocol()
    assert vehicle.odometer_km is None
    assert vehicle.odometer_source is OdometerSource.UNKNOWN


def test_has_vehicle_data() -> None:
    assert make_reading().has_vehicle_data
    empty = make_reading(
        vin_read=Sourced[str](), odometer_km=Sourced[float](), mil_on=Sourced[bool]()
    )
    assert not empty.has_vehicle_data


def test_public_surface_is_deliberate() -> None:
    assert sorted(edge.obd.__all__) == edge.obd.__all__
    for name in edge.obd.__all__:
        assert hasattr(edge.obd, name)
    assert {
        "read_vehicle",
        "start_simulator",
        "Simulator",
        "VehicleReading",
        "ObdError",
        "AdapterNotFound",
        "NoVehicleData",
    } <= set(edge.obd.__all__)
