"""What a database cannot store is a dead letter (receipted), never a crashed ingest.

Payloads that pass JSON parsing but that SQLite or PostgreSQL would refuse at commit: a NUL in a
string (PostgreSQL text), an integer past 64 bits (both), an infinite float in telemetry (the
PostgreSQL JSON column), a string longer than its column (PostgreSQL). The worker retries only
connection errors, so any other failed commit would stop ingest altogether.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import Session, func, select

from edge.protocol import (
    Channel,
    EventBody,
    EventKind,
    KioskState,
    PhotoRecord,
    StatusBody,
    TelemetryBody,
    encode,
    make_envelope,
    topic_for,
)
from gateway.db import Appraisal, DeadLetter, make_engine, migrate
from gateway.services.ingest import Inbound, ingest_batch
from gateway.settings import GatewaySettings
from tests.support.factories import appraisal_body

KIOSK = "limits-kiosk-1"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gw.db'}"
    else:
        url = GatewaySettings(
            database_url=request.getfixturevalue("postgres_db").url
        ).resolved_database_url
    engine = make_engine(url)
    migrate(engine)
    yield engine
    engine.dispose()


def _edit(channel: Channel, body: Any, change: Callable[[dict[str, Any]], None]) -> bytes:
    raw = json.loads(encode(make_envelope(KIOSK, body, seq=1)))
    change(raw)
    return json.dumps(raw).encode().replace(b'"INFINITY"', b"Infinity")


CASES = {
    "nul in a VIN": (Channel.APPRAISALS, appraisal_body(vin="1G1\u0000ZB5ST7"), lambda r: None),
    "nul in an event": (
        Channel.EVENTS,
        EventBody(kind=EventKind.INSPECTION_PROGRESS, detail="retake\u0000"),
        lambda r: None,
    ),
    "seq past 64 bits": (
        Channel.TELEMETRY,
        TelemetryBody(uptime_s=1),
        lambda r: r.update(seq=2**63),
    ),
    "value past 64 bits": (
        Channel.APPRAISALS,
        appraisal_body(),
        lambda r: r["body"]["valuation"].update(value_minor=2**64),
    ),
    "a long agent version": (
        Channel.TELEMETRY,
        TelemetryBody(uptime_s=1),
        lambda r: r["body"].update(agent_version="9" * 65),
    ),
    "a long photo view": (
        Channel.APPRAISALS,
        appraisal_body(photos=[PhotoRecord(view="front", sha256="a" * 64, passed=True)]),
        lambda r: r["body"]["photos"][0].update(view="v" * 33),
    ),
    "a long phash": (
        Channel.APPRAISALS,
        appraisal_body(photos=[PhotoRecord(view="front", sha256="a" * 64, passed=True)]),
        lambda r: r["body"]["photos"][0].update(phash="f" * 17),
    ),
    "infinite telemetry": (
        Channel.TELEMETRY,
        TelemetryBody(uptime_s=1),
        lambda r: r["body"].update(temperature_c="INFINITY"),
    ),
    # Stored, an infinite odometer would be "an earlier, higher reading" for every later
    # appraisal of the car, its rollback flag JSON that PostgreSQL refuses: each lost in turn.
    "an infinite odometer": (
        Channel.APPRAISALS,
        appraisal_body(),
        lambda r: r["body"]["vehicle"].update(odometer_km="INFINITY"),
    ),
    "an odometer past the largest double": (
        Channel.APPRAISALS,
        appraisal_body(),
        lambda r: r["body"]["vehicle"].update(odometer_km=10**400),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_what_the_database_cannot_hold_is_a_dead_letter(engine: Engine, case: str) -> None:
    channel, body, change = CASES[case]
    bad = _edit(channel, body, change)
    good = make_envelope(KIOSK, appraisal_body(), seq=2)
    with Session(engine) as session:
        outcome = ingest_batch(
            session,
            [
                Inbound(topic_for(KIOSK, channel), bad),
                Inbound(topic_for(KIOSK, Channel.APPRAISALS), encode(good)),
            ],
        )
        assert (outcome.dead_letters, outcome.stored) == (1, 1)
        # Receipted, so the kiosk lets go of a message that resending would never help.
        bad_id = json.loads(bad)["message_id"]
        assert outcome.receipts == {KIOSK: [bad_id, good.message_id]}
        assert json.loads(session.exec(select(DeadLetter)).one().payload)["message_id"] == bad_id
        assert session.exec(select(func.count()).select_from(Appraisal)).one() == 1


def test_a_long_status_agent_version_is_a_dead_letter(engine: Engine) -> None:
    raw = json.loads(encode(make_envelope(KIOSK, StatusBody(state=KioskState.ONLINE), seq=None)))
    raw["body"]["agent_version"] = "9" * 65
    with Session(engine) as session:
        outcome = ingest_batch(
            session, [Inbound(topic_for(KIOSK, Channel.STATUS), json.dumps(raw).encode())]
        )
        assert outcome.dead_letters == 1


def test_a_vin_as_read_is_stored_whatever_its_length(engine: Engine) -> None:
    # A clone adapter's extra legacy frame: 20 characters, flagged invalid on the kiosk. The
    # report keeps what was read; the appraisal must not be refused (or crash the commit).
    body = appraisal_body(vin="1G1ZB5ST7KF123456ABC")
    with Session(engine) as session:
        outcome = ingest_batch(
            session,
            [
                Inbound(
                    topic_for(KIOSK, Channel.APPRAISALS), encode(make_envelope(KIOSK, body, seq=1))
                )
            ],
        )
        assert (outcome.dead_letters, outcome.new_appraisals) == (0, [body.appraisal_id])
        stored = session.get(Appraisal, body.appraisal_id)
        assert stored is not None and stored.vin == "1G1ZB5ST7KF123456ABC"


def _samples() -> dict[Channel, dict[str, Any]]:
    photo = PhotoRecord(
        view="front", sha256="a" * 64, phash="0" * 16, passed=True, metrics={"blur": 1.0}
    )
    bodies: dict[Channel, Any] = {
        Channel.APPRAISALS: appraisal_body(photos=[photo]),
        Channel.TELEMETRY: TelemetryBody(
            uptime_s=1, cpu_percent=5, temperature_c=40, agent_version="1", config_version="1"
        ),
        Channel.EVENTS: EventBody(kind=EventKind.COMMAND_DONE, command_id=str(uuid.uuid4())),
        Channel.STATUS: StatusBody(state=KioskState.ONLINE, agent_version="1"),
    }
    return {
        channel: json.loads(
            encode(make_envelope(KIOSK, body, seq=None if channel is Channel.STATUS else 1))
        )
        for channel, body in bodies.items()
    }


SAMPLES = _samples()


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _leaves(inner, (*path, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value[:2]):
            yield from _leaves(inner, (*path, index))
    else:
        yield path


extremes = st.one_of(
    st.integers(min_value=2**62, max_value=2**80),
    st.integers(min_value=-(2**80), max_value=-1),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400"]).map(lambda t: ("raw", t)),
    st.text(max_size=300),
    st.text(alphabet=st.sampled_from("0aZ\u0000é\u202e"), min_size=60, max_size=70),
    st.none(),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_payload_makes_ingest_raise(engine: Engine, data: st.DataObject) -> None:
    """Valid envelopes with one value pushed to an extreme: stored or a dead letter, no error."""
    channel = data.draw(st.sampled_from(sorted(SAMPLES)))
    raw = copy.deepcopy(SAMPLES[channel])
    raw["message_id"] = str(uuid.uuid4())
    if channel is Channel.APPRAISALS:
        raw["body"]["appraisal_id"] = str(uuid.uuid4())
    path = data.draw(st.sampled_from(sorted(_leaves(raw), key=repr)))
    value = data.draw(extremes)
    target = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = "RAW-TOKEN" if isinstance(value, tuple) else value
    payload = json.dumps(raw).encode()
    if isinstance(value, tuple):
        payload = payload.replace(b'"RAW-TOKEN"', value[1].encode())
    with Session(engine) as session:
        outcome = ingest_batch(session, [Inbound(topic_for(KIOSK, channel), payload)])
    assert outcome.stored + outcome.dead_letters == 1
