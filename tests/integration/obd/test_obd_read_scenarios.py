"""Every simulator scenario read through a real pseudo-terminal, python-obd in the loop."""

from __future__ import annotations

import os
import socket

import obd
import pytest

from edge.obd import (
    AdapterNotFound,
    AdapterNotResponding,
    FieldStatus,
    NoVehicleData,
    ReadOptions,
    ReadTimeout,
    VehicleReading,
    read_vehicle,
    start_simulator,
)
from edge.obd.elm import ElmLink
from edge.obd.scenario import Scenario, load_scenario
from edge.obd.session import KioskOBD

# Short per-request timeouts keep the fault scenarios quick; latency 0 except the slow test.
FAST = ReadOptions(request_timeout=1.0, search_timeout=5.0, retry_backoff_s=0.01)


def read(scenario: str, *, transport: str = "pty", timeout: float = 20.0) -> VehicleReading:
    with start_simulator(scenario, transport=transport, latency_s=0) as sim:  # type: ignore[arg-type]
        return read_vehicle(sim.port, timeout=timeout, options=FAST)


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_malibu_2019_walking_skeleton_car(transport: str) -> None:
    reading = read("malibu_2019", transport=transport)
    assert not reading.partial, reading.partial_reasons
    assert reading.vin == "1G1ZB5ST0KF123456"  # python-obd would have returned G1ZB5ST0KF123456
    assert reading.vin_valid
    assert reading.vin_source == "obd"
    assert reading.make.value == "Chevrolet"
    assert reading.model_year.value == 2019
    assert reading.odometer_km.value == 48000.0
    assert reading.odometer_km.source == "obd:01A6@7E8"
    assert reading.mil_on.value is False
    assert reading.dtcs == []
    assert {k: v.status for k, v in reading.dtc_reads.items()} == {
        "stored": FieldStatus.OK,
        "pending": FieldStatus.OK,
        "permanent": FieldStatus.OK,
    }
    assert reading.protocol.number == "6"
    assert reading.protocol.headers
    assert reading.adapter.identity == "ELM327 v1.5"
    assert reading.adapter.voltage_v == 12.6
    assert reading.live["engine_rpm"].value == 760.0
    assert reading.live["control_module_voltage_v"].value == 14.2
    assert "A6" in reading.supported_pids["01"]
    # Several PIDs per request: bitmaps 1, status 1, live 1, VIN 1, DTC 3.
    assert reading.requests == 7
    assert any(x.request == "0902" for x in reading.raw)
    vehicle, summary = reading.to_protocol()
    assert vehicle.vin == "1G1ZB5ST0KF123456"
    assert vehicle.odometer_km == 48000.0
    assert summary.protocol == "ISO 15765-4 (CAN 11/500)"
    assert summary.readiness["catalyst"] == "complete"


def test_clean_car_on_29_bit_can() -> None:
    reading = read("clean_car")
    assert not reading.partial
    assert reading.protocol.number == "7"
    assert reading.vin == "WVWZZZAU0HW012340"
    assert reading.vin_valid
    assert reading.make.value == "Volkswagen"
    assert reading.odometer_km.value == 73512.4
    assert reading.odometer_km.source == "obd:01A6@18DAF110"


def test_mil_on_with_stored_pending_permanent_codes_from_two_ecus() -> None:
    reading = read("mil_on")
    assert not reading.partial
    assert reading.mil_on.value is True
    assert reading.dtc_count.value == 5
    codes = {(d.code, d.kind, d.ecu) for d in reading.dtcs}
    assert codes == {
        ("P0301", "stored", "7E8"),
        ("P0420", "stored", "7E8"),
        ("P0302", "stored", "7E8"),
        ("P0303", "stored", "7E8"),
        ("U0100", "stored", "7E9"),
        ("P0171", "pending", "7E8"),
        ("P0420", "permanent", "7E8"),
        ("U0100", "permanent", "7E9"),
    }
    assert reading.distance_with_mil_km.value == 154
    assert reading.readiness.value is not None
    assert reading.readiness.value["catalyst"] == "incomplete"


def test_codes_just_cleared() -> None:
    reading = read("codes_cleared")
    assert reading.mil_on.value is False
    assert reading.dtcs == []
    assert reading.warmups_since_clear.value == 0
    assert reading.distance_since_clear_km.value == 2
    assert reading.minutes_since_clear.value == 4
    readiness = reading.readiness.value or {}
    assert {n for n, s in readiness.items() if s == "incomplete"} == {
        "catalyst",
        "evaporative_system",
        "oxygen_sensor",
        "oxygen_sensor_heater",
        "egr_vvt_system",
    }
    _, summary = reading.to_protocol()
    assert summary.warmups_since_clear == 0
    assert summary.distance_since_clear_km == 2


