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


def test_a_later_file_may_change_the_obd_transport_type(tmp_path: Path) -> None:
    # Deep-merging kept the site's tcp host and port under the kiosk's serial transport, so the
    # override was refused ("host: extra inputs", "port: should be a string") in the site file.
    site = _write(
        tmp_path, "site.yaml", "obd:\n  transport: {type: tcp, host: 10.0.0.5, port: 35000}\n"
    )
    kiosk = _write(
        tmp_path, "kiosk.yaml", "kiosk_id: dlr-042-k1\nobd: {transport: {type: serial}}\n"
    )
    assert load_config([site, kiosk]).obd.port_url == "/dev/ttyUSB0"
    # The same type is still merged key by key.
    port = _write(tmp_path, "port.yaml", "obd: {transport: {type: tcp, port: 35001}}\n")
    assert load_config([site, kiosk, site, port]).obd.port_url == "socket://10.0.0.5:35001"


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path: Path) -> None:
    # YAML keeps the last of two equal keys silently: one of the two settings was lost.
    path = _write(
        tmp_path,
        "twice.yaml",
        "kiosk_id: dlr-042-k1\nobd:\n  timeout_s: 30\n  timeout_s: 90\nkiosk_id: dlr-043-k1\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config([path])
    found = {(i.key, i.line): i.message for i in info.value.issues}
    KEEP_ONE = "keep one of the entries; YAML would silently use the last"  # noqa: N806
    assert found == {
        ("obd.timeout_s", 4): "duplicate key, given twice (first on line 3); " + KEEP_ONE,
        ("kiosk_id", 5): "duplicate key, given twice (first on line 1); " + KEEP_ONE,
    }


def test_a_file_that_is_not_utf8_is_an_error_naming_it_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"kiosk_id: dlr-042-k1\nsite: Caf\xe9 Motors\n")
    with pytest.raises(ConfigError) as info:
        load_config([path])
    [issue] = info.value.issues
    assert (issue.file, issue.line) == (str(path), 2)
    assert "not UTF-8" in issue.message
    assert main(["config", "validate", str(path)]) == 1
    assert f"{path}:2" in capsys.readouterr().err


def test_yaml_syntax_error_names_the_file_not_a_unicode_string(tmp_path: Path) -> None:
    path = _write(tmp_path, "syntax.yaml", "kiosk_id: dlr-042-k1\nmqtt: {url: x\nobd: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config([path])
    [issue] = info.value.issues
    assert issue.file == str(path) and issue.line == 3
    assert "<unicode string>" not in issue.message


def test_transport_without_a_type_says_to_add_one(tmp_path: Path) -> None:
    path = _write(tmp_path, "notype.yaml", "kiosk_id: dlr-042-k1\nobd: {transport: {port: 1}}\n")
    with pytest.raises(ConfigError, match="add a type"):
        load_config([path])
