"""`kioskmatch kiosk run`: what stops the agent from starting is a sentence, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from kioskmatch.cli import main


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "kiosk.yaml"
    path.write_text(
        "kiosk_id: dlr-042-k1\n"
        "mqtt: {url: 'mqtt://127.0.0.1:9'}\n"
        f"outbox: {{path: {tmp_path / 'outbox.db'}}}\n" + extra
    )
    return path


def test_a_damaged_outbox_is_named_with_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    (tmp_path / "outbox.db").write_bytes(b"this is not a database, it is a damaged file" * 100)
    assert main(["kiosk", "run", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"cannot open the outbox {tmp_path / 'outbox.db'}" in err
    assert "move it aside" in err
    assert "Traceback" not in err
    # Nothing was deleted: the undelivered appraisals it may hold are the operator's to recover.
    assert (tmp_path / "outbox.db").read_bytes().startswith(b"this is not a database")


def test_a_second_agent_on_one_outbox_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.outbox import SqliteOutbox

    config = _config(tmp_path)
    running = SqliteOutbox(tmp_path / "outbox.db", kiosk_id="dlr-001-k1")
    try:
        assert main(["kiosk", "run", "--config", str(config)]) == 1
    finally:
        running.close()
    err = capsys.readouterr().err
    assert f"the outbox {tmp_path / 'outbox.db'} is in use by another kiosk agent" in err
    assert "Traceback" not in err


def test_a_missing_tls_file_is_named_by_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    config.write_text(
        config.read_text().replace(
            "mqtt: {url: 'mqtt://127.0.0.1:9'}",
            f"mqtt: {{url: 'mqtts://127.0.0.1:9', ca: {tmp_path / 'missing-ca.pem'}}}",
        )
    )
    assert main(["kiosk", "run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"mqtt.ca: {tmp_path / 'missing-ca.pem'} is not a readable file" in err
