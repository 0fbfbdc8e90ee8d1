"""Commands that cannot reach a kiosk: refused before they are stored, and never a queue's plug.

A dealer's request whose ``start_appraisal`` command would break the wire contract (256 KiB per
MQTT message) was committed, then failed to encode on every delivery: each later POST for that
kiosk answered 500 and the kiosk got none of its later commands until the bad one expired.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from edge.protocol import MAX_PAYLOAD_BYTES, CommandKind, messages, new_id
from gateway.api.app import create_app
from gateway.api.routers.dealer import MAX_BODY_BYTES
from gateway.context import GatewayContext
from gateway.db import AppraisalRequest, CommandRow, IdempotencyKey, Kiosk
from gateway.db.models import LoanRequestRow
from gateway.services import commands
from gateway.services.keys import Role, create_key
from tests.support.links import FakeLink, linked_context

KIOSK = "dlr-001-k1"
APPRAISALS = "/v1/dealer/appraisals"


class BrokerDown(FakeLink):
    def publish(self, topic: str, payload: bytes) -> None:
        raise ConnectionError("the broker is away")


@pytest.fixture
def context(tmp_path: Path) -> Iterator[GatewayContext]:
    context = linked_context(tmp_path / "commands.db")
    yield context
    context.engine.dispose()


@pytest.fixture
def link(context: GatewayContext) -> FakeLink:
    assert isinstance(context.link, FakeLink)
    return context.link


@pytest.fixture
def client(context: GatewayContext) -> TestClient:
    return TestClient(create_app(context))


@pytest.fixture
def dealer(context: GatewayContext) -> dict[str, str]:
    with context.session() as s:
        token, _ = create_key(s, role=Role.DEALER, org="Dealer A")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def online(context: GatewayContext) -> None:
    now = datetime.now(UTC)
    with context.session() as s:
        s.add(Kiosk(kiosk_id=KIOSK, state="online", state_at=now, last_seen_at=now))
        s.commit()


def _stored(context: GatewayContext) -> dict[str, int]:
    with context.session() as s:
        return {
            "commands": len(s.exec(select(CommandRow)).all()),
            "requests": len(s.exec(select(AppraisalRequest)).all()),
            "loans": len(s.exec(select(LoanRequestRow)).all()),
            "keys": len(s.exec(select(IdempotencyKey)).all()),
        }


NOTHING = {"commands": 0, "requests": 0, "loans": 0, "keys": 0}

LOAN = {
    "amount_minor": 1_200_000,
    "term_months": 48,
    "monthly_income_minor": 600_000,
    "credit_score": 700,
    "consent": True,
}


def _options(n: int) -> dict[str, bool]:
    return {f"option-{i:05d}": True for i in range(n)}


def _poison(context: GatewayContext, *, age: timedelta, **fields: Any) -> str:
    """A pending command stored as older code (or a hand) stored it, ``age`` old."""
    now = datetime.now(UTC)
    row = CommandRow(
        command_id=new_id(),
        kiosk_id=KIOSK,
        kind=CommandKind.START_APPRAISAL.value,
        params={"appraisal_id": new_id()},
        state="pending",
        created_at=now - age,
        expires_at=now - age + timedelta(minutes=15),
    )
    for name, value in fields.items():
        setattr(row, name, value)
    with context.session() as s:
        s.add(row)
        s.commit()
    return row.command_id


# -- refused up front ------------------------------------------------------------------------


@pytest.mark.usefixtures("online")
def test_the_reported_oversized_start_is_refused_and_stores_nothing(
    context: GatewayContext, client: TestClient, link: FakeLink, dealer: dict[str, str]
) -> None:
    body = {"kiosk_id": KIOSK, "vehicle": {"options": _options(20_000)}}
    headers = {**dealer, "Idempotency-Key": "big-one"}
    response = client.post(APPRAISALS, headers=headers, json={**body, "loan_request": LOAN})
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 413 and problem["instance"] == APPRAISALS
    assert f"at most {MAX_BODY_BYTES} bytes" in problem["detail"]
    assert "vehicle.options" in problem["detail"]  # says what to shorten
    assert _stored(context) == NOTHING and link.sent == []
    # The kiosk's queue is untouched: the next request is made and its command sent.
    made = client.post(APPRAISALS, headers=dealer, json={"kiosk_id": KIOSK})
    assert made.status_code == 201, made.text
    assert made.json()["command_state"] == "sent"
    assert len(link.sent) == 1


@pytest.mark.usefixtures("online")
def test_a_chunked_body_is_refused_once_it_passes_the_limit(
    context: GatewayContext, client: TestClient, link: FakeLink, dealer: dict[str, str]
) -> None:
    raw = json.dumps({"kiosk_id": KIOSK, "vehicle": {"options": _options(20_000)}}).encode()
    chunks = (raw[i : i + 16_384] for i in range(0, len(raw), 16_384))  # no Content-Length
    response = client.post(
        APPRAISALS, headers={**dealer, "Content-Type": "application/json"}, content=chunks
    )
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert _stored(context) == NOTHING and link.sent == []


@pytest.mark.parametrize(
    ("vehicle", "field", "words"),
    [
        ({"options": _options(101)}, "body.vehicle.options", "at most 100 items"),
        ({"options": {"x" * 65: True}}, "body.vehicle.options.", "at most 64 characters"),
        ({"options": {"": True}}, "body.vehicle.options..[key]", "at least 1 character"),
        ({"options": {"cruise\x00": True}}, "body.vehicle.options.", "control characters"),
        ({"make": "Chevrolet\x00"}, "body.vehicle.make", "control characters"),
        ({"trim": "L" * 65}, "body.vehicle.trim", "at most 64 characters"),
    ],
)
@pytest.mark.usefixtures("online")
def test_vehicle_hints_past_their_bounds_name_their_field(
    context: GatewayContext,
    client: TestClient,
    link: FakeLink,
    dealer: dict[str, str],
    vehicle: dict[str, Any],
    field: str,
    words: str,
) -> None:
    response = client.post(APPRAISALS, headers=dealer, json={"kiosk_id": KIOSK, "vehicle": vehicle})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert len(errors) == 1 and errors[0]["field"].startswith(field), errors
    assert words in errors[0]["message"]
    assert _stored(context) == NOTHING and link.sent == []


@pytest.mark.usefixtures("online")
def test_the_most_a_dealer_may_send_fits_one_mqtt_message(
    context: GatewayContext, client: TestClient, link: FakeLink, dealer: dict[str, str]
) -> None:
    # Every bound at its limit, with names whose characters take the most bytes on the wire.
    widest = "\U0001f697" * 64
    vehicle = {
        **{field: widest for field in ("make", "model", "trim", "body")},
        "options": {f"{i:03d}" + widest[3:]: True for i in range(100)},
    }
    response = client.post(APPRAISALS, headers=dealer, json={"kiosk_id": KIOSK, "vehicle": vehicle})
    assert response.status_code == 201, response.text
    (_, payload), *_ = link.sent
    assert len(payload) < MAX_PAYLOAD_BYTES // 4


@pytest.mark.usefixtures("online")
def test_a_command_over_the_mqtt_limit_is_refused_before_anything_is_stored(
    context: GatewayContext,
    client: TestClient,
    link: FakeLink,
    dealer: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Within the request's bounds, yet too large for the wire (here made small): the encoding
    # is checked before the commit, not found out after it.
    monkeypatch.setattr(messages, "MAX_PAYLOAD_BYTES", 1_500)
    body = {"kiosk_id": KIOSK, "vehicle": {"options": _options(60)}, "loan_request": LOAN}
    response = client.post(APPRAISALS, headers={**dealer, "Idempotency-Key": "k"}, json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    detail = response.json()["detail"]
    assert "start_appraisal command" in detail and "the limit is 1500" in detail
    assert "vehicle.options" in detail
    assert _stored(context) == NOTHING and link.sent == []


def test_issue_command_adds_nothing_for_a_command_that_cannot_be_sent(
    context: GatewayContext,
) -> None:
    with context.session() as s:
        with pytest.raises(commands.UnsendableCommandError, match="the limit is 262144"):
            commands.issue_command(
                s,
                kiosk_id=KIOSK,
                kind=CommandKind.START_APPRAISAL,
                params={"blob": "x" * MAX_PAYLOAD_BYTES},
                ttl=timedelta(minutes=5),
            )
        with pytest.raises(commands.UnsendableCommandError, match="NUL"):
            commands.issue_command(
                s,
                kiosk_id=KIOSK,
                kind=CommandKind.START_APPRAISAL,
                params={"note": "a\x00b"},
                ttl=timedelta(minutes=5),
            )
        assert not s.new
        s.commit()
    assert _stored(context)["commands"] == 0


# -- a stored command that cannot be sent does not block the queue ---------------------------


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"params": {"blob": "x" * (MAX_PAYLOAD_BYTES + 1)}}, "the limit is 262144"),
        ({"params": {"note": "a\x00b"}}, "NUL"),
        ({"kind": "self_destruct"}, "ValueError"),
        ({"params": ["not", "an", "object"]}, "invalid command: params"),
    ],
)
def test_a_poisoned_pending_command_is_failed_and_the_next_one_sent(
    context: GatewayContext,
    link: FakeLink,
    caplog: pytest.LogCaptureFixture,
    fields: dict[str, Any],
    reason: str,
) -> None:
    poisoned = _poison(context, age=timedelta(minutes=2), **fields)
    with context.session() as s:
        later = commands.issue_command(
            s,
            kiosk_id=KIOSK,
            kind=CommandKind.START_APPRAISAL,
            params={"appraisal_id": new_id()},
            ttl=timedelta(minutes=15),
        )
        s.commit()
    with Session(context.engine) as s:
        s.add(Kiosk(kiosk_id=KIOSK, state="online", state_at=datetime.now(UTC)))
        s.commit()
    with context.session() as s:
        sent = commands.deliver(s, kiosk_id=KIOSK, publish=link.publish, next_seq=link.next_seq)
    assert sent == 1 and link.command_ids() == [later.command_id]
    with context.session() as s:
        bad = s.get(CommandRow, poisoned)
        assert bad is not None and bad.state == "failed"
        assert bad.detail is not None and bad.detail.startswith("not sent: ")
        assert reason in bad.detail and len(bad.detail) <= 500
        good = s.get(CommandRow, later.command_id)
        assert good is not None and good.state == "sent"
    assert any(
        poisoned in r.getMessage() and "marked failed" in r.getMessage() for r in caplog.records
    )
    # Failed for good: the next delivery resends the open command only.
    with context.session() as s:
        commands.deliver(s, kiosk_id=KIOSK, publish=link.publish, next_seq=link.next_seq)
    assert link.command_ids() == [later.command_id, later.command_id]


@pytest.mark.usefixtures("online")
def test_a_dealer_is_not_stopped_by_a_poisoned_command_on_the_kiosk(
    context: GatewayContext, client: TestClient, link: FakeLink, dealer: dict[str, str]
) -> None:
    # The state the reported bug left behind: a committed command too large to encode.
    poisoned = _poison(
        context, age=timedelta(minutes=1), params={"vehicle": {"options": _options(20_000)}}
    )
    made = []
    for _ in range(2):
        response = client.post(APPRAISALS, headers=dealer, json={"kiosk_id": KIOSK})
        assert response.status_code == 201, response.text
        assert response.json()["command_state"] == "sent"
        made.append(response.json()["appraisal_id"])
    with context.session() as s:
        bad = s.get(CommandRow, poisoned)
        assert bad is not None and bad.state == "failed" and "payload is" in (bad.detail or "")
        first, second = (s.get(AppraisalRequest, a) for a in made)
    assert first is not None and second is not None
    # The first command is sent again with the second, as every open command is.
    assert link.command_ids() == [first.command_id, first.command_id, second.command_id]


def test_a_broker_that_is_down_still_leaves_the_command_pending(context: GatewayContext) -> None:
    # Transient failures are not the command's fault: nothing is failed, it is tried again.
    link = BrokerDown()
    with context.session() as s:
        s.add(Kiosk(kiosk_id=KIOSK, state="online", state_at=datetime.now(UTC)))
        row = commands.issue_command(
            s,
            kiosk_id=KIOSK,
            kind=CommandKind.START_APPRAISAL,
            params={},
            ttl=timedelta(minutes=15),
        )
        s.commit()
        command_id = row.command_id
        with pytest.raises(ConnectionError):
            commands.deliver(s, kiosk_id=KIOSK, publish=link.publish, next_seq=link.next_seq)
        s.rollback()
    with context.session() as s:
        stored = s.get(CommandRow, command_id)
        assert stored is not None and stored.state == "pending" and stored.detail is None
