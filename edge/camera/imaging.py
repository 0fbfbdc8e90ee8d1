"""Small pure image helpers shared by the quality gates, masking and hashing.

Images are numpy arrays as OpenCV holds them: ``uint8``, ``HxW`` (grey) or ``HxWx3`` (BGR).
The :data:`Image` alias is deliberately loose (any ndarray) so OpenCV results pass the type
checker; :func:`as_bgr` checks the dtype and shape at the pipeline's entry.

Decoding is bounded. A compressed image's size says nothing of its pixels: a 600 KB PNG can
claim 25000 × 25000 pixels, and decoding it took 3.75 GB. OpenCV's own limit
(``OPENCV_IO_MAX_IMAGE_PIXELS``, 2^30 pixels by default) is read once when the library loads and
is far above what a kiosk can hold, so :func:`image_size` reads the width and height from the
file's header (JPEG, PNG, WebP, BMP) and :func:`decode_image` refuses more than
:data:`MAX_IMAGE_PIXELS` before OpenCV allocates anything. Other formats are refused: their
size cannot be checked first.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any, TypeAlias, cast

import cv2
import numpy as np
import numpy.typing as npt

from edge.camera.errors import ImageDecodeError, ImageTooLargeError

Image: TypeAlias = npt.NDArray[Any]

__all__ = [
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "Image",
    "as_bgr",
    "decode_image",
    "downscale_long_edge",
    "image_size",
    "read_image",
    "to_gray",
    "u8",
]

# The largest frame the camera configuration can ask for (width and height up to 8192): about
# 200 MB once decoded to BGR, several copies of which the pipeline makes.
MAX_IMAGE_PIXELS = 8192 * 8192
# A file larger than this is not read at all (an 8192 × 8192 PNG of noise is about 200 MB).
MAX_IMAGE_BYTES = 256 * 1024 * 1024
FORMATS_READ = "JPEG, PNG, WebP or BMP"
# Signatures of formats OpenCV may decode but whose size is not checked here.
_OTHER_FORMATS = (
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\x76\x2f\x31\x01", "OpenEXR"),
    (b"#?RADIANCE", "Radiance HDR"),
    (b"#?RGBE", "Radiance HDR"),
)
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic...): not DHT (C4),
# JPG (C8) or DAC (CC), which share the range.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length: TEM and the restart markers.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def u8(array: object) -> Image:
    """Type an OpenCV result as the ``uint8`` image it is (OpenCV's stubs say "any matrix")."""
    return cast(Image, array)


def as_bgr(image: npt.NDArray[np.generic]) -> Image:
    """Return ``image`` as a contiguous 3-channel ``uint8`` BGR array (grey and BGRA accepted)."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    pixels = u8(image)
    if pixels.ndim == 2:
        return u8(cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR))
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        return np.ascontiguousarray(pixels)
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        return u8(cv2.cvtColor(pixels, cv2.COLOR_BGRA2BGR))
    raise ValueError(f"expected an HxW or HxWx3 image, got shape {image.shape}")


def to_gray(image: Image) -> Image:
    """Luma (BT.601, as OpenCV computes it) of a BGR or grey image."""
    if image.ndim == 2:
        return image
    return u8(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))


def downscale_long_edge(image: Image, long_edge: int) -> tuple[Image, float]:
    """Shrink ``image`` so its long edge is at most ``long_edge``; return it and the scale used.

    Area interpolation averages pixels, so noise shrinks with the image instead of aliasing.
    Images already small enough are returned as they are with scale 1.0.
    """
    height, width = image.shape[:2]
    longest = max(height, width)
    if longest <= long_edge:
        return image, 1.0
    scale = long_edge / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return u8(cv2.resize(image, size, interpolation=cv2.INTER_AREA)), scale


class _HeaderError(ValueError):
    """The header of a recognised format is cut short or inconsistent."""


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the header of a JPEG, PNG, WebP or BMP image, without decoding;
    None when ``data`` is none of these. Raises :class:`ValueError` when it starts like one of
    them but its header is cut short or says nothing of the size."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            if len(data) < 24:
                raise _HeaderError("the header is truncated")
            if data[12:16] != b"IHDR":
                raise _HeaderError("no IHDR chunk where PNG puts it")
            width, height = struct.unpack_from(">II", data, 16)
            return int(width), int(height)
        if data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
        if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data.startswith(b"BM"):
            return _bmp_size(data)
    except struct.error:
        raise _HeaderError("the header is truncated") from None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """The size in the first start-of-frame segment, found by walking the segments (an EXIF
    thumbnail's own frame header sits inside APP1 and is skipped with it)."""
    i = 2
    while True:
        while i < len(data) and data[i] != 0xFF:
            i += 1  # tolerate stray bytes between segments, as libjpeg does
        while i < len(data) and data[i] == 0xFF:
            i += 1  # fill bytes
        if i >= len(data):
            raise _HeaderError("the header is truncated (no frame header)")
        marker = data[i]
        i += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header came first
            raise _HeaderError("no frame header before the image data")
        (length,) = struct.unpack_from(">H", data, i)
        if length < 2:
            raise _HeaderError("a segment has an impossible length")
        if marker in _JPEG_SOF:
            height, width = struct.unpack_from(">HH", data, i + 3)
            return int(width), int(height)
        i += length


def _webp_size(data: bytes) -> tuple[int, int]:
    kind = data[12:16]
    if kind == b"VP8 ":  # lossy: a key frame's header, 14-bit sizes
        if data[23:26] != b"\x9d\x01\x2a":
            raise _HeaderError("the VP8 frame header is missing")
        width, height = struct.unpack_from("<HH", data, 26)
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    if kind == b"VP8L":  # lossless: 14-bit sizes less one, after the 0x2F signature
        if data[20:21] != b"\x2f":
            raise _HeaderError("the VP8L signature is missing")
        (bits,) = struct.unpack_from("<I", data, 21)
        return (int(bits) & 0x3FFF) + 1, ((int(bits) >> 14) & 0x3FFF) + 1
    if kind == b"VP8X":  # extended (alpha, animation): the canvas, 24-bit sizes less one
        if len(data) < 30:
            raise _HeaderError("the header is truncated")
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    raise _HeaderError(f"unknown WebP chunk {kind!r}")


def _bmp_size(data: bytes) -> tuple[int, int]:
    (header,) = struct.unpack_from("<I", data, 14)
    if header == 12:  # OS/2 BITMAPCOREHEADER: unsigned 16-bit sizes
        width, height = struct.unpack_from("<HH", data, 18)
        return int(width), int(height)
    if header < 40:
        raise _HeaderError(f"unknown BMP header of {header} bytes")
    width, height = struct.unpack_from("<ii", data, 18)
    return abs(int(width)), abs(int(height))  # a negative height means rows stored top-down


def _checked_size(data: bytes, origin: str, max_pixels: int) -> None:
    """Refuse ``data`` unless its header says it is a JPEG, PNG, WebP or BMP image of at most
    ``max_pixels`` pixels."""
    try:
        size = image_size(data)
    except _HeaderError as exc:
        raise ImageDecodeError(
            origin, f"not a readable image ({exc}); the kiosk reads {FORMATS_READ} files"
        ) from None
    if size is None:
        known = next((name for sig, name in _OTHER_FORMATS if data.startswith(sig)), None)
        what = f"a {known} image" if known else "not a readable image"
        raise ImageDecodeError(
            origin, f"{what}; the kiosk reads {FORMATS_READ} files: convert it to one of these"
        )
    width, height = size
    if width == 0 or height == 0:
        raise ImageDecodeError(
            origin, f"not a readable image (its header gives no size: {width} × {height})"
        )
    if width * height > max_pixels:
        raise ImageTooLargeError(origin, width, height, max_pixels)


def decode_image(
    data: bytes, origin: str = "image bytes", *, max_pixels: int = MAX_IMAGE_PIXELS
) -> Image:
    """Decode JPEG, PNG, WebP or BMP bytes to BGR, applying any EXIF orientation.

    The size is read from the header first: more than ``max_pixels`` pixels raises
    :class:`ImageTooLargeError` before anything is decoded. Raises :class:`ImageDecodeError`
    naming ``origin`` when the bytes are not an image of these formats.
    """
    if not data:
        raise ImageDecodeError(origin, "empty file")
    _checked_size(data, origin, max_pixels)
    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error as exc:  # e.g. OPENCV_IO_MAX_IMAGE_PIXELS set lower than ours
        why = getattr(exc, "err", None) or str(exc)
        raise ImageDecodeError(origin, f"not a readable image ({why})") from None
    if image is None or image.size == 0:
        raise ImageDecodeError(origin)
    height, width = image.shape[:2]
    if width * height > max_pixels:  # the decoder disagreed with the header: still refuse
        raise ImageTooLargeError(origin, width, height, max_pixels)
    return u8(image)


def read_image(path: Path, *, max_pixels: int = MAX_IMAGE_PIXELS) -> Image:
    """Read an image file to BGR. Raises :class:`ImageDecodeError` naming the file (and
    :class:`ImageTooLargeError` past ``max_pixels`` or :data:`MAX_IMAGE_BYTES`)."""
    try:
        with path.open("rb") as fh:
            # The size first, so a huge file is not read; the bounded read covers pipes.
            too_big = os.fstat(fh.fileno()).st_size > MAX_IMAGE_BYTES
            data = b"" if too_big else fh.read(MAX_IMAGE_BYTES + 1)
    except OSError as exc:
        raise ImageDecodeError(str(path), exc.strerror or str(exc)) from exc
    if too_big or len(data) > MAX_IMAGE_BYTES:
        raise ImageDecodeError(
            str(path),
            f"the file is larger than {MAX_IMAGE_BYTES:,} bytes; a kiosk photo is a few MB",
        )
    return decode_image(data, str(path), max_pixels=max_pixels)