def test_no_odometer_is_unsupported_not_an_error() -> None:
    reading = read("no_odometer")
    assert not reading.partial
    assert reading.odometer_km.status is FieldStatus.UNSUPPORTED
    assert reading.odometer_km.detail is not None and "dashboard" in reading.odometer_km.detail
    assert not any(x.request.endswith("A6") for x in reading.raw if x.phase == "read")
    vehicle, _ = reading.to_protocol()
    assert vehicle.odometer_km is None
    assert vehicle.odometer_source == "unknown"


def test_vin_starting_with_2_and_ending_in_0_survives() -> None:
    reading = read("vin_ends_zero")
    assert reading.vin == "2T1BURHE5KC123450"
    assert reading.vin_valid
    assert reading.make.value == "Toyota"


def test_v15_clone_refusing_ath1_and_atl0_still_reads() -> None:
    reading = read("clone_v15")
    assert not reading.partial, reading.partial_reasons
    assert not reading.protocol.headers
    assert any("ATH1" in q for q in reading.adapter.quirks)
    assert any("ATL0" in q for q in reading.adapter.quirks)
    assert reading.vin == "1G1ZB5ST0KF123456"
    assert reading.odometer_km.value == 48000.0
    assert [(d.code, d.kind, d.ecu) for d in reading.dtcs] == [("P0128", "stored", None)]


def test_legacy_iso9141_one_pid_per_request() -> None:
    reading = read("legacy_iso9141")
    assert not reading.partial, reading.partial_reasons
    assert reading.protocol.number == "3"
    assert reading.vin == "1HGCM82633A004352"
    assert reading.vin_valid
    assert reading.odometer_km.status is FieldStatus.UNSUPPORTED
    assert reading.dtc_reads["permanent"].status is FieldStatus.UNSUPPORTED
    assert [(d.code, d.ecu) for d in reading.dtcs] == [("P1456", "10")]
    assert reading.minutes_since_clear.status is FieldStatus.UNSUPPORTED
    assert reading.live["engine_rpm"].value == 720.0
    assert reading.requests > 7  # no multi-PID on K-line


def test_noisy_bus_is_retried_into_a_full_reading() -> None:
    reading = read("noisy_bus")
    assert not reading.partial, reading.partial_reasons
    assert any(x.lines == ["CAN ERROR"] for x in reading.raw)
    assert reading.odometer_km.value == 48000.0


@pytest.mark.parametrize("transport", ["pty", "tcp"])
def test_unplugged_mid_read_is_partial_with_reason(transport: str) -> None:
    reading = read("unplugged", transport=transport)
    assert reading.partial
    assert "disconnected" in reading.partial_reasons[0]
    assert reading.vin == "1G1ZB5ST0KF123456"  # what was read before is kept
    assert reading.dtc_reads["permanent"].status is FieldStatus.NOT_READ
    assert reading.has_vehicle_data


def unplugged_after(requests: int) -> Scenario:
    """The walking-skeleton car whose adapter is pulled out after ``requests`` OBD answers."""
    car = load_scenario("malibu_2019")
    adapter = car.adapter.model_copy(
        update={"unplug_after_requests": requests, "unplug_mode": "close"}
    )
    return car.model_copy(update={"name": f"unplugged_after_{requests}", "adapter": adapter})


def test_pids_behind_an_unread_bitmap_are_not_read_not_unsupported() -> None:
    # Unplugged right after the connect's 0100: the 0x20.. bitmaps never came back, so whether
    # the car has 0x21, 0x30, 0xA6... is unknown; "unsupported" would send the inspector to the
    # dashboard for a reason that is not true and hide that the read was cut short.
    with start_simulator(unplugged_after(1), latency_s=0) as sim:
        reading = read_vehicle(sim.port, timeout=20.0, options=FAST)
    assert reading.partial
    for field in (
        reading.odometer_km,
        reading.warmups_since_clear,
        reading.distance_since_clear_km,
        reading.minutes_since_clear,
        reading.distance_with_mil_km,
    ):
        assert field.status is FieldStatus.NOT_READ, field
        assert "bitmap 0x20" in (field.detail or "")


def test_silent_adapter_mid_read_is_partial_not_a_hang() -> None:
    reading = read("unplugged_silent")
    assert reading.partial
    assert "no answer" in reading.partial_reasons[0]
    assert reading.raw[-1].outcome == "timeout"


