"""Kiosk configuration: merged files, and errors that name file, line, key, value and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_config import ConfigError, KioskConfig, load_config
from kioskmatch.cli import main


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_site_then_kiosk_overrides(tmp_path: Path) -> None:
    site = _write(
        tmp_path,
        "site.yaml",
        "site: Lakeside\nmqtt: {url: 'mqtt://broker:1883'}\nkiosk_id: site-default\n",
    )
    kiosk = _write(
        tmp_path,
        "kiosk.yaml",
        "kiosk_id: dlr-042-k1\nobd:\n  transport: {type: tcp, host: 10.0.0.5}\n",
    )
    config = load_config([site, kiosk])
    assert (config.kiosk_id, config.site, config.mqtt.url) == (
        "dlr-042-k1",
        "Lakeside",
        "mqtt://broker:1883",
    )
    assert config.obd.port_url == "socket://10.0.0.5:35000"


def test_errors_name_file_line_key_and_value(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "bad.yaml",
        "kiosk_id: dlr-042-k1\nmqtt:\n  url: http://broker\n"
        "obd:\n  transport:\n    type: serial\n    prot: /dev/x\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config([path])
    issues = {i.key: i for i in info.value.issues}
    assert issues["mqtt.url"].line == 3 and issues["mqtt.url"].value == "http://broker"
    assert "mqtt://" in issues["mqtt.url"].message
    assert (
        issues["obd.transport.prot"].line == 7
        and "spelling" in issues["obd.transport.prot"].message
    )
    assert all(i.file == str(path) for i in info.value.issues)


def test_cross_field_rule_is_a_sentence(tmp_path: Path) -> None:
    path = _write(tmp_path, "cam.yaml", "kiosk_id: dlr-042-k1\ncamera: {source: {type: v4l2}}\n")
    with pytest.raises(ConfigError, match="no gateway") as info:
        load_config([path])
    assert "got" not in str(info.value)


def test_validate_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _write(tmp_path, "good.yaml", "kiosk_id: dlr-042-k1\n")
    bad = _write(tmp_path, "bad.yaml", "kiosk_id: NO\n")
    assert main(["config", "validate", str(good)]) == 0
    assert main(["config", "validate", str(bad)]) == 1
    assert "bad.yaml:1: kiosk_id" in capsys.readouterr().err


def test_schema_has_descriptions_and_forbids_unknown_keys() -> None:
    schema = KioskConfig.model_json_schema()
    assert schema["additionalProperties"] is False
    assert schema["properties"]["kiosk_id"]["description"]
