"""``kioskmatch kiosk check-photo FILE [--json]`` through a parser shaped like the lead's."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import pytest

from edge.camera.cli import register_kiosk
from edge.camera.synthetic import blurred, car_scene, darkened


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kioskmatch")
    commands = parser.add_subparsers(dest="command", required=True)
    kiosk = commands.add_parser("kiosk")
    register_kiosk(kiosk.add_subparsers(dest="kiosk_command", required=True))
    args = parser.parse_args(argv)
    status: int = args.func(args)
    return status


@pytest.fixture
def photos(tmp_path: Path) -> dict[str, Path]:
    scene = car_scene(seed=9)
    made = {
        "good": (tmp_path / "good.jpg", scene),
        "blurred": (tmp_path / "blurred.png", blurred(scene, 6)),
        "dark": (tmp_path / "dark.jpg", darkened(scene, 0.2)),
    }
    for path, image in made.values():
        cv2.imwrite(str(path), image)
    return {name: path for name, (path, _) in made.items()}


def test_json_for_a_passing_photo(
    photos: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["kiosk", "check-photo", str(photos["good"]), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"passed", "reasons", "metrics"}
    assert out["passed"] is True and out["reasons"] == []
    assert out["metrics"]["width"] == 1920


@pytest.mark.parametrize(("name", "reason"), [("blurred", "too blurred"), ("dark", "too dark")])
def test_a_failing_photo_is_a_result_not_an_error(
    photos: dict[str, Path], capsys: pytest.CaptureFixture[str], name: str, reason: str
) -> None:
    assert run(["kiosk", "check-photo", str(photos[name]), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["passed"] is False and out["reasons"] == [reason]


def test_human_output(photos: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["kiosk", "check-photo", str(photos["dark"])]) == 0
    out = capsys.readouterr().out
    assert "failed: too dark" in out and "mean_luminance" in out


@pytest.mark.parametrize("content", [b"", b"hello, not an image", None])
def test_unreadable_file_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None
) -> None:
    path = tmp_path / "broken.jpg"
    if content is not None:
        path.write_bytes(content)
    assert run(["kiosk", "check-photo", str(path), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert str(path) in captured.err
