"""A failing outbox pauses the kiosk's sending, never ends it (real Mosquitto, real SQLite).

The faults are SQLite's own errors on the kiosk's real outbox file: SQLITE_READONLY (the
connection switched to read-only, as a filesystem remounted read-only would), SQLITE_FULL (the
database capped at its current size, as a full disk would) and, injected at the outbox's
connection, "database disk image is malformed". In each case paho's network thread and the
sender keep running, the disk alarm is up, a receipt that arrives meanwhile is applied once the
outbox works, and sending resumes by itself.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.app import KioskAgent
from edge.outbox import OutboxFullError, OutboxStorageError, SqliteOutbox
from edge.protocol import (
    Channel,
    EventBody,
    EventKind,
    ReceiptBody,
    encode,
    make_envelope,
    new_id,
    topic_for,
)
from firmware_config import KioskConfig
from tests.support.kiosk import MalibuReader, ManualValuer
from tests.support.services import Mosquitto

pytestmark = pytest.mark.mosquitto


class GatewayStandIn:
    """Subscribes to one kiosk's appraisals and events; receipts only when told to."""

    def __init__(self, broker: Mosquitto, kiosk_id: str) -> None:
        self.kiosk_id = kiosk_id
        self.seen: set[str] = set()
        self._lock = threading.Lock()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"gw-{kiosk_id}")
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", broker.port)
        for channel in (Channel.APPRAISALS, Channel.EVENTS):
            self._client.subscribe(topic_for(kiosk_id, channel), qos=1)
        self._client.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.seen.add(json.loads(msg.payload)["message_id"])

    def got(self, message_id: str) -> bool:
        with self._lock:
            return message_id in self.seen

    def receipt(self, *message_ids: str) -> None:
        envelope = make_envelope(self.kiosk_id, ReceiptBody(message_ids=list(message_ids)), seq=1)
        info = self._client.publish(topic_for(self.kiosk_id, Channel.RECEIPTS), encode(envelope), 1)
        info.wait_for_publish(5)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


def pragma(outbox: SqliteOutbox, statement: str) -> None:
    """Change the outbox's own connection, between two of its operations."""
    with outbox._lock:
        outbox._db.execute(statement)


@pytest.fixture
def kiosk(
    request: pytest.FixtureRequest, tmp_path: Path, mosquitto_broker: Mosquitto
) -> Iterator[tuple[KioskAgent, GatewayStandIn]]:
    kiosk_id = f"faults-{request.node.name[-20:].replace('_', '-').strip('-')}-{new_id()[:6]}"
    config = KioskConfig.model_validate(
        {
            "kiosk_id": kiosk_id,
            "mqtt": {"url": mosquitto_broker.url},
            "outbox": {"path": str(tmp_path / "outbox.db"), "resend_after_s": 60},
            "heartbeat_s": 3600,
        }
    )
    gateway = GatewayStandIn(mosquitto_broker, kiosk_id)
    agent = KioskAgent(config, reader=MalibuReader(), valuer=ManualValuer())
    agent.start(wait_s=10)
    assert agent.uplink.connected
    try:
        yield agent, gateway
    finally:
        agent.stop()
        gateway.close()


def queue_event(agent: KioskAgent, detail: str) -> str:
    item = agent.outbox.put(Channel.EVENTS, EventBody(kind=EventKind.COMMAND_DONE, detail=detail))
    agent.uplink.kick()
    return item.message_id


def assert_uplink_alive(agent: KioskAgent) -> None:
    health = agent.uplink.health()
    assert health.network_thread and health.sender_thread and health.connected, health


def test_a_receipt_while_the_outbox_is_read_only_is_applied_once_it_is_writable(
    kiosk: tuple[KioskAgent, GatewayStandIn],
) -> None:
    agent, gateway = kiosk
    before = queue_event(agent, "before")
    wait_for(lambda: gateway.got(before), "the first event at the gateway")

    pragma(agent.outbox, "PRAGMA query_only = ON")  # every write: SQLITE_READONLY
    gateway.receipt(before)
    wait_for(lambda: agent.uplink.health().unapplied_receipts == 1, "the receipt to be held")
    assert before in agent.outbox.pending_ids()
    assert agent.outbox.disk_alarm
    assert agent.outbox.fault is not None and "writable" in agent.outbox.fault
    assert not agent.health().ok
    with pytest.raises(OutboxStorageError):
        agent.outbox.put(Channel.EVENTS, EventBody(kind=EventKind.COMMAND_DONE))
    time.sleep(1.0)  # the sender retries meanwhile, and backs off
    assert_uplink_alive(agent)

    pragma(agent.outbox, "PRAGMA query_only = OFF")
    # No second receipt: the one held in memory is applied on the sender's next attempt.
    wait_for(lambda: before not in agent.outbox.pending_ids(), "the held receipt to be applied")
    after = queue_event(agent, "after")
    wait_for(lambda: gateway.got(after), "an event queued after the fault")
    gateway.receipt(after)
    wait_for(lambda: after not in agent.outbox.pending_ids(), "the second receipt")
    assert not agent.outbox.disk_alarm and agent.outbox.fault is None
    assert agent.uplink.health().unapplied_receipts == 0
    assert_uplink_alive(agent)


