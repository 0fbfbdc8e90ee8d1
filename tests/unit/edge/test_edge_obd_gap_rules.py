"""The pure rules behind "not read is not good news": decoders from spec lines, the partial-reason
vocabulary, and the inspection's rules for typed VINs, odometers and unread fault codes."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

from hypothesis import given
from hypothesis import strategies as st

from edge.inspection import (
    flags_for,
    merge_vehicle,
    run_inspection,
    screen_vehicle,
    value_blocker,
    withhold_value,
)
from edge.obd.decoders import (
    MAX_PLAUSIBLE_ODOMETER_KM,
    FrameKind,
    Framing,
    Ignition,
    MonitorState,
    MonitorStatus,
    decode_dtcs,
    decode_mode01,
    decode_mode01_answers,
    decode_monitor_status,
    merge_monitor_statuses,
    parse_response,
)
from edge.obd.encoders import encode_monitor_status
from edge.obd.reading import dtc_gaps, dtc_reason, odometer_problem, odometer_reason
from edge.protocol import (
    Condition,
    Flag,
    ObdSummary,
    OdometerSource,
    Valuation,
    ValuationStatus,
    Vehicle,
    VinSource,
)

CAN_NO_HEADERS = Framing(FrameKind.CAN11, headers=False)
CAN_HEADERS = Framing(FrameKind.CAN11, headers=True)
# The engine's multi-PID status answer and a transmission's 0101, as a headerless clone prints
# them (the reviewer's capture): MIL on with one code; MIL off, no codes, components supported.
ENGINE = [
    "016",
    "0: 41 01 81 07 E5 00",
    "1: 21 00 00 30 FF 31 2E",
    "2: E0 4E 23 28 A6 00 07",
    "3: 53 00 00 00 00 00 00",
]
TCM = ["41 01 00 04 00 00"]


def merged_status(lines: list[str], framing: Framing = CAN_NO_HEADERS) -> MonitorStatus:
    answers, problems = decode_mode01_answers(parse_response(lines, framing))
    assert not problems
    return merge_monitor_statuses([decode_monitor_status(a.data) for a in answers if a.pid == 0x01])


# --------------------------------------------------------------------------- mode 01, several ECUs


def test_headerless_answers_of_two_ecus_are_all_kept_and_merged_in_any_order() -> None:
    answers, _ = decode_mode01_answers(parse_response(ENGINE + TCM, CAN_NO_HEADERS))
    assert [a.data.hex() for a in answers if a.pid == 0x01] == ["8107e500", "00040000"]
    # The per-ECU view keeps one value per ECU: without headers that is the last answer.
    values, _ = decode_mode01(parse_response(ENGINE + TCM, CAN_NO_HEADERS))
    assert values[None][0x01].hex() == "00040000"

    one_way = merged_status(ENGINE + TCM)
    other_way = merged_status(TCM + ENGINE)
    assert one_way == other_way
    status = decode_monitor_status(bytes.fromhex("8107E500"))
    assert one_way == status  # the TCM's answer adds nothing: components complete in both


def test_merge_follows_j1979() -> None:
    engine = decode_monitor_status(bytes.fromhex("02076500"))  # MIL off, 2 codes
    tcm = decode_monitor_status(bytes.fromhex("81440000"))  # MIL on, 1 code, components incomplete
    merged = merge_monitor_statuses([engine, tcm])
    assert merged.mil_on is True
    assert merged.dtc_count == 3
    assert merged.monitors["components"] is MonitorState.INCOMPLETE
    assert merged.monitors["catalyst"] is MonitorState.COMPLETE
    assert merged.monitors["heated_catalyst"] is MonitorState.UNSUPPORTED


def test_merge_keeps_a_diesel_engines_monitor_names() -> None:
    diesel = decode_monitor_status(bytes.fromhex("00 0F 41 00".replace(" ", "")))
    tcm = decode_monitor_status(bytes.fromhex("00040000"))  # no compression bit
    merged = merge_monitor_statuses([tcm, diesel])
    assert merged.ignition is Ignition.COMPRESSION
    assert "pm_filter" in merged.monitors and "catalyst" not in merged.monitors
    assert merged.monitors["nmhc_catalyst"] is MonitorState.COMPLETE


_STATE = st.sampled_from(list(MonitorState))
_MONITORS = st.fixed_dictionaries(
    {
        name: _STATE
        for name in ("misfire", "fuel_system", "components", "catalyst", "evaporative_system")
    }
)
_STATUS: st.SearchStrategy[MonitorStatus] = st.builds(
    lambda mil, count, monitors: decode_monitor_status(
        encode_monitor_status(
            mil_on=mil, dtc_count=count, ignition=Ignition.SPARK, monitors=monitors
        )
    ),
    st.booleans(),
    st.integers(0, 20),
    _MONITORS,
)


@given(st.lists(_STATUS, min_size=1, max_size=4))
def test_merge_is_order_free_and_never_hides_a_fault(statuses: list[MonitorStatus]) -> None:
    merged = merge_monitor_statuses(statuses)
    for perm in itertools.islice(itertools.permutations(statuses), 6):
        assert merge_monitor_statuses(list(perm)) == merged
    assert merged.mil_on == any(s.mil_on for s in statuses)
    assert merged.dtc_count == sum(s.dtc_count for s in statuses)
    for status in statuses:
        for name, state in status.monitors.items():
            if state is MonitorState.INCOMPLETE:
                assert merged.monitors[name] is MonitorState.INCOMPLETE
            if state is not MonitorState.UNSUPPORTED:
                assert merged.monitors[name] is not MonitorState.UNSUPPORTED


# --------------------------------------------------------------------------- lost frames


def test_a_lost_consecutive_frame_with_headers_is_a_problem_not_a_silent_drop() -> None:
    lines = [
        "7E8 04 43 01 03 01 00 00 00",
        "7E9 10 0A 43 04 01 01 01 02",
        "7E9 22 01 03 01 04 00 00",
    ]
    parsed = parse_response(lines, CAN_HEADERS)
    entries, _ = decode_dtcs(parsed, "stored", CAN_HEADERS)
    assert [e.code for e in entries] == ["P0301"]
    assert any("a frame was lost" in p for p in parsed.problems)


def test_a_skipped_frame_number_without_headers_is_caught_even_when_padding_hides_it() -> None:
    # 13 bytes announced; "1:" lost, "2:" (7 bytes) fills the count: only the number shows it.
    lines = ["00D", "0: 43 05 01 01 01 02", "2: 01 03 01 04 01 05 00"]
    parsed = parse_response(lines, CAN_NO_HEADERS)
    assert parsed.for_service(0x43) == []
    assert parsed.problems == ("frame 2 arrived where 1 was due (a frame was lost)",)
    whole = parse_response(
        ["00D", "0: 43 05 01 01 01 02", "1: 01 03 01 04 01 05 00"], CAN_NO_HEADERS
    )
    assert not whole.problems and len(whole.for_service(0x43)) == 1


# --------------------------------------------------------------------------- partial reasons


def test_partial_reason_vocabulary_round_trips() -> None:
    reasons = [
        "/dev/pts/3: the adapter disconnected during '03'",
        dtc_reason("stored", "not read", "the read stopped before mode 03"),
        dtc_reason("permanent", "incomplete", "ECU 7E9: 2 codes announced, 1 received"),
        dtc_reason("stored", "unreadable", "later reasons of a kind do not replace the first"),
        odometer_reason("PID 0xA6 reads 429,496,729.5 km (FF FF FF FF)"),
        "PID 0x42 unreadable: CAN ERROR",
    ]
    gaps = dtc_gaps(reasons)
    assert list(gaps) == ["stored", "permanent"]
    assert gaps["stored"].startswith("stored DTCs not read")
    assert odometer_problem(reasons) == "PID 0xA6 reads 429,496,729.5 km (FF FF FF FF)"
    assert dtc_gaps(["mode 06 not supported"]) == {}
    assert odometer_problem([]) is None


def test_the_odometer_bound_is_the_valuations() -> None:
    from edge.inference.valuator import MAX_ODOMETER_KM

    assert MAX_PLAUSIBLE_ODOMETER_KM == MAX_ODOMETER_KM


# --------------------------------------------------------------------------- typed VIN


NO_VIN = Vehicle(odometer_km=48_000.0, odometer_source=OdometerSource.OBD)


def test_a_valid_typed_vin_is_decoded_before_the_dealers_make() -> None:
    merged = merge_vehicle(
        NO_VIN,
        {"vin": "1g1zb5st0kf123456", "make": "Chevy", "model": "Malibu"},
        today=date(2024, 6, 1),
    )
    assert merged.vin == "1G1ZB5ST0KF123456"
    assert merged.vin_source is VinSource.TYPED
    assert merged.vin_valid and merged.vin_problems == []
    assert (merged.make, merged.model_year, merged.model) == ("Chevrolet", 2019, "Malibu")
    assert flags_for(merged, None, {"vin": "1g1zb5st0kf123456"}) == []


def test_an_invalid_typed_vin_keeps_the_dealers_facts_and_lists_its_problems() -> None:
    merged = merge_vehicle(NO_VIN, {"vin": "HÉLLO WÖRLD", "make": "Chevrolet"})
    assert merged.vin == "HÉLLOWÖRLD"
    assert not merged.vin_valid
    assert merged.make == "Chevrolet" and merged.model_year is None
    assert any("'É'" in p for p in merged.vin_problems)
    (flag,) = flags_for(merged, None, {})
    assert flag.code == "vin_invalid" and "'É'" in str(flag.evidence["problems"])
    assert "typed" in flag.message


def test_a_pasted_paragraph_is_cut_in_the_report() -> None:
    merged = merge_vehicle(NO_VIN, {"vin": "X" * 10_000})
    assert merged.vin is not None and len(merged.vin) == 64
    assert not merged.vin_valid


def test_an_obd_vin_is_kept_and_a_typed_one_differing_only_in_spacing_is_no_mismatch() -> None:
    read = Vehicle(vin="1G1ZB5ST0KF123456", vin_source=VinSource.OBD, vin_valid=True)
    hints = {"vin": " 1g1zb5st0kf123456\n"}
    merged = merge_vehicle(read, hints)
    assert merged.vin_source is VinSource.OBD
    assert flags_for(merged, None, hints) == []
    other = {"vin": "1G1ZB5ST0KF12345"}
    (flag,) = flags_for(merged, None, other)
    assert flag.code == "vin_mismatch"
    assert "length is 16" in str(flag.evidence["typed_vin_problems"])


# --------------------------------------------------------------------------- odometer


def test_an_odometer_no_car_has_is_set_aside_with_a_flag() -> None:
    vehicle = NO_VIN.model_copy(update={"odometer_km": 429_496_729.5})
    screened, flags = screen_vehicle(vehicle, None)
    assert screened.odometer_km is None
    assert screened.odometer_source is OdometerSource.UNKNOWN
    (flag,) = flags
    assert flag.code == "odometer_implausible"
    assert flag.evidence["odometer_km"] == 429_496_729.5

    obd = ObdSummary(partial=True, partial_reasons=[odometer_reason("PID 0xA6 reads FF FF FF FF")])
    kept, flags = screen_vehicle(NO_VIN.model_copy(update={"odometer_km": None}), obd)
    assert kept.odometer_km is None
    assert [f.evidence["detail"] for f in flags] == ["PID 0xA6 reads FF FF FF FF"]
    assert screen_vehicle(NO_VIN, ObdSummary()) == (NO_VIN, [])


# --------------------------------------------------------------------------- unread fault codes


def test_unread_stored_or_permanent_codes_block_a_value_pending_do_not() -> None:
    pending_only = ObdSummary(
        partial=True, partial_reasons=[dtc_reason("pending", "unreadable", "CAN ERROR")]
    )
    assert value_blocker(pending_only) is None
    (flag,) = [f for f in flags_for(NO_VIN, pending_only, {}) if f.code == "dtc_read_incomplete"]
    assert flag.evidence["kinds_read"] == "stored, permanent"
    assert flag.evidence["value_withheld"] is False

    cut = ObdSummary(
        partial=True,
        partial_reasons=[dtc_reason("permanent", "not read", "the read stopped before mode 0A")],
    )
    blocker = value_blocker(cut)
    assert blocker is not None and "permanent DTCs not read" in blocker
    assert value_blocker(ObdSummary()) is None and value_blocker(None) is None


def test_a_withheld_value_keeps_its_versions_and_any_earlier_reason() -> None:
    at = datetime(2024, 6, 1, tzinfo=UTC)
    valued = Valuation(
        status=ValuationStatus.VALUED, model_version="v1", value_minor=1_200_000, valued_at=at
    )
    withheld = withhold_value(valued, "fault codes not fully read")
    assert withheld.status is ValuationStatus.MANUAL
    assert withheld.value_minor is None and withheld.model_version == "v1"
    assert withheld.reason == "manual appraisal required: fault codes not fully read"
    manual = Valuation(
        status=ValuationStatus.MANUAL, reason="manual appraisal required: make not known"
    )
    assert withhold_value(manual, "codes").reason == (
        "manual appraisal required: codes; make not known"
    )


class _Reader:
    def __init__(self, vehicle: Vehicle, obd: ObdSummary) -> None:
        self.result = (vehicle, obd)

    def read(self) -> tuple[Vehicle, ObdSummary]:
        return self.result


class _Valuer:
    def __init__(self) -> None:
        self.seen: list[Vehicle] = []

    @property
    def versions(self) -> dict[str, str]:
        return {"valuation": "v1"}

    def value(
        self, vehicle: Vehicle, obd: ObdSummary | None, condition: Condition, *, valued_at: datetime
    ) -> tuple[Valuation, list[Flag]]:
        self.seen.append(vehicle)
        flag = Flag(code="valuation_model_year_approximated", severity="info", message="x")
        return Valuation(status=ValuationStatus.VALUED, value_minor=1, model_version="v1"), [flag]


def test_the_inspection_applies_the_rules() -> None:
    vehicle = Vehicle(
        vin="1G1ZB5ST0KF123456",
        vin_source=VinSource.OBD,
        vin_valid=True,
        odometer_km=5e8,
        odometer_source=OdometerSource.OBD,
    )
    obd = ObdSummary(
        partial=True,
        partial_reasons=[dtc_reason("stored", "not read", "the read stopped before mode 03")],
    )
    valuer = _Valuer()
    body = run_inspection(
        appraisal_id="00000000-0000-4000-8000-000000000001",
        reader=_Reader(vehicle, obd),
        valuer=valuer,
        hints={},
    )
    assert valuer.seen[0].odometer_km is None  # the valuer never sees an impossible mileage
    assert body.vehicle.odometer_km is None
    assert body.valuation.status is ValuationStatus.MANUAL
    assert [f.code for f in body.flags] == ["odometer_implausible", "dtc_read_incomplete"]
