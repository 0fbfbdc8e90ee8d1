"""`kiosk read-obd` and `obd-sim` through their argparse registrars."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from edge.obd import read_vehicle, start_simulator
from edge.obd.cli import register, register_kiosk
from edge.obd.scenario import load_scenario


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kioskmatch")
    sub = parser.add_subparsers(dest="command", required=True)
    kiosk = sub.add_parser("kiosk").add_subparsers(dest="kiosk_command", required=True)
    register_kiosk(kiosk)
    register(sub)
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    return handler(args)


def test_read_obd_json(capsys: pytest.CaptureFixture[str]) -> None:
    with start_simulator("malibu_2019", latency_s=0) as sim:
        status = run_cli(["kiosk", "read-obd", "--port", sim.port, "--json", "--timeout", "20"])
    assert status == 0
    data = json.loads(capsys.readouterr().out)
    assert data["vin"] == "1G1ZB5ST0KF123456"
    assert data["vin_source"] == "obd"
    assert data["vin_valid"] is True
    assert data["odometer_km"]["value"] == 48000.0
    assert data["partial"] is False
    assert data["raw"]


def test_read_obd_partial_is_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    with start_simulator("unplugged", latency_s=0) as sim:
        status = run_cli(["kiosk", "read-obd", "--port", sim.port, "--json", "--no-raw"])
    assert status == 0
    data = json.loads(capsys.readouterr().out)
    assert data["partial"] is True
    assert data["partial_reasons"]
    assert "raw" not in data


def test_read_obd_human_summary(capsys: pytest.CaptureFixture[str]) -> None:
    with start_simulator("mil_on", latency_s=0) as sim:
        assert run_cli(["kiosk", "read-obd", "--port", sim.port]) == 0
    out = capsys.readouterr().out
    assert "1G1ZB5ST0KF123456" in out
    assert "MIL:         ON" in out
    assert "P0420 (permanent, 7E8)" in out


def test_read_obd_human_summary_of_a_partial_read_claims_nothing_unread(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Pulled out after 0100, 0101 and 0902 and 03: pending and permanent codes and the
    # since-clear PIDs were never read; the summary must not call them clean.
    car = load_scenario("malibu_2019")
    adapter = car.adapter.model_copy(update={"unplug_after_requests": 2, "unplug_mode": "close"})
    with start_simulator(car.model_copy(update={"adapter": adapter}), latency_s=0) as sim:
        assert run_cli(["kiosk", "read-obd", "--port", sim.port, "--timeout", "20"]) == 0
    out = capsys.readouterr().out
    assert "Monitors:    ? (not_read)" in out
    assert "not known: stored not_read, pending not_read, permanent not_read" in out
    assert "Odometer:    not_read" in out
    assert "PARTIAL" in out


def test_read_obd_missing_adapter_is_exit_2_naming_port(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    port = "/dev/ttyUSB-kiosk-missing"
    assert run_cli(["kiosk", "read-obd", "--port", port, "--json", "--timeout", "5"]) == 2
    data = json.loads(capsys.readouterr().out)
    assert data["error"] == "AdapterNotFound"
    assert data["vin"] is None
    assert port in data["message"]
    assert port in caplog.text
    assert "USB" in caplog.text


def test_read_obd_ignition_off_is_exit_2(caplog: pytest.LogCaptureFixture) -> None:
    with start_simulator("ignition_off", latency_s=0) as sim:
        status = run_cli(["kiosk", "read-obd", "--port", sim.port, "--timeout", "3"])
    assert status == 2
    assert "ignition" in caplog.text
    assert sim.port in caplog.text


def test_obd_sim_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["obd-sim", "--list"]) == 0
    out = capsys.readouterr().out
    assert "malibu_2019" in out
    assert "clone_v15" in out


def test_obd_sim_unknown_scenario_is_exit_2() -> None:
    assert run_cli(["obd-sim", "--scenario", "no_such_car"]) == 2


SIM_SCRIPT = """
import argparse, sys
from edge.obd.cli import register
parser = argparse.ArgumentParser()
register(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""


def test_obd_sim_serves_tcp_until_terminated() -> None:
    command = [sys.executable, "-c", SIM_SCRIPT, "obd-sim", "--scenario", "vin_ends_zero"]
    with subprocess.Popen(
        [*command, "--tcp", "0", "--json"], stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            announced = json.loads(process.stdout.readline())
            assert announced["scenario"] == "vin_ends_zero"
            reading = read_vehicle(announced["port"], timeout=20)
            assert reading.vin == "2T1BURHE5KC123450"
        finally:
            process.terminate()
            assert process.wait(timeout=10) == 0
