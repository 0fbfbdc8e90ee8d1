"""The fast appraisal decoder against pydantic: it accepts only what pydantic accepts, same values.

Differential tests: a full appraisal (every optional part present) is mutated at random
(a leaf replaced by a tricky value, a key dropped or added, text spliced in), and whenever the
mirror accepts the result, pydantic must accept it too and read the same values, and the stored
report must read back as the same body. Unmutated kiosk payloads must take the fast path.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, field_validator

from edge.protocol import (
    AppraisalBody,
    Channel,
    Condition,
    Deduction,
    Dtc,
    Flag,
    MaskedArea,
    ObdSummary,
    PhotoRecord,
    ProtocolError,
    Valuation,
    ValuationFactor,
    ValuationStatus,
    Vehicle,
    WireModel,
    decode,
    encode,
    make_envelope,
    parse_topic,
    topic_for,
)
from gateway.services.wire import (
    MirrorError,
    decode_appraisal,
    is_appraisal,
    mirror,
    public_report,
    report_json,
)

KIOSK = "fast-kiosk-1"
TOPIC = topic_for(KIOSK, Channel.APPRAISALS)
PARSED = parse_topic(TOPIC)


def full_body() -> AppraisalBody:
    """An appraisal with every optional part filled in, of every value type the contract has."""
    at = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
    return AppraisalBody(
        appraisal_id="3f1c1b9e-6a0d-4b8e-9c1e-2a6f4b1d7e01",
        command_id="9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b",
        inspector="Zoë Ångström",
        started_at=at,
        completed_at=at + timedelta(minutes=7),
        vehicle=Vehicle(
            vin="1G1ZB5ST7KF123456",
            vin_source="obd",
            vin_valid=True,
            make="Chevrolet",
            model="Malibu",
            trim="LS Sedan 4D",
            body="Sedan 4D",
            model_year=2019,
            odometer_km=61234.5,
            odometer_source="obd",
            options={"cruise": True, "leather": False},
        ),
        obd=ObdSummary(
            protocol="ISO 15765-4 (CAN 11/500)",
            adapter="ELM327 v1.5",
            partial=True,
            partial_reasons=["mode 06 not supported"],
            mil_on=True,
            dtcs=[Dtc(code="P0301", kind="stored", ecu="7E8"), Dtc(code="U0100", kind="pending")],
            readiness={"misfire": "complete", "catalyst": "incomplete"},
            warmups_since_clear=12,
            distance_since_clear_km=154.25,
            minutes_since_clear=900,
            distance_with_mil_km=0.0,
            live={"engine_rpm": 760.0, "coolant_temp_c": 88.5},
        ),
        photos=[
            PhotoRecord(
                view="front",
                sha256="a" * 64,
                phash="f0e1d2c3b4a59687",
                passed=True,
                reasons=[],
                metrics={"blur": 312.5, "exposure": 0.48},
                masked=[MaskedArea(kind="plate", box=(10, 20, 300, 80))],
                bytes=412_345,
            )
        ],
        condition=Condition(
            grade=3.75, deductions=[Deduction(code="mil_on", description="MIL", points=0.5)]
        ),
        valuation=Valuation(
            status=ValuationStatus.VALUED,
            reason=None,
            model_version="valuation-1.0.0",
            residual_model_version="residual-1.0.0",
            currency="USD",
            value_minor=1_250_000,
            low_minor=1_100_000,
            high_minor=1_400_000,
            interval=0.9,
            valued_at=at,
            factors=[
                ValuationFactor(
                    code="catalogue_base",
                    description="base",
                    amount_minor=1_654_800,
                    value_after_minor=1_654_800,
                ),
                ValuationFactor(
                    code="ageing", description="ageing", ratio=0.8123, value_after_minor=1_344_190
                ),
            ],
            residual_curve=[1.0, 0.99, 0.9801, 0.970299],
        ),
        flags=[
            Flag(
                code="codes_recently_cleared",
                severity="warning",
                message="cleared",
                evidence={"s": "x", "i": 3, "f": 1.5, "b": True, "n": None},
            )
        ],
    )


def payload_of(body: AppraisalBody, **envelope: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(encode(make_envelope(KIOSK, body, seq=7)))
    data.update(envelope)
    return data


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same JSON types all the way down (1 and 1.0 differ, as do -0.0 and 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


def check_agrees(raw: bytes) -> bool:
    """Whatever the mirror accepts, pydantic accepts with the same values. True if it took it."""
    fast = decode_appraisal(PARSED, raw)
    if fast is None:
        return False
    slow = decode(TOPIC, raw)  # must not raise: the mirror accepted it
    assert fast.schema_ == slow.schema_
    assert fast.message_id == slow.message_id
    assert fast.kiosk_id == slow.kiosk_id
    assert fast.seq == slow.seq and type(fast.seq) is type(slow.seq)
    assert fast.created_at == slow.created_at
    assert fast.created_at.utcoffset() == slow.created_at.utcoffset()
    body, want = fast.body, slow.body
    assert body.appraisal_id == want.appraisal_id
    assert body.started_at == want.started_at
    assert body.started_at.utcoffset() == want.started_at.utcoffset()
    assert (body.vehicle.vin, body.vehicle.vin_valid) == (want.vehicle.vin, want.vehicle.vin_valid)
    assert same(body.vehicle.odometer_km, want.vehicle.odometer_km)
    assert body.valuation.status is want.valuation.status
    assert (body.valuation.value_minor, body.valuation.currency) == (
        want.valuation.value_minor,
        want.valuation.currency,
    )
    assert [(p.view, p.sha256, p.phash) for p in body.photos] == [
        (p.view, p.sha256, p.phash) for p in want.photos
    ]
    # The stored report (the body's text as sent) reads back as the same body, and the API
    # shows it as pydantic writes it.
    stored = report_json(fast.body)
    assert AppraisalBody.model_validate_json(stored, strict=True) == want
    assert same(public_report(json.loads(stored)), want.model_dump(mode="json"))
    return True


def test_a_kiosk_payload_takes_the_fast_path_with_pydantics_values() -> None:
    raw = json.dumps(payload_of(full_body()), ensure_ascii=False).encode()
    assert check_agrees(raw)  # spaced as json.dumps spaces it
    fast = decode_appraisal(PARSED, encode(make_envelope(KIOSK, full_body(), seq=1)))
    assert fast is not None and is_appraisal(fast.body)
    # The stored report is byte for byte what pydantic writes, for what kiosks send.
    assert report_json(fast.body) == full_body().model_dump_json().encode()
    assert report_json(full_body()) == full_body().model_dump_json().encode()


_TRICKY_STRINGS = [
    "",
    "x",
    "P0301\n",
    "P0301",
    "USD\n",
    "USD",
    "usd",
    KIOSK + "\n",
    "3f1c1b9e-6a0d-4b8e-9c1e-2a6f4b1d7e01\n",
    "a" * 64 + "\n",
    "a" * 65,
    "é" * 33,
    "😀" * 32,
    "kioskmatch.appraisal/1",
    "kioskmatch.appraisal/1\n",
    "kioskmatch.status/1",
    "stored",
    "complete",
    "valued",
    "plate",
    "2026-03-01T09:30:15Z",
    "2026-03-01T09:30:15.1234567Z",
    "2026-03-01T09:30:15.123456789+01:00",
    "2026-03-01T09:30:15.9999995Z",
    "2026-03-01 09:30:15Z",
    "2026-03-01t09:30:15z",
    "2026-03-01T09:30Z",
    "2026-03-01T09:30:15",
    "2026-03-01T09:30:15-00:00",
    "2026-03-01T09:30:15+23:59",
    "2026-03-01T09:30:15+24:00",
    "2026-03-01T09:30:15+01:60",
    "2026-02-30T09:30:15Z",
    "2026-03-01T23:59:60Z",
    "2026-03-01T09:30:15.Z",
    "2026-03-01",
    "0000-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "2026-03-01T09:30:15,5Z",
    "\\u0000",
]
_TRICKY_NUMBERS: list[Any] = [
    0,
    -1,
    1,
    2019,
    1979,
    2101,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63),
    -(2**63) - 1,
    10**30,
    0.0,
    -0.0,
    0.5,
    1.0,
    0.9,
    1e16,
    1e-7,
    5e-324,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    2019.0,
    3.75,
    5.0,
    5.000000000000001,
]
json_leaf = (
    st.none()
    | st.booleans()
    | st.sampled_from(_TRICKY_NUMBERS)
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(_TRICKY_STRINGS)
    | st.text(max_size=12)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


def _tweaks(value: Any) -> st.SearchStrategy[Any]:
    if isinstance(value, str):
        return st.sampled_from(
            [
                value + "\n",
                "\n" + value,
                value + " ",
                value.upper(),
                value.lower(),
                value[:-1],
                value + value[-1:],
                value.replace("-", "_"),
                value + "é",
            ]
        )
    if isinstance(value, bool) or value is None:
        return json_leaf
    if isinstance(value, int | float):
        return st.sampled_from(
            [value + 1, value - 1, -value, float(value), value * 10**20, value / 3, 0, -0.0]
        )
    return json_value


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    doc = payload_of(full_body())
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        path = draw(st.sampled_from(paths))
        parent = _parent(doc, path)
        action = draw(st.sampled_from(["tweak", "tweak", "replace", "drop", "add", "null"]))
        if action == "tweak":  # near the valid value: where patterns and bounds are tested
            parent[path[-1]] = draw(_tweaks(parent[path[-1]]))
        elif action == "replace":
            parent[path[-1]] = draw(json_value)
        elif action == "null":
            parent[path[-1]] = None
        elif action == "drop":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "schema", "seq", "kiosk_id", "vin"]))] = draw(
                json_value
            )
        else:
            parent.append(draw(json_value))
    raw = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode()
    if draw(st.booleans()):  # text-level: duplicate keys, spacing, escapes
        splice = draw(
            st.sampled_from(
                [
                    (b'{"schema"', b'{"kiosk_id":"other-kiosk","schema"'),
                    (b'"seq": 7', b'"seq": 7, "seq": 8'),
                    (b'"seq": 7', b'"seq": 7.0'),
                    (b'"seq": 7', b'"seq": 7e0'),
                    (b'"seq": 7', b'"seq": -0'),
                    (b'"currency": "USD"', b'"currency": "\\u0055SD"'),
                    (b'"grade": 3.75', b'"grade": 375e-2'),
                    (b'"grade": 3.75', b'"grade": 1e400'),
                    (b'"inspector": "', b'"inspector": "\\ud800'),
                    (b'"inspector": "', b'"inspector": "\\ud83d\\ude00'),
                    (b"}", b"} "),
                    (b'"body": {', b'"body": {"appraisal_id": 1, '),
                ]
            )
        )
        raw = raw.replace(*splice, 1)
    return raw


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_the_mirror_accepts_only_what_pydantic_accepts_with_the_same_values(raw: bytes) -> None:
    check_agrees(raw)


@given(
    st.sampled_from(_TRICKY_STRINGS),
    st.sampled_from(["created_at", "started_at", "completed_at", "valued_at"]),
)
def test_timestamps_agree(text: str, field: str) -> None:
    doc = payload_of(full_body())
    if field == "created_at":
        doc["created_at"] = text
    elif field == "valued_at":
        doc["body"]["valuation"]["valued_at"] = text
    else:
        doc["body"][field] = text
    for separators in ((",", ":"), (", ", ": "), (",", " :  ")):
        check_agrees(json.dumps(doc, ensure_ascii=False, separators=separators).encode())


@pytest.mark.parametrize(
    ("splice", "why"),
    [
        ((b'"kiosk_id": "fast-kiosk-1"', b'"kiosk_id": "other-kiosk"'), "not the topic's kiosk"),
        ((b'"schema": "kioskmatch.appraisal/1"', b'"schema": "kioskmatch.appraisal/2"'), "schema"),
        ((b'"seq": 7, ', b""), "seq is required"),
        (
            (
                b'"started_at": "2026-03-01T09:30:15.123456Z"',
                b'"started_at": "2026-03-01T09:30:15.1234567Z"',
            ),
            "7 digits",
        ),
        ((b'"inspector": "', b'"inspector": "\\u0000'), "NUL"),
        ((b'"code": "P0301"', b'"code": "P0301\\n"'), "pattern and newline"),
        ((b'"model_year": 2019', b'"model_year": 2019.0'), "float for an int"),
        ((b'"grade": 3.75', b'"grade": 1e400'), "infinity"),
        ((b'"grade": 3.75', b'"grade": 3.75, "sheen": "high"'), "a field it does not know"),
        ((b'"inspector": "', b'"inspector": "\\"quoted\\" '), "an escape"),
    ],
)
def test_what_the_mirror_leaves_to_pydantic(splice: tuple[bytes, bytes], why: str) -> None:
    raw = json.dumps(payload_of(full_body()), ensure_ascii=False).encode()
    assert splice[0] in raw, why
    assert decode_appraisal(PARSED, raw) is not None  # without the splice, it takes it
    assert decode_appraisal(PARSED, raw.replace(*splice, 1)) is None, why


def test_other_channels_and_deep_nesting_are_left_to_pydantic() -> None:
    raw = encode(make_envelope(KIOSK, full_body(), seq=1))
    assert decode_appraisal(parse_topic(topic_for(KIOSK, Channel.TELEMETRY)), raw) is None
    for depth in (150, 250, 5000):
        deep = raw[:-1] + b',"x":' + b"[" * depth + b"]" * depth + b"}"
        fast = decode_appraisal(PARSED, deep)
        assert fast is None or check_agrees(deep)
        if depth > 200:
            assert fast is None
            with pytest.raises(ProtocolError):
                decode(TOPIC, deep)


def test_a_model_the_mirror_cannot_copy_exactly_is_refused() -> None:
    class Validated(WireModel):
        x: int

        @field_validator("x")
        @classmethod
        def _even(cls, value: int) -> int:
            return value

    class Multiple(WireModel):
        x: int = Field(multiple_of=2)

    class Strict(BaseModel):
        x: int

    class Timestamp(WireModel):
        seen: datetime

    for model in (Validated, Multiple, Strict, Timestamp):
        with pytest.raises(MirrorError):
            mirror(model)
