"""Thousands of malformed payloads: every one a dead letter, no exception escapes ingest."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from edge.protocol import (
    MAX_PAYLOAD_BYTES,
    Channel,
    TelemetryBody,
    encode,
    encode_receipt,
    make_envelope,
    topic_for,
)
from gateway.db import DeadLetter, InboundMessage, make_engine, migrate
from gateway.services.ingest import Inbound, ingest_batch
from tests.support.factories import appraisal_body

KIOSK = "fuzz-kiosk-1"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


def _valid_appraisal() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(encode(make_envelope(KIOSK, appraisal_body(), seq=1)))
    return data


@st.composite
def broken_envelopes(draw: st.DrawFn) -> bytes:
    """A valid appraisal envelope with one part broken: a wrong type, a missing key, a bad id."""
    data = _valid_appraisal()
    mutation = draw(
        st.sampled_from(["drop", "retype", "kiosk", "schema", "body", "deep", "message_id"])
    )
    if mutation == "drop":
        del data[
            draw(st.sampled_from(["schema", "message_id", "kiosk_id", "seq", "created_at", "body"]))
        ]
    elif mutation == "retype":
        key = draw(st.sampled_from(["message_id", "seq", "created_at", "body"]))
        wrong = {  # JSON types the field must not accept
            "message_id": (str,),
            "seq": (int,),
            "created_at": (str,),
            "body": (dict,),
        }[key]
        data[key] = draw(
            json_values.filter(
                lambda v: not isinstance(v, wrong) or (isinstance(v, bool) and wrong != (int,))
            )
        )
    elif mutation == "message_id":  # shaped like a UUID (36 characters, 4 dashes), but not one
        data["message_id"] = draw(
            st.sampled_from(["zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", "-" * 4 + "x" * 32])
        )
    elif mutation == "kiosk":
        data["kiosk_id"] = draw(st.sampled_from(["other-kiosk", "", "UPPER", 42]))
    elif mutation == "schema":
        data["schema"] = draw(
            st.sampled_from(["kioskmatch.appraisal/2", "kioskmatch.telemetry/1", "x", 1])
        )
    elif mutation == "body":
        data["body"] = draw(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
    else:
        data["body"]["valuation"]["value_minor"] = draw(st.sampled_from([-1, "12", None, 1.5]))
        data["body"]["valuation"]["status"] = (
            "valued" if data["body"]["valuation"]["value_minor"] else "x"
        )
    return json.dumps(data).encode()


payloads = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    json_values.map(lambda v: json.dumps(v).encode()),
    broken_envelopes(),
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def _dead_letters(session: Session) -> tuple[int, int]:
    """Dead letters kept, and deliveries they account for (each kept once, copies counted)."""
    kept, copies = session.exec(
        select(func.count(), func.coalesce(func.sum(DeadLetter.duplicates), 0))
    ).one()
    return int(kept), int(kept) + int(copies)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(payloads, min_size=1, max_size=5))
def test_every_malformed_payload_is_a_dead_letter(engine: Engine, batch: list[bytes]) -> None:
    with Session(engine) as session:
        before = _dead_letters(session)
        stored_before = int(session.exec(select(func.count()).select_from(InboundMessage)).one())
        outcome = ingest_batch(
            session, [Inbound(topic_for(KIOSK, Channel.APPRAISALS), p) for p in batch]
        )
        # Each payload is kept as a dead letter, or counted on the one that holds the same bytes.
        assert outcome.dead_letters + outcome.duplicates == len(batch) and outcome.stored == 0
        kept, deliveries = _dead_letters(session)
        assert (kept, deliveries) == (before[0] + outcome.dead_letters, before[1] + len(batch))
        for kiosk_id, ids in outcome.receipts.items():
            encode_receipt(kiosk_id, ids, seq=1)  # the worker can always receipt what it kept
        assert (
            int(session.exec(select(func.count()).select_from(InboundMessage)).one())
            == stored_before
        )


def test_huge_and_misplaced_messages(engine: Engine) -> None:
    huge = b"{" + b" " * MAX_PAYLOAD_BYTES + b"}"
    telemetry = encode(make_envelope(KIOSK, TelemetryBody(uptime_s=1), seq=3))
    with Session(engine) as session:
        outcome = ingest_batch(
            session,
            [
                Inbound(topic_for(KIOSK, Channel.APPRAISALS), huge),
                Inbound(topic_for(KIOSK, Channel.APPRAISALS), telemetry),  # right body, wrong topic
                Inbound("kioskmatch/v1/kiosks/BAD ID/appraisals", telemetry),
                Inbound("somewhere/else", telemetry),
            ],
        )
        assert outcome.dead_letters == 4
        newest = select(DeadLetter).order_by(col(DeadLetter.id).desc()).limit(4)
        reasons = [d.reason for d in session.exec(newest)]
        assert any("limit" in r for r in reasons) and any("does not belong" in r for r in reasons)
