"""The whole per-photo pipeline: record, JPEG, masked regions, EXIF (GPS) stripped."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.camera.config import CameraConfig, OutputConfig
from edge.camera.hashing import sha256_hex
from edge.camera.imaging import decode_image, read_image
from edge.camera.pipeline import PhotoPipeline, check_photo, process_photo
from edge.camera.synthetic import blurred, car_scene
from edge.protocol import AppraisalBody, PhotoRecord


@pytest.fixture(scope="module")
def pipeline() -> PhotoPipeline:
    return PhotoPipeline(CameraConfig())


def test_process_photo_produces_a_wire_record_and_its_jpeg(pipeline: PhotoPipeline) -> None:
    photo = pipeline.process(car_scene(seed=4), "front")
    record = photo.record
    assert isinstance(record, PhotoRecord)
    assert record.view == "front"
    assert record.sha256 == sha256_hex(photo.jpeg)
    assert record.phash is not None and len(record.phash) == 16
    assert record.passed and record.reasons == []
    assert record.metrics["masked_plates"] == 1.0
    assert record.metrics["masked_faces"] == 0.0
    assert record.metrics["jpeg_bytes"] == float(len(photo.jpeg))
    assert [r.kind for r in photo.masked_regions] == ["plate"]
    assert (photo.width, photo.height) == (1920, 1080)
    # The record survives the wire (JSON) unchanged.
    assert PhotoRecord.model_validate_json(record.model_dump_json()) == record
    assert "photos" in AppraisalBody.model_fields


def test_failing_photo_is_still_processed_with_its_reasons(pipeline: PhotoPipeline) -> None:
    photo = pipeline.process(blurred(car_scene(seed=4), 6.0), "rear")
    assert not photo.record.passed
    assert photo.record.reasons == ["too blurred"]
    assert photo.quality.reasons == ("too blurred",)
    assert photo.jpeg[:2] == b"\xff\xd8"


def test_the_uploaded_jpeg_is_masked(pipeline: PhotoPipeline) -> None:
    scene = car_scene(seed=4)
    photo = pipeline.process(scene, "front")
    decoded = decode_image(photo.jpeg)
    box = photo.masked_regions[0].box
    original = cv2.cvtColor(scene[box.y : box.y + box.h, box.x : box.x + box.w], cv2.COLOR_BGR2GRAY)
    sent = cv2.cvtColor(decoded[box.y : box.y + box.h, box.x : box.x + box.w], cv2.COLOR_BGR2GRAY)
    assert cv2.Laplacian(sent, cv2.CV_64F).var() < 0.02 * cv2.Laplacian(original, cv2.CV_64F).var()


def test_large_frames_are_downscaled_and_quality_follows_config() -> None:
    config = CameraConfig(output=OutputConfig(max_long_edge=1280, jpeg_quality=70))
    photo = process_photo(car_scene(2560, 1440, seed=1), "left", config)
    assert (photo.width, photo.height) == (1280, 720)
    assert decode_image(photo.jpeg).shape == (720, 1280, 3)
    assert photo.record.metrics["width"] == 2560.0  # quality is judged on the captured frame
    better = process_photo(
        car_scene(2560, 1440, seed=1),
        "left",
        CameraConfig(output=OutputConfig(max_long_edge=1280, jpeg_quality=95)),
    )
    assert len(better.jpeg) > len(photo.jpeg)


def test_grey_and_bgra_frames_are_accepted(pipeline: PhotoPipeline) -> None:
    scene = car_scene(seed=2)
    grey = cv2.cvtColor(scene, cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(scene, cv2.COLOR_BGR2BGRA)
    assert pipeline.process(grey, "left").record.passed
    assert (
        pipeline.process(bgra, "left").record.sha256
        == pipeline.process(scene, "left").record.sha256
    )


def test_non_uint8_frames_are_refused(pipeline: PhotoPipeline) -> None:
    with pytest.raises(ValueError, match="uint8"):
        pipeline.process(np.zeros((10, 10, 3), np.float32), "front")


# --- EXIF -------------------------------------------------------------------------------------

GPS_LATITUDE = (51, 30, 1234)


def exif_app1(*, orientation: int | None = None) -> bytes:
    """An APP1 Exif segment built by hand: IFD0 (Orientation, GPS pointer) and a GPS IFD with
    latitude 51°30'12.34"N, longitude 0°7'39.21"W (little-endian TIFF)."""
    entries = []
    if orientation is not None:
        entries.append((0x0112, 3, 1, struct.pack("<HH", orientation, 0)))
    count0 = len(entries) + 1
    gps_ifd = 8 + 2 + 12 * count0 + 4
    entries.append((0x8825, 4, 1, struct.pack("<I", gps_ifd)))
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", count0)
    tiff += b"".join(struct.pack("<HHI", tag, kind, n) + value for tag, kind, n, value in entries)
    tiff += struct.pack("<I", 0)
    data = gps_ifd + 2 + 12 * 4 + 4
    gps_entries = [
        (1, 2, 2, b"N\x00\x00\x00"),
        (2, 5, 3, struct.pack("<I", data)),
        (3, 2, 2, b"W\x00\x00\x00"),
        (4, 5, 3, struct.pack("<I", data + 24)),
    ]
    tiff += struct.pack("<H", len(gps_entries))
    tiff += b"".join(
        struct.pack("<HHI", tag, kind, n) + value for tag, kind, n, value in gps_entries
    )
    tiff += struct.pack("<I", 0)
    d, m, s = GPS_LATITUDE
    tiff += struct.pack("<6I", d, 1, m, 1, s, 100) + struct.pack("<6I", 0, 1, 7, 1, 3921, 100)
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def with_exif(jpeg: bytes, segment: bytes) -> bytes:
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + segment + jpeg[2:]