def test_whole_read_is_bounded_by_the_timeout() -> None:
    slow = ReadOptions(request_timeout=30.0, search_timeout=30.0)
    with start_simulator("unplugged_silent", latency_s=0) as sim:
        reading = read_vehicle(sim.port, timeout=1.5, options=slow)
    assert reading.partial
    assert "time budget" in reading.partial_reasons[0]
    assert reading.duration_s < 1.5 + 1.0  # the budget, plus closing the port


def test_ignition_off_raises_no_vehicle_data_naming_port_and_cause() -> None:
    with (
        start_simulator("ignition_off", latency_s=0) as sim,
        pytest.raises(NoVehicleData) as caught,
    ):
        read_vehicle(sim.port, timeout=10, options=FAST)
    assert sim.port in str(caught.value)
    assert "ignition" in str(caught.value)
    assert "12.3 V" in str(caught.value)
    assert caught.value.port == sim.port
    assert sim.requests == FAST.connect_attempts  # retried with backoff


def test_slow_adapter_within_budget() -> None:
    with start_simulator("slow_adapter") as sim:
        reading = read_vehicle(sim.port, timeout=20)
    assert not reading.partial
    assert reading.vin == "1G1ZB5ST0KF123456"
    search = next(x for x in reading.raw if x.request == "0100")
    assert search.elapsed_s >= 1.5  # the first connect waited out the protocol search


def test_pinned_protocol_used_and_wrong_pin_falls_back_to_search() -> None:
    with start_simulator("malibu_2019", latency_s=0) as sim:
        pinned = read_vehicle(sim.port, protocol="6", options=FAST)
    assert pinned.protocol.pinned
    with start_simulator("malibu_2019", latency_s=0) as sim:
        fallback = read_vehicle(sim.port, protocol="3", options=FAST)
    assert not fallback.protocol.pinned
    assert fallback.protocol.number == "6"
    assert fallback.vin == "1G1ZB5ST0KF123456"


def test_missing_device_names_port_and_what_to_check() -> None:
    port = "/dev/ttyKIOSK-NO-SUCH-ADAPTER"
    with pytest.raises(AdapterNotFound) as caught:
        read_vehicle(port, timeout=5)
    message = str(caught.value)
    assert port in message
    assert "USB" in message
    assert "cable" in message
    assert "dialout" in message  # permissions


def test_missing_tcp_adapter_names_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    url = f"socket://127.0.0.1:{free_port}"
    with pytest.raises(AdapterNotFound, match=url.replace(".", r"\.")):
        read_vehicle(url, timeout=5)


def test_connect_budget_too_short_is_a_timeout_naming_port() -> None:
    with start_simulator("slow_adapter") as sim, pytest.raises(ReadTimeout) as caught:
        read_vehicle(sim.port, timeout=0.5)
    assert sim.port in str(caught.value)
    assert "0.5 s budget" in str(caught.value)


def test_device_that_never_answers_is_not_responding() -> None:
    master, slave = os.openpty()
    try:
        port = os.ttyname(slave)
        with pytest.raises(AdapterNotResponding) as caught:
            read_vehicle(
                port, timeout=5, options=ReadOptions(request_timeout=0.3, connect_attempts=1)
            )
        assert port in str(caught.value)
    finally:
        os.close(master)
        os.close(slave)


def test_python_obd_stock_commands_work_on_our_session() -> None:
    with start_simulator("malibu_2019", latency_s=0) as sim:
        link = ElmLink(sim.port, request_timeout=1.0)
        link.open()
        link.initialise()
        link.connect_vehicle()
        connection = KioskOBD(link)
        try:
            assert connection.status() == obd.OBDStatus.CAR_CONNECTED
            assert connection.protocol_id() == "6"
            rpm = connection.query(obd.commands.RPM, force=True)
            assert rpm.value.magnitude == 760.0
            coolant = connection.query(obd.commands.COOLANT_TEMP, force=True)
            assert coolant.value.magnitude == 88
        finally:
            connection.close()


def test_python_obd_own_elm327_connects_to_the_simulator() -> None:
    # python-obd's own connect sequence (with its fixed sleeps, ~3 s) against the simulator:
    # proves the simulator is faithful enough for stock python-obd.
    with start_simulator("malibu_2019", latency_s=0) as sim:
        connection = obd.OBD(sim.port, fast=False, timeout=1)
        try:
            assert connection.status() == obd.OBDStatus.CAR_CONNECTED
            assert connection.query(obd.commands.RPM).value.magnitude == 760.0
        finally:
            connection.close()
