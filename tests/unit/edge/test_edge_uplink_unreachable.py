"""A kiosk whose broker cannot be reached says so, once a minute, and keeps trying."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from edge.outbox import SqliteOutbox
from edge.protocol import MqttEndpoint
from edge.uplink import MqttUplink
from tests.support.services import free_port

KIOSK = "dlr-001-k1"


def test_an_unreachable_broker_is_logged_at_once_and_not_on_every_retry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = SqliteOutbox(tmp_path / "outbox.db", kiosk_id=KIOSK)
    port = free_port()  # nothing listens there
    uplink = MqttUplink(
        MqttEndpoint.parse(f"mqtt://127.0.0.1:{port}"),
        kiosk_id=KIOSK,
        outbox=outbox,
        on_command=lambda _command: None,
    )
    uplink._client.reconnect_delay_set(min_delay=1, max_delay=1)
    with caplog.at_level(logging.WARNING, logger="edge.uplink.paho"):
        uplink.start(wait_s=None)
        try:
            deadline = time.monotonic() + 10
            while uplink._failed_attempts < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            uplink.stop(timeout=1)
            outbox.close()
    assert uplink._failed_attempts >= 3  # paho kept retrying
    warnings = [r.getMessage() for r in caplog.records if "cannot reach" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert f"127.0.0.1:{port}" in warnings[0] and "outbox" in warnings[0]
