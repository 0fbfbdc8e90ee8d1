"""``kioskmatch programs validate|schema`` (registered on a parser of our own) and the docs."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from gateway.matching import load_program, sample_programs_dir
from gateway.matching.cli import register

DOCS = Path(__file__).resolve().parents[3] / "docs" / "matching.md"


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kioskmatch")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    status: int = args.func(args)
    return status


def test_validate_accepts_the_samples(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["programs", "validate", str(sample_programs_dir()), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["valid"] is True
    assert len(report["files"]) >= 5


def test_validate_reports_line_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    text = (sample_programs_dir() / "lakeshore-cu-auto.yaml").read_text("utf-8")
    bad.write_text(text.replace("cap_apr: 18.00", "cap_apr: 250"), "utf-8")
    assert run(["programs", "validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert re.search(r"bad\.yaml:\d+:\d+: rate_grid\.cap_apr: .*250", err)
    assert run(["programs", "validate", str(bad), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["files"][0]["issues"][0]["field"] == "rate_grid.cap_apr"


def test_validate_missing_path_is_bad_input(tmp_path: Path) -> None:
    assert run(["programs", "validate", str(tmp_path / "nope.yaml")]) == 2


def test_schema_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["programs", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "rate_grid" in schema["properties"]


def test_the_example_in_the_docs_is_a_valid_program(tmp_path: Path) -> None:
    block = re.search(r"```yaml\n(.*?)```", DOCS.read_text("utf-8"), re.S)
    assert block is not None
    path = tmp_path / "example.yaml"
    path.write_text(block.group(1), "utf-8")
    assert load_program(path).program_id == "lakeshore-cu-auto"
