"""``kioskmatch simulate`` as other tools run it: exit codes, messages and progress."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.processes import GatewayProcess, kioskmatch
from tests.support.services import Mosquitto, free_port

pytestmark = pytest.mark.mosquitto


def test_an_unreachable_broker_is_bad_input(tmp_path: Path) -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens there
    result = kioskmatch(
        "simulate",
        *("--broker", url, "--kiosks", "3", "--appraisals", "1"),
        *("--outbox-dir", str(tmp_path), "--fast-valuation", "--connect-timeout", "2"),
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"cannot reach the MQTT broker at {url}" in result.stderr


def test_exits_0_once_receipted_and_shows_progress(
    tmp_path: Path, mosquitto_broker: Mosquitto
) -> None:
    gateway = GatewayProcess(tmp_path / "gw", mosquitto_broker.url)
    gateway.start()
    try:
        result = kioskmatch(
            "simulate",
            *("--broker", mosquitto_broker.url, "--kiosks", "2", "--appraisals", "5"),
            *("--outbox-dir", str(tmp_path / "kiosks"), "--fast-valuation"),
        )
    finally:
        gateway.stop()
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("10 appraisals from 2 kiosks receipted in ")
    # Progress, not each appraisal's steps (N x M x 3 lines).
    assert "10/10 appraisals receipted" in result.stderr
    assert "reading_obd" not in result.stderr
