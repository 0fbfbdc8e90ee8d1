"""The kiosk agent's command handling: applied once, refused after expiry, answered by events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.app import KioskAgent
from edge.protocol import (
    Channel,
    CommandBody,
    CommandKind,
    ObdSummary,
    Vehicle,
    VinSource,
    make_envelope,
    new_id,
)
from firmware_config import KioskConfig
from tests.support.kiosk import ManualValuer

KIOSK = "dlr-001-k1"


class FakeReader:
    def __init__(self) -> None:
        self.reads = 0

    def read(self) -> tuple[Vehicle, ObdSummary]:
        self.reads += 1
        vehicle = Vehicle(
            vin="1G1ZB5ST7KF123456", vin_source=VinSource.OBD, vin_valid=True, make="Chevrolet"
        )
        return vehicle, ObdSummary(
            mil_on=False,
            warmups_since_clear=0,
            distance_since_clear_km=3,
            readiness={"catalyst": "incomplete"},
        )


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[KioskAgent, FakeReader]]:
    config = KioskConfig.model_validate(
        {
            "kiosk_id": KIOSK,
            "mqtt": {"url": "mqtt://127.0.0.1:9"},
            "outbox": {"path": str(tmp_path / "o.db")},
        }
    )
    reader = FakeReader()
    kiosk = KioskAgent(config, reader=reader, valuer=ManualValuer())
    yield kiosk, reader
    kiosk.outbox.close()


def _command(expires_in: timedelta, command_id: str | None = None) -> CommandBody:
    return CommandBody(
        command_id=command_id or new_id(),
        kind=CommandKind.START_APPRAISAL,
        expires_at=datetime.now(UTC) + expires_in,
        params={
            "appraisal_id": new_id(),
            "vehicle": {"model": "Malibu", "vin": "1G1ZB5ST7KF123456"},
        },
    )


def _events(kiosk: KioskAgent) -> list[dict[str, object]]:
    return [
        json.loads(i.payload)["body"]
        for i in kiosk.outbox.due(limit=1000)
        if i.channel is Channel.EVENTS
    ]


def test_a_command_is_applied_once(agent: tuple[KioskAgent, FakeReader]) -> None:
    kiosk, reader = agent
    command = _command(timedelta(minutes=5))
    envelope = make_envelope(KIOSK, command, seq=1)
    kiosk.handle_command(envelope)
    kiosk.handle_command(envelope)  # delivered twice (a resend after a reconnect)
    assert reader.reads == 1
    appraisals = [
        json.loads(i.payload)["body"]
        for i in kiosk.outbox.due(limit=100)
        if i.channel is Channel.APPRAISALS
    ]
    assert [a["appraisal_id"] for a in appraisals] == [command.params["appraisal_id"]]
    assert appraisals[0]["command_id"] == command.command_id
    kinds = [
        e["kind"]
        for e in _events(kiosk)
        if e.get("command_id") == command.command_id and e["kind"] != "inspection_progress"
    ]
    assert kinds == ["command_accepted", "command_done", "command_accepted"]
    flags = [f["code"] for f in appraisals[0]["flags"]]
    assert flags == ["codes_recently_cleared"]


def test_an_expired_command_is_refused(agent: tuple[KioskAgent, FakeReader]) -> None:
    kiosk, reader = agent
    kiosk.handle_command(make_envelope(KIOSK, _command(timedelta(seconds=-1)), seq=1))
    assert reader.reads == 0
    assert [e["kind"] for e in _events(kiosk)] == ["command_rejected"]


def test_a_failing_read_is_reported_and_the_kiosk_goes_on(
    agent: tuple[KioskAgent, FakeReader],
) -> None:
    kiosk, reader = agent

    def broken() -> tuple[Vehicle, ObdSummary]:
        raise OSError("adapter unplugged")

    reader.read = broken  # type: ignore[method-assign]
    command = _command(timedelta(minutes=5))
    kiosk.handle_command(make_envelope(KIOSK, command, seq=1))
    events = [e for e in _events(kiosk) if e["kind"] != "inspection_progress"]
    assert [e["kind"] for e in events] == ["command_accepted", "command_failed"]
    assert "unplugged" in str(events[1]["detail"])


def test_heartbeat_reports_outbox_and_versions(agent: tuple[KioskAgent, FakeReader]) -> None:
    kiosk, _ = agent
    kiosk.appraise(hints={})
    beat = kiosk.telemetry()
    assert beat.outbox_depth >= 1 and beat.outbox_oldest_age_s is not None
    assert beat.model_versions == {"valuation": "fake"} and beat.disk_free_bytes
