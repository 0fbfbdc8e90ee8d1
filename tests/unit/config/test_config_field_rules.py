"""Kiosk configuration values that validated but could never work: refused, naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_config import ConfigError, KioskConfig, load_config
from firmware_config.schema import ObdConfig

GOOD = "kiosk_id: dlr-042-k1\n"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kiosk.yaml"
    path.write_text(GOOD + text, encoding="utf-8")
    return path


def _issue(path: Path) -> tuple[int | None, str, str]:
    with pytest.raises(ConfigError) as info:
        load_config([path])
    [issue] = info.value.issues
    return issue.line, issue.key, issue.message


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ('obd:\n  protocol: "Z"\n', 3, "obd.protocol", "1 to 9"),
        ('obd:\n  protocol: "10"\n', 3, "obd.protocol", "1 to 9"),
        ('obd:\n  protocol: ""\n', 3, "obd.protocol", "1 to 9"),
        ('obd:\n  protocol: "A"\n', 3, "obd.protocol", "J1939"),
        ('obd:\n  protocol: "b"\n', 3, "obd.protocol", "user-defined"),
        ("obd:\n  protocol: 12\n", 3, "obd.protocol", "1 to 9"),
        ("obd:\n  protocol: true\n", 3, "obd.protocol", "1 to 9"),
        ('obd:\n  transport: {type: serial, port: ""}\n', 3, "obd.transport.port", "empty"),
        ("obd:\n  transport: {type: bluetooth, port: '  '}\n", 3, "obd.transport.port", "empty"),
        (
            "obd:\n  transport: {type: serial, port: ' /dev/ttyUSB0'}\n",
            3,
            "obd.transport.port",
            "spaces",
        ),
        ("obd:\n  transport: {type: tcp, host: ''}\n", 3, "obd.transport.host", "empty"),
        (
            "obd:\n  transport: {type: tcp, host: '10.0.0.5:35000'}\n",
            3,
            "obd.transport.host",
            "port",
        ),
        (
            "obd:\n  transport: {type: tcp, host: 'socket://10.0.0.5'}\n",
            3,
            "obd.transport.host",
            "host name or address",
        ),
        ('outbox:\n  path: ""\n', 3, "outbox.path", "empty"),
        ("outbox:\n  path: var/kiosk/\n", 3, "outbox.path", "folder"),
        ("outbox:\n  path: .\n", 3, "outbox.path", "folder"),
        ("mqtt:\n  ca: ''\n", 3, "mqtt.ca", "empty"),
    ],
)
def test_values_that_cannot_work_are_refused_naming_the_field(
    tmp_path: Path, text: str, line: int, key: str, words: str
) -> None:
    got_line, got_key, message = _issue(_write(tmp_path, text))
    assert (got_line, got_key) == (line, key)
    assert words in message


@pytest.mark.parametrize(
    ("written", "pinned"),
    [("'6'", "6"), ("6", "6"), ("'0'", None), ("0", None), ("null", None), ("'9'", "9")],
)
def test_protocol_numbers_the_kiosk_reads(tmp_path: Path, written: str, pinned: str | None) -> None:
    config = load_config([_write(tmp_path, f"obd:\n  protocol: {written}\n")])
    assert config.obd.protocol == pinned


def test_the_baud_rate_of_serial_and_bluetooth_transports_reaches_the_obd_config() -> None:
    serial = ObdConfig.model_validate({"transport": {"type": "serial", "baudrate": 115200}})
    assert serial.baudrate == 115200
    bluetooth = ObdConfig.model_validate({"transport": {"type": "bluetooth", "baudrate": 38400}})
    assert bluetooth.baudrate == 38400
    assert ObdConfig.model_validate({"transport": {"type": "serial"}}).baudrate is None
    assert ObdConfig.model_validate({"transport": {"type": "tcp"}}).baudrate is None


def test_an_ipv6_adapter_address_becomes_a_bracketed_socket_url() -> None:
    config = ObdConfig.model_validate({"transport": {"type": "tcp", "host": "fd00::10"}})
    assert config.port_url == "socket://[fd00::10]:35000"


def test_defaults_still_validate() -> None:
    config = KioskConfig.model_validate({"kiosk_id": "dlr-042-k1"})
    assert config.obd.port_url == "/dev/ttyUSB0" and config.outbox.path.name == "outbox.db"


def test_an_empty_camera_folder_path_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "camera:\n  source: {type: folder, path: ''}\n"
        "gateway: {url: 'https://gw.example.com', api_key: abcdefgh12}\n",
    )
    line, key, message = _issue(path)
    assert (line, key) == (3, "camera.source.path") and "empty" in message