def _gps_of(jpeg: bytes) -> dict[int, Any]:
    image_module = pytest.importorskip("PIL.Image")
    exif = image_module.open(io.BytesIO(jpeg)).getexif()
    return dict(exif.get_ifd(0x8825))


def test_constructed_exif_really_carries_gps() -> None:
    _ok, buffer = cv2.imencode(".jpg", car_scene(640, 480, seed=1))
    tagged = with_exif(bytes(buffer), exif_app1())
    assert b"Exif\x00\x00" in tagged
    gps = _gps_of(tagged)  # an independent reader (Pillow) agrees the GPS is there
    assert gps[1] == "N" and gps[3] == "W"
    assert [float(v) for v in gps[2]] == [51.0, 30.0, 12.34]


def test_gps_and_all_exif_are_gone_after_the_pipeline(
    tmp_path: Path, pipeline: PhotoPipeline
) -> None:
    _ok, buffer = cv2.imencode(".jpg", car_scene(seed=6), [cv2.IMWRITE_JPEG_QUALITY, 95])
    path = tmp_path / "front.jpg"
    path.write_bytes(with_exif(bytes(buffer), exif_app1()))
    photo = pipeline.process(read_image(path), "front")
    assert b"Exif" not in photo.jpeg
    assert b"\xff\xe1" not in photo.jpeg[:2048]  # no APP1 segment among the headers
    assert _gps_of(photo.jpeg) == {}
    assert not photo.jpeg.count(struct.pack("<6I", 51, 1, 30, 1, 1234, 100))


def test_exif_orientation_is_applied_before_it_is_stripped(tmp_path: Path) -> None:
    # A landscape sensor image tagged "rotate 90° clockwise" (6) is a portrait photo.
    _ok, buffer = cv2.imencode(".jpg", car_scene(1920, 1080, seed=6))
    path = tmp_path / "rotated.jpg"
    path.write_bytes(with_exif(bytes(buffer), exif_app1(orientation=6)))
    image = read_image(path)
    assert image.shape[:2] == (1920, 1080)
    photo = process_photo(image, "left")
    assert decode_image(photo.jpeg).shape[:2] == (1920, 1080)


def test_check_photo_reads_files(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), car_scene(seed=1))
    assert check_photo(path).passed
