"""The simulator's pure parts: scenario schema and the ELM327 command interpreter."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.obd.decoders import FrameKind, Framing, decode_mode01, decode_vin, parse_response
from edge.obd.scenario import Scenario, ScenarioError, bundled_scenarios, load_scenario
from edge.obd.simulator import Elm327Emulator

REQUIRED_SCENARIOS = {
    "malibu_2019",
    "clean_car",
    "mil_on",
    "codes_cleared",
    "no_odometer",
    "vin_ends_zero",
    "clone_v15",
    "slow_adapter",
    "unplugged",
    "unplugged_silent",
    "legacy_iso9141",
    "ignition_off",
    "noisy_bus",
}


def test_every_required_scenario_is_bundled_and_valid() -> None:
    assert set(bundled_scenarios()) >= REQUIRED_SCENARIOS
    for name in bundled_scenarios():
        assert load_scenario(name).name == name


def test_unknown_key_is_rejected_naming_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("name: typo\ndescription: x\nvehicle:\n  odometr_km: 5\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert str(path) in str(caught.value)
    assert "vehicle.odometr_km" in str(caught.value)


def test_unknown_scenario_name_lists_the_bundled_ones() -> None:
    with pytest.raises(ScenarioError, match="malibu_2019"):
        load_scenario("nope")


def test_refusal_reply_must_be_known() -> None:
    with pytest.raises(ValueError, match="must be"):
        Scenario.model_validate(
            {"name": "x", "description": "x", "adapter": {"refuse": {"ATH1": "NO"}}}
        )


def emulator(name: str = "malibu_2019") -> Elm327Emulator:
    return Elm327Emulator(load_scenario(name))


def run(emu: Elm327Emulator, *commands: str) -> list[str]:
    lines: list[str] = []
    for command in commands:
        lines = emu.handle(command)[1]
    return lines


def test_echo_linefeeds_and_prompt_follow_settings() -> None:
    emu = emulator()
    assert emu.render("ATI", emu.handle("ATI")[1]) == "ATI\rELM327 v1.5\r\r>"
    run(emu, "ATE0", "ATL1")
    assert emu.render("ATI", emu.handle("ATI")[1]) == "ELM327 v1.5\r\n\r\n>"


def test_search_then_protocol_number_and_name() -> None:
    emu = emulator()
    assert run(emu, "ATDPN") == ["A0"]
    lines = run(emu, "ATSP0", "0100")
    assert lines[0] == "SEARCHING..."
    assert run(emu, "ATDPN") == ["A6"]
    assert run(emu, "ATDP") == ["AUTO, ISO 15765-4 (CAN 11/500)"]


def test_pinned_wrong_protocol_is_unable_to_connect() -> None:
    emu = emulator()
    assert run(emu, "ATSP7", "0100") == ["UNABLE TO CONNECT"]
    assert run(emu, "ATSP3", "0100") == ["BUS INIT: ...ERROR"]


def test_legacy_pinned_prints_bus_init() -> None:
    emu = emulator("legacy_iso9141")
    lines = run(emu, "ATH1", "ATSP3", "0100")
    assert lines[0] == "BUS INIT: ...OK"
    assert lines[1].startswith("48 6B 10 41 00")


def test_headers_off_by_default_and_on_with_ath1() -> None:
    emu = emulator()
    assert run(emu, "0100")[-1].startswith("41 00")
    assert run(emu, "ATH1", "0100")[-1].startswith("7E8 06 41 00")


def test_spaces_off() -> None:
    emu = emulator()
    assert run(emu, "ATS0", "ATH1", "010C")[-1] == "7E804410C0BE0000000"


def test_empty_command_repeats_the_last() -> None:
    emu = emulator()
    first = run(emu, "ATH1", "0100", "010C")
    assert run(emu, "") == first


def test_response_count_digit_is_accepted() -> None:
    emu = emulator()
    assert run(emu, "ATH1", "010C1")[-1].startswith("7E8 04 41 0C")


def test_six_pids_per_request_and_not_seven() -> None:
    emu = emulator()
    six = run(emu, "ATH1", "01 0C 05 04 06 07 42")
    values, _ = decode_mode01(parse_response(six, Framing(FrameKind.CAN11, True)))
    assert set(values["7E8"]) == {0x0C, 0x05, 0x04, 0x06, 0x07, 0x42}
    assert run(emu, "01 0C 05 04 06 07 42 01") == ["NO DATA"]


def test_legacy_takes_one_pid_per_request() -> None:
    emu = emulator("legacy_iso9141")
    assert run(emu, "010C05") == ["SEARCHING...", "NO DATA"]
    assert run(emu, "010C")[0].startswith("41 0C")


def test_unsupported_pid_and_mode_answer_no_data() -> None:
    emu = emulator("no_odometer")
    assert run(emu, "01A6")[-1] == "NO DATA"
    assert run(emu, "0A")[0] == "4A 00"  # supports mode 0A, no codes
    assert run(emu, "0902")[0] == "014"
    assert run(emu, "22F190") == ["NO DATA"]


def test_clone_refuses_ath1_and_stays_headerless() -> None:
    emu = emulator("clone_v15")
    assert emu.handle("ATH1") == ("refused", ["ERROR"])
    assert emu.handle("ATL0") == ("refused", [])
    lines = run(emu, "0902")
    framing = Framing(FrameKind.CAN11, headers=False)
    assert decode_vin(parse_response(lines, framing), framing).vin == "1G1ZB5ST0KF123456"


def test_ignition_off_is_unable_to_connect_but_adapter_answers() -> None:
    emu = emulator("ignition_off")
    assert run(emu, "ATRV") == ["12.3V"]
    assert run(emu, "0100") == ["SEARCHING...", "UNABLE TO CONNECT"]


def test_transient_error_happens_once() -> None:
    emu = emulator("noisy_bus")
    answers = [run(emu, "010C") for _ in range(5)]
    assert answers[3] == ["CAN ERROR"]
    assert answers[4] != ["CAN ERROR"]


def test_unknown_at_command_is_question_mark() -> None:
    assert run(emulator(), "ATXYZ") == ["?"]
