"""Presence through a real Mosquitto and the real ingest worker.

A kiosk whose connection dies must turn ``offline`` at the gateway, every time, and ``online``
again when it is back. The gateway keeps the newest status by ``created_at`` and stores a
``message_id`` once, so each connection's last will must be a message of its own, newer than
that connection's ``online``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from edge.outbox import SqliteOutbox
from edge.protocol import MqttEndpoint
from edge.uplink import MqttUplink
from gateway.db import Kiosk, make_engine, migrate
from gateway.ingest import IngestWorker
from tests.support.services import CuttableProxy, Mosquitto

pytestmark = pytest.mark.mosquitto

KIOSK = "presence-k1"


def _wait_state(engine: Engine, want: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with Session(engine) as session:
            kiosk = session.get(Kiosk, KIOSK)
            state = None if kiosk is None else kiosk.state
        if state == want:
            return
        assert time.monotonic() < deadline, f"the kiosk is {state!r} at the gateway, not {want!r}"
        time.sleep(0.05)


def test_a_dropped_kiosk_turns_offline_each_time(
    tmp_path: Path, mosquitto_broker: Mosquitto
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'gw.db'}")
    migrate(engine)
    worker = IngestWorker(
        MqttEndpoint.parse(mosquitto_broker.url),
        session_factory=lambda: Session(engine),
        worker_id="presence",
    )
    proxy = CuttableProxy(mosquitto_broker.port)
    outbox = SqliteOutbox(tmp_path / "outbox.db", kiosk_id=KIOSK)
    uplink = MqttUplink(
        MqttEndpoint.parse(f"mqtt://127.0.0.1:{proxy.port}"),
        kiosk_id=KIOSK,
        outbox=outbox,
        on_command=lambda _envelope: None,
    )
    worker.start()
    try:
        uplink.start(wait_s=None)
        # Twice: the second will must not be taken for a duplicate of the first.
        for _ in range(2):
            _wait_state(engine, "online")
            proxy.cut()  # no DISCONNECT packet: the broker publishes the last will
            _wait_state(engine, "offline")
        _wait_state(engine, "online")  # paho reconnects through the proxy
        uplink.stop()
        _wait_state(engine, "stopped")
    finally:
        uplink.stop()
        proxy.close()
        worker.stop()
        outbox.close()
        engine.dispose()
