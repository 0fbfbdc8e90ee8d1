"""Decompression bombs: an image's size is read from its header and checked against
``MAX_IMAGE_PIXELS`` before OpenCV allocates anything (a 600 KB PNG can claim 25000 × 25000)."""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.camera.config import FolderSourceConfig
from edge.camera.errors import FrameUnavailableError, ImageDecodeError, ImageTooLargeError
from edge.camera.imaging import (
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    decode_image,
    image_size,
    read_image,
)
from edge.camera.sources import FolderSource
from edge.camera.synthetic import car_scene
from tests.support.images import png_of_zeros

OVER = 9000  # 9000 × 9000 = 81 M pixels, over the 8192 × 8192 cap


def _encoded(ext: str, image: np.ndarray, params: list[int] | None = None) -> bytes:
    ok, buffer = cv2.imencode(ext, image, params or [])
    assert ok
    return bytes(buffer)


SMALL = car_scene(37, 23, seed=3)


@pytest.mark.parametrize(
    ("ext", "image", "params"),
    [
        (".jpg", SMALL, []),
        (".jpg", cv2.cvtColor(SMALL, cv2.COLOR_BGR2GRAY), []),
        (".jpg", SMALL, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        (".png", SMALL, []),
        (".png", cv2.cvtColor(SMALL, cv2.COLOR_BGR2BGRA), []),
        (".webp", SMALL, [cv2.IMWRITE_WEBP_QUALITY, 80]),
        (".webp", SMALL, [cv2.IMWRITE_WEBP_QUALITY, 101]),  # lossless: a VP8L chunk
        (".webp", cv2.cvtColor(SMALL, cv2.COLOR_BGR2BGRA), [cv2.IMWRITE_WEBP_QUALITY, 80]),
        (".bmp", SMALL, []),
    ],
)
def test_the_header_gives_the_size_opencv_decodes(
    ext: str, image: np.ndarray, params: list[int]
) -> None:
    data = _encoded(ext, image, params)
    assert image_size(data) == (37, 23)
    assert decode_image(data).shape == (23, 37, 3)


def test_a_png_over_the_cap_is_refused_from_its_header_without_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = png_of_zeros(OVER, OVER)
    assert len(data) < 200_000

    def no_decode(*_args: object) -> None:
        raise AssertionError("decoded an image over the cap")

    monkeypatch.setattr(cv2, "imdecode", no_decode)
    with pytest.raises(ImageTooLargeError) as info:
        decode_image(data, "bomb.png")
    error = info.value
    assert (error.width, error.height, error.limit) == (OVER, OVER, MAX_IMAGE_PIXELS)
    assert isinstance(error, ImageDecodeError)
    assert str(error).startswith("bomb.png: ")
    assert "9000 × 9000" in str(error) and f"{MAX_IMAGE_PIXELS:,}" in str(error)


def test_an_image_at_the_cap_in_one_dimension_is_fine() -> None:
    # 8192 × 1: one edge at the limit, few pixels.
    assert decode_image(png_of_zeros(8192, 1)).shape == (1, 8192, 3)


def _patched_jpeg(width: int, height: int) -> bytes:
    data = bytearray(_encoded(".jpg", SMALL))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def _patched_webp_vp8l(width: int, height: int) -> bytes:
    data = bytearray(_encoded(".webp", SMALL, [cv2.IMWRITE_WEBP_QUALITY, 101]))
    assert data[12:16] == b"VP8L"
    bits = struct.unpack_from("<I", data, 21)[0] & ~((1 << 28) - 1)
    struct.pack_into("<I", data, 21, bits | (width - 1) | ((height - 1) << 14))
    return bytes(data)


def _patched_bmp(width: int, height: int) -> bytes:
    data = bytearray(_encoded(".bmp", SMALL))
    struct.pack_into("<ii", data, 18, width, -height)  # negative: rows stored top-down
    return bytes(data)


def _vp8x(width: int, height: int) -> bytes:
    body = (
        b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    )
    chunk = b"VP8X" + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


@pytest.mark.parametrize(
    ("make", "size"),
    [
        (_patched_jpeg, (60000, 60000)),
        (_patched_webp_vp8l, (16384, 16384)),
        (_patched_bmp, (30000, 30000)),
        (_vp8x, (16_000_000, 8)),
    ],
)
def test_other_formats_over_the_cap_are_refused_from_their_headers(
    make: object, size: tuple[int, int]
) -> None:
    assert callable(make)
    data = make(*size)
    assert image_size(data) == size
    with pytest.raises(ImageTooLargeError):
        decode_image(data)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\x89PNG\r\n\x1a\n", "truncated"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "truncated"),
        (b"\xff\xd8\xff\xda\x00\x02", "no frame header"),
        (b"II*\x00" + bytes(64), "TIFF"),
        (b"GIF89a" + bytes(64), "GIF"),
        (b"hello, not an image", "not a readable image"),
    ],
)
def test_headers_that_cannot_be_checked_are_refused_naming_the_formats_read(
    data: bytes, words: str
) -> None:
    with pytest.raises(ImageDecodeError) as info:
        decode_image(data, "x")
    assert words in info.value.why
    assert "JPEG, PNG, WebP or BMP" in info.value.why


