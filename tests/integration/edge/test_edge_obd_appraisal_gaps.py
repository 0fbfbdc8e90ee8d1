"""What an OBD read could not establish never reaches the appraisal as good news.

Each test drives the real path: the ELM327 simulator on a pseudo-terminal, python-obd in the
loop, the kiosk's OBD reader adapter, the shipped TFLite valuation and the inspection's rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from edge.adapters import ObdVehicleReader, TfliteValuer
from edge.inspection import run_inspection
from edge.obd import FieldStatus, ReadOptions, VehicleReading, read_vehicle, start_simulator
from edge.obd.scenario import EcuSpec, Scenario, load_scenario
from edge.protocol import AppraisalBody, Flag, OdometerSource, ValuationStatus, VinSource, new_id
from firmware_config.schema import ObdConfig

MALIBU = {"model": "Malibu", "trim": "LS Sedan 4D"}
FAST = ReadOptions(request_timeout=1.0, search_timeout=5.0, retry_backoff_s=0.01)


@pytest.fixture(scope="module")
def valuer() -> Iterator[TfliteValuer]:
    yield TfliteValuer()


def car(
    base: str = "malibu_2019", *, adapter: dict[str, Any] | None = None, **vehicle: Any
) -> Scenario:
    scenario = load_scenario(base)
    return scenario.model_copy(
        update={
            "adapter": scenario.adapter.model_copy(update=adapter or {}),
            "vehicle": scenario.vehicle.model_copy(update=vehicle),
        }
    )


def read(scenario: Scenario) -> VehicleReading:
    with start_simulator(scenario, latency_s=0) as sim:
        return read_vehicle(sim.port, timeout=20, options=FAST)


def inspect(scenario: Scenario, valuer: TfliteValuer, hints: dict[str, Any]) -> AppraisalBody:
    with start_simulator(scenario, latency_s=0) as sim:
        config = ObdConfig.model_validate(
            {"transport": {"type": "serial", "port": sim.port}, "timeout_s": 20}
        )
        return run_inspection(
            appraisal_id=new_id(), reader=ObdVehicleReader(config), valuer=valuer, hints=hints
        )


def flag(body: AppraisalBody, code: str) -> Flag:
    found = [f for f in body.flags if f.code == code]
    assert len(found) == 1, body.flags
    return found[0]


# --------------------------------------------------------------------------- several ECUs, 0101


@pytest.mark.parametrize("base", ["malibu_2019", "clone_v15"], ids=["headers", "no_headers"])
def test_monitor_status_of_every_ecu_is_merged(base: str, valuer: TfliteValuer) -> None:
    # The engine is clean; the transmission asks for the MIL, holds a code and has a monitor
    # incomplete. With headers the engine's answer used to be taken alone; without, the last
    # answer won. J1979: MIL on if any ECU says so, counts summed, incomplete if any says so.
    tcm = EcuSpec(
        address="7E9", stored=["U0100"], mil_on=True, monitors={"components": "incomplete"}
    )
    scenario = car(base, stored=[], other_ecus=[tcm])
    reading = read(scenario)
    assert reading.protocol.headers is (base == "malibu_2019")
    assert reading.mil_on.value is True
    assert reading.dtc_count.value == 1
    readiness = reading.readiness.value or {}
    assert readiness["components"] == "incomplete"  # the transmission's
    assert readiness["catalyst"] == "complete"  # the engine's
    assert not reading.partial, reading.partial_reasons
    if reading.protocol.headers:
        assert reading.mil_on.source == "obd:0101@7E8+7E9"
    else:
        assert "no headers" in (reading.mil_on.detail or "")

    body = inspect(scenario, valuer, MALIBU)
    assert body.obd is not None and body.obd.mil_on is True
    assert {d.code for d in body.condition.deductions} >= {"mil_on", "readiness_incomplete"}
    obd_factors = {f.code for f in body.valuation.factors}
    assert {"obd_mil", "obd_readiness"} <= obd_factors


# --------------------------------------------------------------------------- read cut short


def test_read_cut_before_the_fault_codes_is_flagged_and_not_valued_clean(
    valuer: TfliteValuer,
) -> None:
    full = inspect(load_scenario("mil_on"), valuer, MALIBU)
    assert full.valuation.status is ValuationStatus.VALUED
    assert not [f for f in full.flags if f.code == "dtc_read_incomplete"]

    # Pulled after 0100, the bitmaps, the status PIDs and the VIN: no mode 03/07/0A answered.
    cut = inspect(car("mil_on", adapter={"unplug_after_requests": 4}), valuer, MALIBU)
    assert cut.obd is not None and cut.obd.partial
    assert cut.obd.dtcs == []
    assert any(r.startswith("stored DTCs not read") for r in cut.obd.partial_reasons)
    assert cut.valuation.status is ValuationStatus.MANUAL
    assert cut.valuation.value_minor is None
    assert "fault codes not fully read" in (cut.valuation.reason or "")
    evidence = flag(cut, "dtc_read_incomplete").evidence
    assert evidence["kinds_read"] == "none"
    assert evidence["kinds_not_read"] == "stored, pending, permanent"
    assert evidence["value_withheld"] is True


def test_read_cut_after_the_stored_codes_says_which_kinds_were_read(
    valuer: TfliteValuer,
) -> None:
    # Pulled after mode 03 and 07: stored and pending read, permanent (a deduction) not.
    body = inspect(car("mil_on", adapter={"unplug_after_requests": 6}), valuer, MALIBU)
    assert body.obd is not None
    assert {d.kind for d in body.obd.dtcs} == {"stored", "pending"}
    evidence = flag(body, "dtc_read_incomplete").evidence
    assert evidence["kinds_read"] == "stored, pending"
    assert evidence["kinds_not_read"] == "permanent"
    assert body.valuation.status is ValuationStatus.MANUAL


# --------------------------------------------------------------------------- lost frame


SEVEN_CODES = ["U0100", "P0700", "P0715", "P0720", "P0730", "P0740", "P0750"]


@pytest.mark.parametrize(
    ("base", "lost"),
    [
        # 03 with headers: engine FF, CF1; transmission FF, CF1, CF2. Lose its CF1.
        ("mil_on", 3),
        # Without: engine 00A, 0:, 1:; transmission 010, 0:, 1:, 2:. Lose its 1:.
        ("clone_v15", 5),
    ],
    ids=["headers", "no_headers"],
)
def test_a_lost_frame_of_a_dtc_answer_makes_the_read_incomplete(
    base: str, lost: int, valuer: TfliteValuer
) -> None:
    scenario = car(
        base,
        adapter={"lost_lines": {"03": [lost]}},
        stored=["P0301", "P0420", "P0302", "P0303"],
        other_ecus=[EcuSpec(address="7E9", stored=SEVEN_CODES)],
    )
    reading = read(scenario)
    stored = reading.dtc_reads["stored"]
    assert stored.status is FieldStatus.ERROR
    assert "a frame was lost" in (stored.detail or "")
    assert reading.partial
    assert any(
        r.startswith("stored DTCs incomplete") and "frame" in r for r in reading.partial_reasons
    )
    # What did arrive is kept: the engine's four codes.
    assert [d.code for d in reading.dtcs if d.kind == "stored"] == [
        "P0301",
        "P0420",
        "P0302",
        "P0303",
    ]

    body = inspect(scenario, valuer, MALIBU)
    assert body.valuation.status is ValuationStatus.MANUAL
    assert flag(body, "dtc_read_incomplete").evidence["kinds_not_read"] == "stored"


def test_whole_multi_frame_dtc_answers_still_read_ok() -> None:
    scenario = car(
        "mil_on",
        stored=["P0301", "P0420", "P0302", "P0303"],
        other_ecus=[EcuSpec(address="7E9", stored=SEVEN_CODES)],
    )
    reading = read(scenario)
    assert reading.dtc_reads["stored"].status is FieldStatus.OK
    assert reading.dtc_reads["stored"].value == 11
    assert not reading.partial, reading.partial_reasons


# --------------------------------------------------------------------------- odometer


def test_an_implausible_odometer_is_unknown_flagged_and_the_appraisal_still_made(
    valuer: TfliteValuer,
) -> None:
    scenario = car(odometer_km=429_496_729.5)  # PID A6 answers FF FF FF FF
    reading = read(scenario)
    assert reading.odometer_km.status is FieldStatus.ERROR
    assert reading.odometer_km.value is None
    assert "FF FF FF FF" in (reading.odometer_km.detail or "")

    body = inspect(scenario, valuer, MALIBU)
    assert body.vehicle.odometer_km is None
    assert body.vehicle.odometer_source is OdometerSource.UNKNOWN
    evidence = flag(body, "odometer_implausible").evidence
    assert "FF FF FF FF" in str(evidence["detail"])
    assert body.valuation.status is ValuationStatus.MANUAL  # the value needs the mileage
    assert "odometer" in (body.valuation.reason or "")


# --------------------------------------------------------------------------- typed VIN


def test_a_valid_typed_vin_is_checked_and_decoded(valuer: TfliteValuer) -> None:
    body = inspect(car(vin=None), valuer, {**MALIBU, "vin": " 1g1zb5st0 kf123456 "})
    vehicle = body.vehicle
    assert vehicle.vin == "1G1ZB5ST0KF123456"
    assert vehicle.vin_source is VinSource.TYPED
    assert vehicle.vin_valid and vehicle.vin_problems == []
    assert (vehicle.make, vehicle.model_year) == ("Chevrolet", 2019)
    assert not [f for f in body.flags if f.code.startswith("vin_")]
    assert body.valuation.status is ValuationStatus.VALUED


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("HÉLLO WÖRLD", "characters a VIN never uses"),
        ("1G1ZB5ST1KF123456", "check digit"),
        ("1G1ZB5ST0KF12345", "length is 16"),
    ],
)
def test_an_invalid_typed_vin_is_flagged_with_its_problems(
    typed: str, problem: str, valuer: TfliteValuer
) -> None:
    body = inspect(car(vin=None), valuer, {**MALIBU, "vin": typed})
    vehicle = body.vehicle
    assert vehicle.vin_source is VinSource.TYPED
    assert not vehicle.vin_valid
    assert any(problem in p for p in vehicle.vin_problems), vehicle.vin_problems
    assert vehicle.model_year is None  # nothing decoded from a VIN that fails its checks
    evidence = flag(body, "vin_invalid").evidence
    assert problem in str(evidence["problems"])
    assert evidence["vin_source"] == "typed"
