"""A command the kiosk accepted always ends in an outcome the dealer sees, crashes included.

The crashes are real: a child process running the agent dies with ``os._exit`` (no clean-up, as
a power cut) at the moment named, and a new agent opens the same outbox.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edge.app import RESTARTED, KioskAgent
from edge.outbox import SqliteOutbox
from edge.protocol import (
    Channel,
    CommandBody,
    CommandKind,
    make_envelope,
    new_id,
)
from firmware_config import KioskConfig
from tests.support.kiosk import MalibuReader, ManualValuer

KIOSK = "dlr-001-k1"
ROOT = Path(__file__).resolve().parents[3]


def _config(tmp_path: Path) -> KioskConfig:
    return KioskConfig.model_validate(
        {
            "kiosk_id": KIOSK,
            "mqtt": {"url": "mqtt://127.0.0.1:9"},
            "outbox": {"path": str(tmp_path / "o.db")},
            "heartbeat_s": 3600,
        }
    )


def _command(kind: CommandKind = CommandKind.START_APPRAISAL) -> CommandBody:
    return CommandBody(
        command_id=new_id(),
        kind=kind,
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        params={"appraisal_id": new_id()},
    )


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[KioskAgent, MalibuReader]]:
    reader = MalibuReader()
    kiosk = KioskAgent(_config(tmp_path), reader=reader, valuer=ManualValuer())
    yield kiosk, reader
    kiosk.outbox.close()


def _outcomes(outbox: SqliteOutbox, command_id: str) -> list[tuple[str, str | None]]:
    bodies = [
        json.loads(i.payload)["body"] for i in outbox.due(limit=1000) if i.channel is Channel.EVENTS
    ]
    return [
        (b["kind"], b.get("detail"))
        for b in bodies
        if b.get("command_id") == command_id and b["kind"] != "inspection_progress"
    ]


def _appraisals(outbox: SqliteOutbox) -> list[dict[str, Any]]:
    return [
        json.loads(i.payload)["body"]
        for i in outbox.due(limit=1000)
        if i.channel is Channel.APPRAISALS
    ]


CHILD = """
import os, sys
from edge.app import KioskAgent
from edge.outbox import SqliteOutbox
from edge.protocol import (
    CommandBody, ObdSummary, Valuation, ValuationStatus, Vehicle, make_envelope,
)
from firmware_config import KioskConfig

class Reader:
    def read(self):
        if sys.argv[3] == "during-read":
            os._exit(9)  # the power goes while the OBD read runs
        return Vehicle(make="Chevrolet", model="Malibu"), ObdSummary(mil_on=False)

class Valuer:
    versions = {"valuation": "fake"}
    def value(self, *args, **kwargs):
        return Valuation(status=ValuationStatus.MANUAL, reason="fake"), []

config = KioskConfig.model_validate_json(sys.argv[1])
command = CommandBody.model_validate_json(sys.argv[2])
reader = Reader()
if sys.argv[3] == "before-outcome":
    # The appraisal is stored; the power goes before the command's outcome is.
    SqliteOutbox.finish_command = lambda *a, **k: os._exit(9)