def test_a_full_outbox_keeps_a_finished_appraisal_until_it_has_room(
    kiosk: tuple[KioskAgent, GatewayStandIn],
) -> None:
    agent, gateway = kiosk
    with agent.outbox._lock:
        pages = agent.outbox._db.execute("PRAGMA page_count").fetchone()[0]
    pragma(agent.outbox, f"PRAGMA max_page_count = {pages}")  # no room to grow: SQLITE_FULL
    for size in (4000, 0):  # fill what free pages are left, down to the smallest message
        with pytest.raises(OutboxFullError):
            for _ in range(200):
                agent.outbox.put(
                    Channel.EVENTS, EventBody(kind=EventKind.COMMAND_DONE, detail="x" * size)
                )
    assert agent.outbox.disk_alarm and "free disk space" in str(agent.outbox.fault)

    done: list[str] = []
    inspection = threading.Thread(
        target=lambda: done.append(agent.appraise(hints={}).appraisal_id), daemon=True
    )
    inspection.start()
    time.sleep(1.5)  # the inspection is over; its appraisal waits for room
    assert not done and inspection.is_alive()
    assert_uplink_alive(agent)

    pragma(agent.outbox, "PRAGMA max_page_count = 1073741823")  # room again
    inspection.join(35)
    assert done, "the appraisal was not stored once the outbox had room"
    ids = agent.outbox.appraisal_ids()
    assert ids == done
    with agent.outbox._lock:
        (message_id,) = agent.outbox._db.execute(
            "SELECT message_id FROM appraisal_log WHERE appraisal_id = ?", (done[0],)
        ).fetchone()
    wait_for(lambda: gateway.got(message_id), "the appraisal at the gateway")
    assert not agent.outbox.disk_alarm
    assert_uplink_alive(agent)


class DamagedConnection:
    """The outbox's connection, answering like a damaged file while ``damaged`` is set."""

    def __init__(self, real: sqlite3.Connection) -> None:
        self.real = real
        self.damaged = threading.Event()

    def _check(self) -> None:
        if self.damaged.is_set():
            raise sqlite3.DatabaseError("database disk image is malformed")

    def execute(self, *args: Any) -> sqlite3.Cursor:
        self._check()
        return self.real.execute(*args)

    def executemany(self, *args: Any) -> sqlite3.Cursor:
        self._check()
        return self.real.executemany(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_a_damaged_database_pauses_sending_and_it_resumes_once_readable(
    kiosk: tuple[KioskAgent, GatewayStandIn],
) -> None:
    agent, gateway = kiosk
    connection = DamagedConnection(agent.outbox._db)
    with agent.outbox._lock:
        agent.outbox._db = connection  # type: ignore[assignment]
    first = queue_event(agent, "first")
    wait_for(lambda: gateway.got(first), "the first event at the gateway")

    connection.damaged.set()
    agent.uplink.kick()  # the sender reads due() and gets the error
    gateway.receipt(first)
    wait_for(lambda: agent.outbox.fault is not None, "the fault to be noticed")
    assert "damaged" in str(agent.outbox.fault) and agent.health().disk_alarm
    wait_for(lambda: agent.uplink.health().unapplied_receipts == 1, "the receipt to be held")
    time.sleep(1.0)
    assert_uplink_alive(agent)

    connection.damaged.clear()  # say, the file was restored from the kiosk's backup
    wait_for(lambda: first not in agent.outbox.pending_ids(), "the held receipt to be applied")
    second = queue_event(agent, "second")
    wait_for(lambda: gateway.got(second), "an event queued after the fault")
    assert agent.outbox.fault is None
    assert_uplink_alive(agent)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_if_the_network_thread_ends_anyway_it_is_started_again(
    kiosk: tuple[KioskAgent, GatewayStandIn],
) -> None:
    agent, gateway = kiosk
    client = agent.uplink._client
    first_thread = client._thread
    crashed = threading.Event()

    def crash(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        crashed.set()
        raise SystemExit  # not an Exception: neither our guard nor paho stops it

    original, client.on_message = client.on_message, crash
    gateway.receipt(new_id())
    wait_for(crashed.is_set, "the network thread to end")
    client.on_message = original
    wait_for(
        lambda: client._thread is not None and client._thread is not first_thread,
        "a new network thread",
    )
    wait_for(lambda: agent.uplink.connected, "the uplink to be connected again")
    later = queue_event(agent, "later")
    wait_for(lambda: gateway.got(later), "an event after the restart")
    gateway.receipt(later)
    wait_for(lambda: later not in agent.outbox.pending_ids(), "its receipt")
