"""``kioskmatch simulate`` as other tools run it: exit codes, messages and progress."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.processes import GatewayProcess, _env, kioskmatch
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


def test_its_own_outbox_folder_is_removed_once_empty_and_kept_while_not(
    tmp_path: Path, mosquitto_broker: Mosquitto
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = _env(TMPDIR=str(temp))
    args = ("--broker", mosquitto_broker.url, "--kiosks", "1", "--appraisals", "2")
    # No gateway: nothing is receipted, so the appraisals stay, and the run says where.
    kept = kioskmatch("simulate", *args, "--fast-valuation", "--timeout", "3", env=env)
    assert kept.returncode == 1, kept.stderr[-2000:]
    (folder,) = temp.glob("kioskmatch-sim-*")
    assert f"kept in {folder}; run again with --outbox-dir {folder}" in kept.stderr
    gateway = GatewayProcess(tmp_path / "gw", mosquitto_broker.url)
    gateway.start()
    try:
        sent = kioskmatch("simulate", *args, "--fast-valuation", env=env)
        resent = kioskmatch(
            "simulate", *args[:4], "--appraisals", "0", "--outbox-dir", str(folder),
            "--fast-valuation", env=env,
        )  # fmt: skip
    finally:
        gateway.stop()
    assert sent.returncode == 0, sent.stderr[-2000:]
    assert resent.returncode == 0, resent.stderr[-2000:]
    assert "2 appraisal(s) from an earlier run" in resent.stderr
    assert list(temp.glob("kioskmatch-sim-*")) == [folder]  # the second run's own folder is gone