KioskAgent(config, reader=reader, valuer=Valuer()).handle_command(
    make_envelope(config.kiosk_id, command, seq=1)
)
os._exit(0)
"""


def _crash(tmp_path: Path, command: CommandBody, when: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            _config(tmp_path).model_dump_json(),
            command.model_dump_json(),
            when,
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 9, result.stderr[-3000:]


def test_a_command_cut_short_mid_inspection_is_reported_failed_after_the_restart(
    tmp_path: Path,
) -> None:
    command = _command()
    _crash(tmp_path, command, "during-read")
    reader = MalibuReader()
    agent = KioskAgent(_config(tmp_path), reader=reader, valuer=ManualValuer())
    try:
        # The gateway sends the command again once the kiosk is back online.
        agent.handle_command(make_envelope(KIOSK, command, seq=2))
        assert _outcomes(agent.outbox, command.command_id) == [
            ("command_accepted", None),  # queued by the run that died
            ("command_failed", RESTARTED),
            ("command_failed", RESTARTED),  # the answer to the resend: the same outcome
        ]
        assert reader.reads == 0 and _appraisals(agent.outbox) == []  # applied once: not re-run
        assert agent.outbox.running_commands() == []
    finally:
        agent.outbox.close()


def test_the_restart_reports_it_at_start_without_waiting_for_a_resend(tmp_path: Path) -> None:
    command = _command()
    _crash(tmp_path, command, "during-read")
    agent = KioskAgent(_config(tmp_path), reader=MalibuReader(), valuer=ManualValuer())
    agent.start(wait_s=None)  # the broker is unreachable: the events wait in the outbox
    agent.stop()
    outbox = SqliteOutbox(tmp_path / "o.db", kiosk_id=KIOSK)
    try:
        outcomes = _outcomes(outbox, command.command_id)
        assert outcomes[-1] == ("command_failed", RESTARTED)
        event = next(
            json.loads(i.payload)["body"]
            for i in outbox.due(limit=1000)
            if b'"command_failed"' in i.payload
        )
        assert event["appraisal_id"] == command.params["appraisal_id"]
    finally:
        outbox.close()


def test_a_command_cut_short_after_its_appraisal_was_stored_is_done(tmp_path: Path) -> None:
    command = _command()
    _crash(tmp_path, command, "before-outcome")
    reader = MalibuReader()
    agent = KioskAgent(_config(tmp_path), reader=reader, valuer=ManualValuer())
    try:
        assert agent.recover_interrupted_commands() == 1
        assert agent.recover_interrupted_commands() == 0  # once per agent
        appraisal_id = command.params["appraisal_id"]
        assert _outcomes(agent.outbox, command.command_id) == [
            ("command_accepted", None),
            ("command_done", f"appraisal {appraisal_id} queued"),
        ]
        assert [a["appraisal_id"] for a in _appraisals(agent.outbox)] == [appraisal_id]
        agent.handle_command(make_envelope(KIOSK, command, seq=2))
        assert _outcomes(agent.outbox, command.command_id)[-1] == (
            "command_accepted",
            "already applied",
        )
        assert reader.reads == 0
    finally:
        agent.outbox.close()


def test_a_command_delivered_again_while_it_runs_is_in_progress(
    agent: tuple[KioskAgent, MalibuReader],
) -> None:
    kiosk, reader = agent
    reading, release = threading.Event(), threading.Event()

    def slow() -> None:
        reading.set()
        assert release.wait(10)

    reader.during_read = slow
    command = _command()
    envelope = make_envelope(KIOSK, command, seq=1)
    first = threading.Thread(target=kiosk.handle_command, args=(envelope,))
    first.start()
    assert reading.wait(10)
    kiosk.handle_command(envelope)  # a resend after a reconnect, mid-inspection
    release.set()
    first.join(10)
    assert reader.reads == 1
    assert _outcomes(kiosk.outbox, command.command_id) == [
        ("command_accepted", None),
        ("command_accepted", "already in progress"),
        ("command_done", f"appraisal {command.params['appraisal_id']} queued"),
    ]


def test_a_rejected_command_is_rejected_again_with_its_reason(
    agent: tuple[KioskAgent, MalibuReader],
) -> None:
    kiosk, _ = agent
    command = _command(CommandKind.MODEL_UPDATE)
    envelope = make_envelope(KIOSK, command, seq=1)
    kiosk.handle_command(envelope)
    kiosk.handle_command(envelope)
    reason = "model_update is not supported yet"
    assert _outcomes(kiosk.outbox, command.command_id) == [
        ("command_rejected", reason),
        ("command_rejected", reason),
    ]


def test_an_inspection_that_ends_while_the_outbox_fails_is_stored_when_it_works(
    agent: tuple[KioskAgent, MalibuReader],
) -> None:
    kiosk, reader = agent

    def outbox_goes_read_only() -> None:
        with kiosk.outbox._lock:
            kiosk.outbox._db.execute("PRAGMA query_only = ON")

        def writable_again() -> None:
            with kiosk.outbox._lock:
                kiosk.outbox._db.execute("PRAGMA query_only = OFF")

        threading.Timer(1.0, writable_again).start()

    reader.during_read = outbox_goes_read_only
    command = _command()
    kiosk.handle_command(make_envelope(KIOSK, command, seq=1))
    appraisal_id = command.params["appraisal_id"]
    assert [a["appraisal_id"] for a in _appraisals(kiosk.outbox)] == [appraisal_id]
    assert _outcomes(kiosk.outbox, command.command_id) == [
        ("command_accepted", None),
        ("command_done", f"appraisal {appraisal_id} queued"),
    ]
    assert not kiosk.outbox.disk_alarm
