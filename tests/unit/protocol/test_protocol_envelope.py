from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.protocol import (
    MAX_PAYLOAD_BYTES,
    Channel,
    CommandBody,
    CommandKind,
    KioskState,
    PayloadTooLargeError,
    ProtocolError,
    ReceiptBody,
    StatusBody,
    TelemetryBody,
    UnsupportedSchemaError,
    decode,
    encode,
    encode_receipt,
    make_envelope,
    new_id,
    parse_topic,
    subscription,
    topic_for,
)

KIOSK = "dlr-001-k1"


def test_topic_round_trip() -> None:
    for channel in Channel:
        assert parse_topic(topic_for(KIOSK, channel)) == (KIOSK, channel)
    assert subscription(Channel.APPRAISALS) == "kioskmatch/v1/kiosks/+/appraisals"
    assert subscription(Channel.APPRAISALS, "g1") == "$share/g1/kioskmatch/v1/kiosks/+/appraisals"


@pytest.mark.parametrize(
    "topic",
    [
        "kioskmatch/v1/kiosks/dlr-001/unknown",
        "kioskmatch/v2/kiosks/dlr-001/appraisals",
        "kioskmatch/v1/kiosks/DLR/appraisals",
        "kioskmatch/v1/kiosks/dlr-001/appraisals/extra",
        "other/topic",
    ],
)
def test_bad_topics_are_refused(topic: str) -> None:
    with pytest.raises(ProtocolError):
        parse_topic(topic)


@pytest.mark.parametrize("kiosk_id", ["ab", "-abc", "Abc", "a" * 65, "a_b_c"])
def test_bad_kiosk_ids(kiosk_id: str) -> None:
    with pytest.raises(ProtocolError):
        topic_for(kiosk_id, Channel.STATUS)


def test_status_has_no_seq_on_the_wire() -> None:
    env = make_envelope(KIOSK, StatusBody(state=KioskState.OFFLINE), seq=None)
    raw = json.loads(encode(env))
    assert "seq" not in raw
    assert raw["schema"] == "kioskmatch.status/1"
    assert raw["created_at"].endswith("Z")
    back = decode(topic_for(KIOSK, Channel.STATUS), encode(env))
    assert back.message_id == env.message_id and back.created_at == env.created_at


def test_round_trip_keeps_id_seq_and_creation_time() -> None:
    env = make_envelope(KIOSK, TelemetryBody(uptime_s=12.5, outbox_depth=3), seq=42)
    back = decode(topic_for(KIOSK, Channel.TELEMETRY), encode(env))
    assert (back.message_id, back.seq, back.created_at) == (env.message_id, 42, env.created_at)
    assert back.body == env.body


def test_unknown_fields_are_ignored() -> None:
    env = make_envelope(KIOSK, ReceiptBody(message_ids=[new_id()]), seq=1)
    raw = json.loads(encode(env))
    raw["future_field"] = {"x": 1}
    raw["body"]["also_new"] = True
    back = decode(topic_for(KIOSK, Channel.RECEIPTS), json.dumps(raw).encode())
    assert back.body.message_ids == env.body.message_ids


def test_unknown_major_version_is_unsupported() -> None:
    env = make_envelope(KIOSK, TelemetryBody(uptime_s=1), seq=1)
    raw = json.loads(encode(env))
    raw["schema"] = "kioskmatch.telemetry/2"
    with pytest.raises(UnsupportedSchemaError, match="unsupported schema"):
        decode(topic_for(KIOSK, Channel.TELEMETRY), json.dumps(raw).encode())


def test_kiosk_in_body_must_match_topic() -> None:
    env = make_envelope("other-kiosk", TelemetryBody(uptime_s=1), seq=1)
    with pytest.raises(ProtocolError, match="does not match"):
        decode(topic_for(KIOSK, Channel.TELEMETRY), encode(env))


def test_schema_must_belong_to_topic() -> None:
    env = make_envelope(KIOSK, TelemetryBody(uptime_s=1), seq=1)
    with pytest.raises(ProtocolError, match="does not belong"):
        decode(topic_for(KIOSK, Channel.APPRAISALS), encode(env))


def test_seq_required_except_on_status() -> None:
    env = make_envelope(KIOSK, TelemetryBody(uptime_s=1), seq=1)
    raw = json.loads(encode(env))
    del raw["seq"]
    with pytest.raises(ProtocolError, match="seq"):
        decode(topic_for(KIOSK, Channel.TELEMETRY), json.dumps(raw).encode())


