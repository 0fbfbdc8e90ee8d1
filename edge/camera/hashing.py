"""Content hashes of a photo: sha256 of the exact JPEG bytes (the storage key) and a 64-bit DCT
perceptual hash (pHash) that survives re-encoding, resizing and mild edits, for spotting the same
photo reused on another vehicle.

pHash: grey, area-resize to 32×32, 2-D DCT (``cv2.dct``), keep the 8×8 lowest frequencies, one bit
per coefficient: 1 when it is above the median of the 63 non-DC coefficients. Bits are read row
by row, first bit most significant, and written as 16 lowercase hex digits. The gateway compares
hashes by Hamming distance (``gateway.photos.hamming``), so the encoding is part of the contract.
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from edge.camera.errors import EncodeError
from edge.camera.imaging import Image, to_gray

__all__ = ["encode_jpeg", "hamming", "phash", "phash_hex", "sha256_hex"]


def sha256_hex(data: bytes) -> str:
    """Lowercase hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def phash(image: Image) -> int:
    """64-bit DCT perceptual hash of a BGR or grey image, as an int."""
    small = cv2.resize(to_gray(image), (32, 32), interpolation=cv2.INTER_AREA)
    coefficients = cv2.dct(small.astype(np.float32))[:8, :8].ravel()
    # The DC term is the mean brightness: leave it out of the median so a brighter copy of the
    # same picture keeps the same bits.
    median = float(np.median(coefficients[1:]))
    bits = coefficients > median
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def phash_hex(image: Image) -> str:
    """:func:`phash` as 16 lowercase hex digits (the ``PhotoRecord.phash`` format)."""
    return f"{phash(image):016x}"


def hamming(a: str | int, b: str | int) -> int:
    """Bits that differ between two 64-bit hashes (hex strings or ints)."""
    x = int(a, 16) if isinstance(a, str) else a
    y = int(b, 16) if isinstance(b, str) else b
    return (x ^ y).bit_count()


def encode_jpeg(image: Image, quality: int) -> bytes:
    """Encode pixels as a baseline JPEG with no metadata at all.

    OpenCV writes only a JFIF header and the image: whatever EXIF (GPS, camera serial, time) the
    source file carried was dropped when it was decoded to pixels, so re-encoding is the strip.
    """
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise EncodeError(f"OpenCV could not encode a {image.shape} image as JPEG")
    return bytes(buffer)