def test_a_jpeg_with_a_zero_height_is_refused() -> None:
    with pytest.raises(ImageDecodeError, match="no size"):
        decode_image(_patched_jpeg(37, 0))


def test_a_file_over_the_byte_limit_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    with path.open("wb") as fh:
        fh.truncate(MAX_IMAGE_BYTES + 1)  # sparse: nothing is written or read
    with pytest.raises(ImageDecodeError, match="larger than"):
        read_image(path)


def test_check_photo_refuses_the_bomb_with_exit_2_naming_the_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.camera.cli import register_kiosk

    path = tmp_path / "bomb.png"
    path.write_bytes(png_of_zeros(OVER, OVER))
    parser = argparse.ArgumentParser(prog="kioskmatch")
    kiosk = parser.add_subparsers(dest="command", required=True).add_parser("kiosk")
    register_kiosk(kiosk.add_subparsers(dest="kiosk_command", required=True))
    args = parser.parse_args(["kiosk", "check-photo", str(path), "--json"])
    assert args.func(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert str(path) in captured.err and f"{MAX_IMAGE_PIXELS:,} pixels" in captured.err


def test_the_folder_source_refuses_the_bomb_as_no_frame(tmp_path: Path) -> None:
    (tmp_path / "front.png").write_bytes(png_of_zeros(OVER, OVER))
    with (
        FolderSource(FolderSourceConfig(path=tmp_path)) as source,
        pytest.raises(FrameUnavailableError) as info,
    ):
        source.grab("front")
    assert info.value.view == "front" and f"{MAX_IMAGE_PIXELS:,}" in info.value.why


def test_an_opencv_exception_is_a_decode_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # OpenCV raises (rather than returning None) when OPENCV_IO_MAX_IMAGE_PIXELS, set in the
    # environment, is lower than our cap.
    def refuse(*_args: object) -> None:
        raise cv2.error("pixels <= CV_IO_MAX_IMAGE_PIXELS")

    monkeypatch.setattr(cv2, "imdecode", refuse)
    with pytest.raises(ImageDecodeError, match="CV_IO_MAX_IMAGE_PIXELS"):
        decode_image(_encoded(".png", SMALL), "x.png")


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from(
        [b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", b"\xff\xd8", b"RIFF\x00\x00\x00\x00WEBP", b"BM"]
    ),
    rest=st.binary(max_size=64),
)
def test_any_header_is_an_image_or_a_decode_error(prefix: bytes, rest: bytes) -> None:
    data = prefix + rest
    try:
        size = image_size(data)
    except ValueError:
        size = None
    assert size is None or all(isinstance(n, int) and n >= 0 for n in size)
    try:
        image = decode_image(data, max_pixels=10_000)
    except ImageDecodeError:
        return
    assert image.shape[0] * image.shape[1] <= 10_000
