"""Small pure image helpers shared by the quality gates, masking and hashing.

Images are numpy arrays as OpenCV holds them: ``uint8``, ``HxW`` (grey) or ``HxWx3`` (BGR).
The :data:`Image` alias is deliberately loose (any ndarray) so OpenCV results pass the type
checker; :func:`as_bgr` checks the dtype and shape at the pipeline's entry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeAlias, cast

import cv2
import numpy as np
import numpy.typing as npt

from edge.camera.errors import ImageDecodeError

Image: TypeAlias = npt.NDArray[Any]

__all__ = [
    "Image",
    "as_bgr",
    "decode_image",
    "downscale_long_edge",
    "read_image",
    "to_gray",
    "u8",
]


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


def decode_image(data: bytes, origin: str = "image bytes") -> Image:
    """Decode encoded image bytes (JPEG, PNG, ...) to BGR, applying any EXIF orientation.

    Raises :class:`ImageDecodeError` naming ``origin`` when the bytes are not an image.
    """
    if not data:
        raise ImageDecodeError(origin, "empty file")
    buffer = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise ImageDecodeError(origin)
    return u8(image)


def read_image(path: Path) -> Image:
    """Read an image file to BGR. Raises :class:`ImageDecodeError` naming the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageDecodeError(str(path), exc.strerror or str(exc)) from exc
    return decode_image(data, str(path))
