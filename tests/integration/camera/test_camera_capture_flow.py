"""End to end on the kiosk's side and the gateway's storage: a folder camera, the guided flow
with retakes, the real pipeline (cascades, JPEG), a resumable upload into the filesystem store,
and the near-duplicate check the gateway runs on the records."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from edge.camera import (
    CameraConfig,
    CaptureGuide,
    FolderSourceConfig,
    PhotoPipeline,
    Prompt,
    View,
    ViewOutcome,
    capture_views,
    make_source,
)
from edge.camera.imaging import Image, decode_image
from edge.camera.synthetic import blurred, car_scene, darkened
from gateway.photos import FilesystemPhotoStore, near_duplicates

CHUNK = 64 * 1024


def _gps_app1() -> bytes:
    tiff = b"II*\x00" + struct.pack("<IH", 8, 1) + struct.pack("<HHII", 0x8825, 4, 1, 26)
    tiff += struct.pack("<I", 0) + struct.pack("<H", 1)
    tiff += struct.pack("<HHI", 1, 2, 2) + b"N\x00\x00\x00" + struct.pack("<I", 0)
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _write_jpeg(path: Path, image: Image, *, gps: bool = False) -> None:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    data = bytes(buffer)
    path.write_bytes(data[:2] + _gps_app1() + data[2:] if gps else data)


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("camera")
    # Scenes whose plates the cascade finds (recall is ~97 %, see docs/photos.md).
    front = car_scene(seed=21)
    _write_jpeg(folder / "front.jpg", blurred(front, 6.0), gps=True)  # shaky first try
    _write_jpeg(folder / "front-2.jpg", front, gps=True)
    _write_jpeg(folder / "rear.jpg", car_scene(seed=22))
    _write_jpeg(folder / "left.jpg", darkened(car_scene(seed=23, plate=False), 0.2))
    # no vin_plate file: the camera "gives no frame"
    return folder


def test_guided_capture_upload_and_duplicate_check(demo_folder: Path, tmp_path: Path) -> None:
    config = CameraConfig(
        source=FolderSourceConfig(path=demo_folder),
        required_views=(View.FRONT, View.REAR, View.LEFT, View.VIN_PLATE),
        max_attempts=2,
    )
    pipeline = PhotoPipeline(config)
    prompts: list[Prompt] = []
    with make_source(config.source) as source:
        run = capture_views(source, pipeline, on_prompt=prompts.append)

    assert [(p.view, p.kind) for p in prompts] == [
        ("front", "capture"),
        ("front", "retake"),
        ("rear", "capture"),
        ("left", "capture"),
        ("left", "retake"),
        ("vin_plate", "capture"),
        ("vin_plate", "retake"),
    ]
    assert prompts[1].reasons == ("too blurred",)
    assert "hold the camera still" in prompts[1].text
    guide: CaptureGuide = run.guide
    assert guide.views_with(ViewOutcome.PASSED) == ["front", "rear"]
    assert guide.views_with(ViewOutcome.FAILED) == ["left", "vin_plate"]
    assert guide.last_reasons["vin_plate"] == ("no frame from the camera",)
    assert set(run.photos) == {"front", "rear", "left"}
    assert run.photos["left"].record.reasons == ["too dark"]
    assert {(r.view, r.kind) for r in run.masked_regions} == {("front", "plate"), ("rear", "plate")}

    # Upload every JPEG the way the kiosk's outbox does: chunked, interrupted, resumed.
    store = FilesystemPhotoStore(tmp_path / "photos")
    for photo in run.photos.values():
        key = photo.record.sha256
        first = store.open_upload(key)
        first.append(0, photo.jpeg[:CHUNK])
        resumed = store.open_upload(key)  # a new request after the link dropped
        for start in range(resumed.offset, len(photo.jpeg), CHUNK):
            resumed.append(start, photo.jpeg[start : start + CHUNK])
        assert resumed.complete() == key
        stored = store.get(key)
        assert b"Exif" not in stored  # the GPS the source files carried never left the kiosk
        assert decode_image(stored).shape == (1080, 1920, 3)

    # The gateway's fraud check: the same front photo, re-encoded, on another VIN.
    known = [(f"appraisal-1/{view}", p.record.phash) for view, p in run.photos.items()]
    reused = pipeline.process(decode_image(run.photos["front"].jpeg), "front")
    assert reused.record.sha256 != run.photos["front"].record.sha256
    assert reused.record.phash is not None
    hits = near_duplicates(reused.record.phash, known)
    assert [h.key for h in hits] == ["appraisal-1/front"]
    other_car = pipeline.process(car_scene(seed=99), "front")
    assert other_car.record.phash is not None
    assert near_duplicates(other_car.record.phash, known) == []


CLI = """
import argparse, sys
from edge.camera.cli import register_kiosk
parser = argparse.ArgumentParser(prog="kioskmatch")
kiosk = parser.add_subparsers(dest="command", required=True).add_parser("kiosk")
register_kiosk(kiosk.add_subparsers(dest="kiosk_command", required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, "kiosk", "check-photo", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_photo_in_a_real_process(demo_folder: Path, tmp_path: Path) -> None:
    passed = _cli(str(demo_folder / "front-2.jpg"), "--json")
    assert passed.returncode == 0, passed.stderr
    assert json.loads(passed.stdout)["passed"] is True
    failed = _cli(str(demo_folder / "front.jpg"), "--json")
    assert failed.returncode == 0
    assert json.loads(failed.stdout) | {"metrics": {}} == {
        "passed": False,
        "reasons": ["too blurred"],
        "metrics": {},
    }
    junk = tmp_path / "notes.txt"
    junk.write_text("not a photo")
    bad = _cli(str(junk), "--json")
    assert bad.returncode == 2
    assert bad.stdout == "" and str(junk) in bad.stderr
