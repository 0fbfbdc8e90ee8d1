"""Hostile or mistyped YAML in a kiosk configuration: refused with file, line and key, never a
traceback, never a hang, never a value YAML 1.1 would silently misread."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_config import ConfigError, load_config
from firmware_config.loader import MAX_CONFIG_BYTES
from kioskmatch.cli import main
from kioskmatch.safe_yaml import (
    MAX_DEPTH,
    MAX_PROBLEMS,
    MAX_VALUES,
    YamlDocumentError,
    load_document,
)

GOOD = "kiosk_id: dlr-042-k1\n"


def _write(tmp_path: Path, text: str, name: str = "kiosk.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _issues(path: Path) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as info:
        load_config([path])
    assert all(i.file == str(path) for i in info.value.issues)
    return [(i.line, i.key, i.message) for i in info.value.issues]


@pytest.mark.parametrize("text", ["x: &a [*a]\n", "obd: &a [*a]\n", "x: &a {k: *a}\n"])
def test_an_alias_inside_its_own_anchor_is_refused_not_a_recursion_error(
    tmp_path: Path, text: str
) -> None:
    [(line, key, message)] = _issues(_write(tmp_path, GOOD + text))
    assert line == 2 and key.startswith(("x", "obd"))
    assert "refers to a collection that contains it" in message


def test_an_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    # 489 bytes that expand to 10 * 2**25 values if every alias is built out.
    lines = [GOOD, "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"]
    lines += [f"a{n}: &a{n} [*a{n - 1}, *a{n - 1}]\n" for n in range(1, 26)]
    path = _write(tmp_path, "".join(lines))
    started = time.monotonic()
    [(line, key, message)] = _issues(path)
    assert time.monotonic() - started < 5
    assert f"more than {MAX_VALUES:,} values" in message and "aliases" in message
    assert line is not None and key.startswith("a")


def test_aliases_within_the_limit_still_work(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        GOOD + "mqtt: &m {keepalive_s: 45}\nobd: {timeout_s: &t 30}\nheartbeat_s: *t\n",
    )
    config = load_config([path])
    assert (config.mqtt.keepalive_s, config.obd.timeout_s, config.heartbeat_s) == (45, 30, 30)


@pytest.mark.parametrize(("char", "code"), [("\x01", "U+0001"), ("\x00", "U+0000")])
def test_a_control_character_is_refused_at_its_line_and_column(
    tmp_path: Path, char: str, code: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, GOOD + f"site: Lake{char}side\n")
    with pytest.raises(ConfigError) as info:
        load_config([path])
    [issue] = info.value.issues
    assert (issue.file, issue.line, issue.column) == (str(path), 2, 11)
    assert code in issue.message
    assert main(["config", "validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2:11:" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ("heartbeat_s: !!int abc\n", 2, "heartbeat_s", "cannot be read as int"),
        ("heartbeat_s: !!float x\n", 2, "heartbeat_s", "cannot be read as float"),
        ("site: !!binary aGVsbG8=\n", 2, "site", "tag"),
        ("site: !!python/name:os.system x\n", 2, "site", "tag"),
        ("site: !custom x\n", 2, "site", "tag"),
        ("mqtt: !!set {a, b}\n", 2, "mqtt", "tag"),
        ("mqtt: {keepalive_s: 0750}\n", 2, "mqtt.keepalive_s", "not a decimal integer"),
        ("mqtt: {keepalive_s: 0x1F}\n", 2, "mqtt.keepalive_s", "not a decimal integer"),
        ("mqtt: {keepalive_s: 0b101}\n", 2, "mqtt.keepalive_s", "not a decimal integer"),
        ("heartbeat_s: 1:20\n", 2, "heartbeat_s", "base 60"),
        ("heartbeat_s: 1:20.5\n", 2, "heartbeat_s", "base-60"),
        ("site: 12:30\n", 2, "site", "base 60"),
    ],
)
def test_scalars_yaml_would_misread_are_refused_at_their_key(
    tmp_path: Path, text: str, line: int, key: str, words: str
) -> None:
    [(got_line, got_key, message)] = _issues(_write(tmp_path, GOOD + text))
    assert (got_line, got_key) == (line, key)
    assert words in message


def test_a_5000_digit_integer_is_refused_with_a_short_message(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD + "heartbeat_s: " + "9" * 5000 + "\n")
    [(line, key, message)] = _issues(path)
    assert (line, key) == (2, "heartbeat_s")
    assert len(message) < 400


def test_a_long_float_is_refused_as_not_finite(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD + "outbox: {max_age_s: " + "9" * 400 + ".0}\n")
    [(line, key, message)] = _issues(path)
    assert (line, key) == (2, "outbox.max_age_s") and "finite" in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("heartbeat_s: .nan\n", "heartbeat_s"),
        ("outbox: {max_age_s: .inf}\n", "outbox.max_age_s"),
        ("obd: {timeout_s: .NaN}\n", "obd.timeout_s"),
    ],
)
def test_nan_and_infinity_are_refused(tmp_path: Path, text: str, key: str) -> None:
    [(_line, got_key, message)] = _issues(_write(tmp_path, GOOD + text))
    assert got_key == key and "finite" in message


def test_a_quoted_number_is_text_and_an_underscored_decimal_is_a_number(tmp_path: Path) -> None:
    path = _write(
        tmp_path, GOOD + "config_version: '0750'\nsite: '12:30'\noutbox: {max_bytes: 5_000_000}\n"
    )
    config = load_config([path])
    assert (config.config_version, config.site, config.outbox.max_bytes) == (
        "0750",
        "12:30",
        5_000_000,
    )


def test_a_date_for_a_text_field_stays_the_text_written(tmp_path: Path) -> None:
    config = load_config([_write(tmp_path, GOOD + "config_version: 2024-05-01\n")])
    assert config.config_version == "2024-05-01"


def test_merge_keys_are_refused_with_what_to_write_instead(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD + "mqtt:\n  url: mqtt://h:1883\n  <<: {keepalive_s: 45}\n")
    [(line, key, message)] = _issues(path)
    assert (line, key) == (4, "mqtt")
    assert "merge keys" in message and "write the keys out" in message


def test_a_key_that_is_not_text_is_refused(tmp_path: Path) -> None:
    [(line, _key, message)] = _issues(_write(tmp_path, GOOD + "? [a, b]\n: 1\n"))
    assert line == 2 and "key" in message


def test_a_numeric_key_is_an_unknown_key_not_a_type_error(tmp_path: Path) -> None:
    [(line, key, message)] = _issues(_write(tmp_path, GOOD + "1: 2\n"))
    assert (line, key) == (2, "1") and "spelling" in message


def test_deep_nesting_is_refused_naming_the_limit(tmp_path: Path) -> None:
    for depth in (MAX_DEPTH + 1, 5000):
        path = _write(tmp_path, GOOD + "x: " + "[" * depth + "]" * depth + "\n")
        [(line, _key, message)] = _issues(path)
        assert line == 2 and f"more than {MAX_DEPTH} levels" in message


def test_an_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD + "#" * MAX_CONFIG_BYTES + "\n")
    [(line, key, message)] = _issues(path)
    assert line is None and key == "(file)" and f"{MAX_CONFIG_BYTES:,} bytes" in message


def test_several_documents_in_one_file_are_a_syntax_error(tmp_path: Path) -> None:
    [(line, key, message)] = _issues(_write(tmp_path, GOOD + "---\nsite: x\n"))
    assert key == "(syntax)" and line == 2 and "single document" in message


def test_every_problem_in_the_file_is_reported_at_once(tmp_path: Path) -> None:
    path = _write(
        tmp_path, GOOD + "heartbeat_s: 0750\nsite: !!binary aGk=\nobd: {timeout_s: 1:00}\n"
    )
    assert [(line, key) for line, key, _ in _issues(path)] == [
        (2, "heartbeat_s"),
        (3, "site"),
        (4, "obd.timeout_s"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "x: &a [*a]\n",
        "site: a\x01b\n",
        "heartbeat_s: !!int abc\n",
        "heartbeat_s: " + "1" * 5000 + "\n",
        "x: " + "[" * 3000 + "]" * 3000 + "\n",
    ],
)
def test_validate_command_reports_hostile_files_without_a_traceback(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, GOOD + text)
    assert main(["config", "validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}:") and "Traceback" not in err


# Pieces of YAML syntax, joined at random: tags, anchors, flow and block collections, numbers in
# other bases, characters YAML refuses.
YAMLISH = st.lists(
    st.sampled_from(
        [
            *"ab01:-[]{}&*!<>|'\"#,.?~ \n\t\x00\x01\u2028",
            "!!int ",
            "!!binary ",
            "&a ",
            "*a",
            "<<: ",
            "0750",
            "1:20",
            "kiosk_id: dlr-042-k1\n",
            "obd:\n  ",
        ]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=YAMLISH)
def test_any_text_is_a_document_or_problems_with_places(text: str) -> None:
    try:
        document = load_document(text)
    except YamlDocumentError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.line is None or problem.line >= 1
            assert problem.message and problem.fix
        return
    assert all(line >= 1 and column >= 1 for line, column in document.marks.values())


@settings(max_examples=200, deadline=None)
@given(text=YAMLISH)
def test_load_config_raises_nothing_but_config_error(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "kiosk.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config([path])
    except ConfigError as exc:
        assert exc.issues


def test_an_alias_bomb_of_bad_values_stops_at_a_hundred_problems(tmp_path: Path) -> None:
    lines = [GOOD, "a0: &a0 [!x y, !x y, !x y, !x y, !x y, !x y, !x y, !x y, !x y, !x y]\n"]
    lines += [f"a{n}: &a{n} [*a{n - 1}, *a{n - 1}]\n" for n in range(1, 26)]
    started = time.monotonic()
    issues = _issues(_write(tmp_path, "".join(lines)))
    assert time.monotonic() - started < 5
    assert len(issues) == MAX_PROBLEMS
