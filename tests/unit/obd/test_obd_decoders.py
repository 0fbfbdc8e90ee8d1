"""Decoders from spec byte strings (SAE J1979 / ELM327 datasheet examples) and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.obd.decoders import (
    FrameKind,
    Framing,
    Ignition,
    MonitorState,
    decode_dtc,
    decode_dtcs,
    decode_live_value,
    decode_mode01,
    decode_monitor_status,
    decode_odometer_km,
    decode_supported_pids,
    decode_u16_km,
    decode_u16_minutes,
    decode_vin,
    decode_warmups,
    framing_for_protocol,
    parse_response,
)
from edge.obd.encoders import (
    encode_dtc,
    encode_dtc_payloads,
    encode_live_value,
    encode_monitor_status,
    encode_response_lines,
    encode_supported_bitmap,
    encode_vin_payload,
)

CAN_H = Framing(FrameKind.CAN11, headers=True)
CAN = Framing(FrameKind.CAN11, headers=False)
CAN29_H = Framing(FrameKind.CAN29, headers=True)
K_LINE_H = Framing(FrameKind.LEGACY, headers=True, sum_checksum=True)
K_LINE = Framing(FrameKind.LEGACY, headers=False, sum_checksum=True)
ALL_FRAMINGS = [CAN_H, CAN, CAN29_H, Framing(FrameKind.CAN29, headers=False), K_LINE_H, K_LINE]
ECU_FOR = {FrameKind.CAN11: "7E8", FrameKind.CAN29: "18DAF110", FrameKind.LEGACY: "10"}
SECOND_ECU = {FrameKind.CAN11: "7E9", FrameKind.CAN29: "18DAF118", FrameKind.LEGACY: "18"}

# --------------------------------------------------------------------------- framing


def test_framing_for_protocol_numbers() -> None:
    assert framing_for_protocol("6", headers=True) == CAN_H
    assert framing_for_protocol("3", headers=True) == K_LINE_H
    assert framing_for_protocol("7", headers=False) == Framing(FrameKind.CAN29, False)
    assert framing_for_protocol("A", headers=True) is None  # J1939: not read


def test_status_lines_are_not_data() -> None:
    parsed = parse_response(["SEARCHING...", "UNABLE TO CONNECT"], CAN_H)
    assert parsed.messages == ()
    assert parsed.unable_to_connect
    assert parsed.errors == ("UNABLE TO CONNECT",)
    assert parse_response(["NO DATA"], CAN_H).no_data
    assert parse_response(["BUS INIT: ...ERROR"], K_LINE_H).unable_to_connect


def test_searching_then_data_is_data() -> None:
    parsed = parse_response(["SEARCHING...", "7E8 06 41 00 BE 1F A8 13"], CAN_H)
    assert not parsed.errors
    assert parsed.messages[0].data == bytes.fromhex("4100BE1FA813")
    assert parsed.messages[0].ecu == "7E8"


def test_spaces_off_linefeeds_nul_and_prompt_are_tolerated() -> None:
    parsed = parse_response(["\x007E8064100BE1FA813\r\n", ">"], CAN_H)
    assert parsed.messages[0].data == bytes.fromhex("4100BE1FA813")


def test_garbage_is_kept_apart() -> None:
    parsed = parse_response(["\ufffd#@!", "7E8 06 41 00 BE 1F A8 13", "7E8 0"], CAN_H)
    assert len(parsed.messages) == 1
    assert len(parsed.garbage) == 2


def test_negative_response_is_status_not_data() -> None:
    parsed = parse_response(["7E8 03 7F 01 12"], CAN_H)
    assert parsed.messages == ()
    assert parsed.status == ("NEGATIVE RESPONSE 7F 01 12",)


def test_lost_consecutive_frame_is_reported() -> None:
    lines = ["7E8 10 14 49 02 01 31 44 34", "7E8 22 42 31 32 33 34 35 36"]
    parsed = parse_response(lines, CAN_H)
    assert parsed.messages == ()
    assert any("lost" in p for p in parsed.problems)


def test_incomplete_multi_frame_is_reported() -> None:
    parsed = parse_response(["7E8 10 14 49 02 01 31 44 34"], CAN_H)
    assert parsed.messages == ()
    assert any("incomplete" in p for p in parsed.problems)


def test_legacy_bad_checksum_is_garbage() -> None:
    parsed = parse_response(["48 6B 10 41 00 BE 1F A8 13 9D"], K_LINE_H)
    assert parsed.messages == ()
    assert parsed.garbage


# --------------------------------------------------------------------------- mode 01


def test_supported_pids_wikipedia_example() -> None:
    values, _ = decode_mode01(parse_response(["7E8 06 41 00 BE 1F A8 13"], CAN_H))
    supported = decode_supported_pids(0x00, values["7E8"][0x00])
    assert supported == {
        0x01,
        0x03,
        0x04,
        0x05,
        0x06,
        0x07,
        0x0C,
        0x0D,
        0x0E,
        0x0F,
        0x10,
        0x11,
        0x13,
        0x15,
        0x1C,
        0x1F,
        0x20,
    }


def test_supported_pids_legacy_with_checksum() -> None:
    values, _ = decode_mode01(parse_response(["48 6B 10 41 00 BE 1F A8 13 9C"], K_LINE_H))
    assert 0x20 in decode_supported_pids(0x00, values["10"][0x00])


def test_supported_pids_from_several_ecus() -> None:
    lines = ["7E8 06 41 00 BE 3F A8 13", "7E9 06 41 00 98 18 80 01"]
    values, _ = decode_mode01(parse_response(lines, CAN_H))
    assert set(values) == {"7E8", "7E9"}
    assert decode_supported_pids(0, values["7E9"][0]) == {0x01, 0x04, 0x05, 0x0C, 0x0D, 0x11, 0x20}


def test_multi_pid_response_multi_frame() -> None:
    lines = [
        "7E8 10 0F 41 0C 0B E0 05 80",
        "7E8 21 04 36 06 81 07 7E 42",
        "7E8 22 37 78 00 00 00 00 00",
    ]
    values, problems = decode_mode01(parse_response(lines, CAN_H))
    assert not problems
    pids = values["7E8"]
    assert decode_live_value(0x0C, pids[0x0C]) == 760.0
    assert decode_live_value(0x05, pids[0x05]) == 88.0
    assert decode_live_value(0x04, pids[0x04]) == 21.18
    assert decode_live_value(0x06, pids[0x06]) == 0.78
    assert decode_live_value(0x07, pids[0x07]) == -1.56
    assert decode_live_value(0x42, pids[0x42]) == 14.2


def test_multi_pid_headerless_multi_frame() -> None:
    lines = ["00F", "0: 41 0C 0B E0 05 80", "1: 04 36 06 81 07 7E 42", "2: 37 78 00 00 00 00 00"]
    values, _ = decode_mode01(parse_response(lines, CAN))
    assert set(values[None]) == {0x0C, 0x05, 0x04, 0x06, 0x07, 0x42}


def test_multi_pid_walk_stops_at_unknown_pid() -> None:
    values, problems = decode_mode01(parse_response(["41 0D 32 E9 01 02"], CAN))
    assert values[None] == {0x0D: b"\x32"}
    assert "0xE9" in problems[0]


def test_monitor_status_spark() -> None:
    # MIL on, 3 codes; continuous monitors supported and complete; catalyst, evap, O2, O2
    # heater supported; evap incomplete.
    status = decode_monitor_status(bytes.fromhex("83076504"))
    assert status.mil_on
    assert status.dtc_count == 3
    assert status.ignition is Ignition.SPARK
    assert status.monitors["misfire"] is MonitorState.COMPLETE
    assert status.monitors["catalyst"] is MonitorState.COMPLETE
    assert status.monitors["evaporative_system"] is MonitorState.INCOMPLETE
    assert status.monitors["oxygen_sensor_heater"] is MonitorState.COMPLETE
    assert status.monitors["egr_vvt_system"] is MonitorState.UNSUPPORTED
    assert status.incomplete == ["evaporative_system"]


def test_monitor_status_compression() -> None:
    # Diesel: B bit 3 set; fuel system incomplete (bit 5); NMHC, PM filter, EGR supported.
    status = decode_monitor_status(bytes.fromhex("002FC1C0"))
    assert not status.mil_on
    assert status.ignition is Ignition.COMPRESSION
    assert status.monitors["fuel_system"] is MonitorState.INCOMPLETE
    assert status.monitors["misfire"] is MonitorState.COMPLETE
    assert status.monitors["nmhc_catalyst"] is MonitorState.COMPLETE
    assert status.monitors["pm_filter"] is MonitorState.INCOMPLETE
    assert status.monitors["egr_vvt_system"] is MonitorState.INCOMPLETE
    assert "catalyst" not in status.monitors


def test_since_clear_and_mil_distance_pids() -> None:
    values, _ = decode_mode01(
        parse_response(
            [
                "7E8 10 11 41 21 00 9A 30 00 31",
                "7E8 21 00 02 4E 00 04 A6 00",
                "7E8 22 07 53 00 00 00 00 00",
            ],
            CAN_H,
        )
    )
    pids = values["7E8"]
    assert decode_u16_km(pids[0x21]) == 154
    assert decode_warmups(pids[0x30]) == 0
    assert decode_u16_km(pids[0x31]) == 2
    assert decode_u16_minutes(pids[0x4E]) == 4
    assert decode_odometer_km(pids[0xA6]) == 48000.0


def test_odometer_tenths_of_km() -> None:
    assert decode_odometer_km(bytes.fromhex("000957FD")) == 61234.9
    with pytest.raises(ValueError, match="4 data bytes"):
        decode_odometer_km(b"\x00\x01")


# --------------------------------------------------------------------------- VIN


def test_vin_can_with_headers_elm_datasheet() -> None:
    lines = [
        "7E8 10 14 49 02 01 31 44 34",
        "7E8 21 47 50 30 30 52 35 35",
        "7E8 22 42 31 32 33 34 35 36",
    ]
    read = decode_vin(parse_response(lines, CAN_H), CAN_H)
    assert read.vin == "1D4GP00R55B123456"
    assert read.ecu == "7E8"


def test_vin_can_headerless() -> None:
    lines = ["014", "0: 49 02 01 31 44 34", "1: 47 50 30 30 52 35 35", "2: 42 31 32 33 34 35 36"]
    assert decode_vin(parse_response(lines, CAN), CAN).vin == "1D4GP00R55B123456"


def test_vin_legacy_with_headers() -> None:
    lines = [
        "48 6B 10 49 02 01 00 00 00 31 40",
        "48 6B 10 49 02 02 44 34 47 50 1F",
        "48 6B 10 49 02 03 30 30 52 35 F8",
        "48 6B 10 49 02 04 35 42 31 32 EC",
        "48 6B 10 49 02 05 33 34 35 36 E5",
    ]
    assert decode_vin(parse_response(lines, K_LINE_H), K_LINE_H).vin == "1D4GP00R55B123456"
    # Frames out of order still assemble by their sequence byte.
    shuffled = [lines[i] for i in (3, 0, 4, 2, 1)]
    assert decode_vin(parse_response(shuffled, K_LINE_H), K_LINE_H).vin == "1D4GP00R55B123456"


def test_vin_legacy_headerless() -> None:
    lines = [
        "49 02 01 00 00 00 31",
        "49 02 02 44 34 47 50",
        "49 02 03 30 30 52 35",
        "49 02 04 35 42 31 32",
        "49 02 05 33 34 35 36",
    ]
    assert decode_vin(parse_response(lines, K_LINE), K_LINE).vin == "1D4GP00R55B123456"


def test_vin_keeps_leading_one_and_trailing_zero() -> None:
    # python-obd 0.7.3 would return "G1ZB5ST7KF10000" (stripping 1 and 0 at both ends).
    payload = encode_vin_payload("1G1ZB5ST7KF100000", CAN_H)[0]
    lines = encode_response_lines([("7E8", payload)], CAN_H)
    assert decode_vin(parse_response(lines, CAN_H), CAN_H).vin == "1G1ZB5ST7KF100000"


def test_vin_from_two_ecus_that_disagree_is_flagged() -> None:
    payloads = [
        ("7E8", encode_vin_payload("1G1ZB5ST0KF123456", CAN_H)[0]),
        ("7E9", encode_vin_payload("1G1ZB5ST7KF100000", CAN_H)[0]),
    ]
    read = decode_vin(parse_response(encode_response_lines(payloads, CAN_H), CAN_H), CAN_H)
    assert read.vin == "1G1ZB5ST0KF123456"
    assert "different VINs" in read.problems[0]


def test_vin_no_data() -> None:
    read = decode_vin(parse_response(["NO DATA"], CAN_H), CAN_H)
    assert read.vin is None
    assert read.problems == ()


# --------------------------------------------------------------------------- DTCs


@pytest.mark.parametrize(
    ("pair", "code"),
    [
        ("0133", "P0133"),
        ("4123", "C0123"),
        ("8123", "B0123"),
        ("C123", "U0123"),
        ("D123", "U1123"),
        ("1456", "P1456"),
        ("3FFF", "P3FFF"),
    ],
)
def test_decode_dtc_letters(pair: str, code: str) -> None:
    assert decode_dtc(bytes.fromhex(pair)) == code


def test_dtcs_can_single_frame_two_codes() -> None:
    entries, problems = decode_dtcs(
        parse_response(["7E8 06 43 02 01 43 01 96"], CAN_H), "stored", CAN_H
    )
    assert [e.code for e in entries] == ["P0143", "P0196"]
    assert not problems


def test_dtcs_from_two_ecus() -> None:
    lines = ["7E8 04 43 01 03 01", "7E9 04 43 01 C1 00"]
    entries, _ = decode_dtcs(parse_response(lines, CAN_H), "stored", CAN_H)
    assert [(e.code, e.ecu) for e in entries] == [("P0301", "7E8"), ("U0100", "7E9")]


def test_dtcs_can_multi_frame() -> None:
    lines = ["7E8 10 0A 43 04 03 01 04 20", "7E8 21 03 02 03 03 00 00 00"]
    entries, _ = decode_dtcs(parse_response(lines, CAN_H), "stored", CAN_H)
    assert [e.code for e in entries] == ["P0301", "P0420", "P0302", "P0303"]


def test_dtcs_can_headerless_multi_frame() -> None:
    lines = ["00A", "0: 43 04 03 01 04 20", "1: 03 02 03 03 00 00 00"]
    entries, _ = decode_dtcs(parse_response(lines, CAN), "stored", CAN)
    assert [e.code for e in entries] == ["P0301", "P0420", "P0302", "P0303"]


def test_dtcs_can_count_more_than_received() -> None:
    entries, problems = decode_dtcs(parse_response(["7E8 04 43 02 03 01"], CAN_H), "stored", CAN_H)
    assert [e.code for e in entries] == ["P0301"]
    assert "2 codes announced" in problems[0]


def test_dtcs_none_on_can() -> None:
    entries, _ = decode_dtcs(
        parse_response(["7E8 02 43 00 00 00 00 00 00"], CAN_H), "stored", CAN_H
    )
    assert entries == []


def test_dtcs_legacy_frames_and_padding() -> None:
    lines = [
        "48 6B 10 43 01 00 02 00 03 00 0C",
        "48 6B 10 43 01 04 00 00 00 00 0B",
        "48 6B 18 43 C1 00 00 00 00 00 CF",
    ]
    entries, _ = decode_dtcs(parse_response(lines, K_LINE_H), "stored", K_LINE_H)
    assert [(e.code, e.ecu) for e in entries] == [
        ("P0100", "10"),
        ("P0200", "10"),
        ("P0300", "10"),
        ("P0104", "10"),
        ("U0100", "18"),
    ]


@pytest.mark.parametrize(("kind", "sid"), [("pending", "47"), ("permanent", "4A")])
def test_pending_and_permanent_services(kind: str, sid: str) -> None:
    parsed = parse_response([f"7E8 04 {sid} 01 04 20"], CAN_H)
    entries, _ = decode_dtcs(parsed, kind, CAN_H)  # type: ignore[arg-type]
    assert [(e.code, e.kind) for e in entries] == [("P0420", kind)]
    # A stored-code read must not pick up another service's answer.
    assert decode_dtcs(parsed, "stored", CAN_H)[0] == []


# --------------------------------------------------------------------------- properties

dtc_codes = st.builds(
    lambda letter, digit, rest: f"{letter}{digit}{rest:03X}",
    st.sampled_from("PCBU"),
    st.integers(0, 3),
    st.integers(0, 0xFFF),
).filter(lambda code: code != "P0000")
vin_text = st.text(alphabet="0123456789ABCDEFGHJKLMNPRSTUVWXYZ", min_size=17, max_size=17)
framings = st.sampled_from(ALL_FRAMINGS)


@given(st.integers(0, 0xFFFF))
def test_property_dtc_encode_decode_inverse(value: int) -> None:
    pair = value.to_bytes(2, "big")
    assert encode_dtc(decode_dtc(pair)) == pair


@given(vin=vin_text, framing=framings, spaces=st.booleans())
def test_property_vin_round_trip(vin: str, framing: Framing, spaces: bool) -> None:
    ecu = ECU_FOR[framing.kind]
    payloads = [(ecu, p) for p in encode_vin_payload(vin, framing)]
    lines = encode_response_lines(payloads, framing, spaces=spaces)
    assert decode_vin(parse_response(lines, framing), framing).vin == vin


@given(
    first=st.lists(dtc_codes, max_size=12, unique=True),
    second=st.lists(dtc_codes, max_size=5, unique=True),
    framing=framings.filter(lambda f: f.headers),
    spaces=st.booleans(),
)
def test_property_dtcs_round_trip_two_ecus(
    first: list[str], second: list[str], framing: Framing, spaces: bool
) -> None:
    payloads = [(ECU_FOR[framing.kind], p) for p in encode_dtc_payloads(0x43, first, framing)]
    payloads += [(SECOND_ECU[framing.kind], p) for p in encode_dtc_payloads(0x43, second, framing)]
    lines = encode_response_lines(payloads, framing, spaces=spaces)
    entries, problems = decode_dtcs(parse_response(lines, framing), "stored", framing)
    assert not problems
    assert [e.code for e in entries if e.ecu == ECU_FOR[framing.kind]] == first
    assert [e.code for e in entries if e.ecu == SECOND_ECU[framing.kind]] == second


@given(codes=st.lists(dtc_codes, max_size=12, unique=True), framing=framings)
def test_property_dtcs_round_trip_one_ecu(codes: list[str], framing: Framing) -> None:
    payloads = [(ECU_FOR[framing.kind], p) for p in encode_dtc_payloads(0x47, codes, framing)]
    lines = encode_response_lines(payloads, framing)
    entries, _ = decode_dtcs(parse_response(lines, framing), "pending", framing)
    assert [e.code for e in entries] == codes


@given(base=st.sampled_from([0x00, 0x20, 0x40, 0x60, 0x80, 0xA0]), data=st.data())
def test_property_supported_bitmap_round_trip(base: int, data: st.DataObject) -> None:
    pids = data.draw(st.sets(st.integers(base + 1, base + 32)))
    assert decode_supported_pids(base, encode_supported_bitmap(base, pids)) == pids


monitor_names_spark = [
    "misfire",
    "fuel_system",
    "components",
    "catalyst",
    "heated_catalyst",
    "evaporative_system",
    "secondary_air_system",
    "ac_refrigerant",
    "oxygen_sensor",
    "oxygen_sensor_heater",
    "egr_vvt_system",
]


@given(
    mil=st.booleans(),
    count=st.integers(0, 127),
    states=st.lists(st.sampled_from(list(MonitorState)), min_size=11, max_size=11),
)
def test_property_monitor_status_round_trip(
    mil: bool, count: int, states: list[MonitorState]
) -> None:
    monitors = dict(zip(monitor_names_spark, states, strict=True))
    raw = encode_monitor_status(
        mil_on=mil, dtc_count=count, ignition=Ignition.SPARK, monitors=monitors
    )
    status = decode_monitor_status(raw)
    assert (status.mil_on, status.dtc_count) == (mil, count)
    assert status.monitors == monitors


@given(
    pid=st.sampled_from([0x04, 0x05, 0x06, 0x07, 0x0C, 0x42]),
    raw=st.integers(0, 0xFFFF),
)
def test_property_live_value_round_trip_exact_on_raw(pid: int, raw: int) -> None:
    length = 2 if pid in (0x0C, 0x42) else 1
    data = (raw % (256**length)).to_bytes(length, "big")
    assert encode_live_value(pid, decode_live_value(pid, data)) == data


@given(st.lists(st.text(max_size=40), max_size=8), framings)
def test_property_parse_response_never_raises(lines: list[str], framing: Framing) -> None:
    parsed = parse_response(lines, framing)
    for message in parsed.messages:
        assert message.data


@given(st.lists(st.binary(min_size=1, max_size=12).map(lambda b: b.hex(" ")), max_size=8), framings)
def test_property_hex_noise_never_raises(lines: list[str], framing: Framing) -> None:
    parsed = parse_response(lines, framing)
    decode_mode01(parsed)
    decode_vin(parsed, framing)
    decode_dtcs(parsed, "stored", framing)
