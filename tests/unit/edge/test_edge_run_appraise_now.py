"""`kioskmatch kiosk run --appraise-now` without a reachable adapter: exit 2 and a sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.processes import kioskmatch
from tests.support.services import free_port


def _config(tmp_path: Path, transport: str) -> Path:
    path = tmp_path / "kiosk.yaml"
    path.write_text(
        "kiosk_id: dlr-042-k1\n"
        f"mqtt: {{url: 'mqtt://127.0.0.1:{free_port()}'}}\n"
        f"outbox: {{path: {tmp_path / 'outbox.db'}}}\n"
        f"obd: {{transport: {transport}, timeout_s: 5}}\n"
    )
    return path


@pytest.mark.parametrize(
    ("transport", "named"),
    [
        ("{type: serial, port: /dev/ttyKIOSKMATCH-NONE}", "/dev/ttyKIOSKMATCH-NONE"),
        ("{type: tcp, host: 127.0.0.1, port: PORT}", "socket://127.0.0.1:PORT"),
    ],
)
def test_no_adapter_is_an_unreachable_device(tmp_path: Path, transport: str, named: str) -> None:
    port = str(free_port())  # nothing listens there
    config = _config(tmp_path, transport.replace("PORT", port))
    result = kioskmatch("kiosk", "run", "--config", str(config), "--appraise-now", timeout=60)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    line = next(
        (x for x in result.stderr.splitlines() if x.startswith("error: ")), result.stderr[-2000:]
    )
    assert line.startswith("error: the appraisal could not read the vehicle: ")
    assert named.replace("PORT", port) in line
    assert "kiosk dlr-042-k1 stopped" in result.stderr  # stopped in order, the outbox closed