def test_oversized_payloads_are_refused() -> None:
    with pytest.raises(PayloadTooLargeError):
        decode(topic_for(KIOSK, Channel.TELEMETRY), b" " * (MAX_PAYLOAD_BYTES + 1))
    body = TelemetryBody(uptime_s=1, model_versions={"m": "x" * MAX_PAYLOAD_BYTES})
    with pytest.raises(PayloadTooLargeError):
        encode(make_envelope(KIOSK, body, seq=1))


def test_command_needs_timezone_on_expiry() -> None:
    body = CommandBody(
        command_id=new_id(),
        kind=CommandKind.START_APPRAISAL,
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
    )
    env = make_envelope(KIOSK, body, seq=7)
    assert decode(topic_for(KIOSK, Channel.COMMANDS), encode(env)).body == body
    raw = json.loads(encode(env))
    raw["body"]["expires_at"] = "2030-01-01T00:00:00"
    with pytest.raises(ProtocolError, match="timezone"):
        decode(topic_for(KIOSK, Channel.COMMANDS), json.dumps(raw).encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_escape_as_other_errors(payload: bytes) -> None:
    try:
        decode(topic_for(KIOSK, Channel.APPRAISALS), payload)
    except ProtocolError as exc:
        assert exc.reason


def test_a_nested_schema_key_before_the_envelopes_does_not_confuse_decoding() -> None:
    body = CommandBody(
        command_id=new_id(),
        kind=CommandKind.CONFIG_UPDATE,
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
        params={"schema": "kioskmatch.telemetry/1"},
    )
    raw = json.loads(encode(make_envelope(KIOSK, body, seq=3)))
    reordered = {"body": raw.pop("body"), **raw}  # the nested "schema" now comes first
    back = decode(topic_for(KIOSK, Channel.COMMANDS), json.dumps(reordered).encode())
    assert back.body == body


def test_wrong_json_types_are_not_coerced() -> None:
    raw = json.loads(encode(make_envelope(KIOSK, TelemetryBody(uptime_s=1), seq=1)))
    raw["seq"] = "1"
    with pytest.raises(ProtocolError, match="seq"):
        decode(topic_for(KIOSK, Channel.TELEMETRY), json.dumps(raw).encode())


@given(
    ids=st.lists(st.uuids().map(str), min_size=1, max_size=20),
    seq=st.integers(min_value=0, max_value=2**62),
    created_at=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)
@settings(max_examples=200, deadline=None)
def test_fast_receipts_are_the_models_bytes(ids: list[str], seq: int, created_at: datetime) -> None:
    message_id = new_id()
    expected = encode(
        make_envelope(
            KIOSK,
            ReceiptBody(message_ids=ids),
            seq=seq,
            message_id=message_id,
            created_at=created_at,
        )
    )
    fast = encode_receipt(KIOSK, ids, seq=seq, message_id=message_id, created_at=created_at)
    assert fast == expected
    assert decode(topic_for(KIOSK, Channel.RECEIPTS), fast).body.message_ids == ids


@pytest.mark.parametrize(
    ("kiosk_id", "ids", "seq"),
    [
        (KIOSK, [], 1),
        (KIOSK, ["zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"], 1),
        (KIOSK, [new_id().upper()], 1),
        ("Bad Kiosk", [new_id()], 1),
        (KIOSK, [new_id()], -1),
    ],
)
def test_fast_receipts_refuse_what_the_models_refuse(
    kiosk_id: str, ids: list[str], seq: int
) -> None:
    with pytest.raises(ProtocolError):
        encode_receipt(kiosk_id, ids, seq=seq)


@pytest.mark.parametrize(
    "put_nul",
    [
        lambda raw: raw["body"].update(config_version="1\u0000"),  # a string value
        lambda raw: raw["body"].update(model_versions={"val\u0000": "1"}),  # a key
        lambda raw: raw["body"].update(unknown={"deep": ["\u0000"]}),  # even an ignored field
    ],
)
def test_a_nul_character_anywhere_is_refused(put_nul: object) -> None:
    # PostgreSQL text cannot hold U+0000: the message must be a dead letter, not a failed commit.
    raw = json.loads(encode(make_envelope(KIOSK, TelemetryBody(uptime_s=1), seq=1)))
    put_nul(raw)  # type: ignore[operator]
    with pytest.raises(ProtocolError, match="NUL"):
        decode(topic_for(KIOSK, Channel.TELEMETRY), json.dumps(raw).encode())


def test_an_escaped_backslash_before_u0000_is_no_nul() -> None:
    body = TelemetryBody(uptime_s=1, config_version="C:\\u0000")  # the text, not the character
    payload = encode(make_envelope(KIOSK, body, seq=1))
    assert b"\\\\u0000" in payload
    assert decode(topic_for(KIOSK, Channel.TELEMETRY), payload).body == body
