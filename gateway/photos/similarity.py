"""Near-duplicate photos by perceptual-hash distance (pure, no IO).

The kiosk sends a 64-bit DCT pHash per photo as 16 hex digits (``PhotoRecord.phash``; the
algorithm is in ``edge.camera.hashing``). Two photos whose hashes differ in few bits are the same
picture, re-encoded, resized, brightened or lightly cropped; the gateway flags such a photo
appearing on another VIN. Kept here, not imported from ``edge.camera``, because the gateway
imports nothing from ``edge`` but the protocol.

Measured (docs/photos.md): the same photo after JPEG re-encoding (quality 30–60), resizing to
half, ±20 % brightness stays within 4 bits, and a 2 % crop of a car scene within 6; 19 different
sample photos are at least 20 bits apart, but 40 drawn car scenes with the same framing come as
close as 8 — different cars shot in the same bay from the same spot look alike to a pHash.
:data:`DEFAULT_THRESHOLD` is therefore 6: a hit is a reason for a person to look, not proof.
(The median split makes every hash hold 32 one-bits, so distances are even.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = ["DEFAULT_THRESHOLD", "NearDuplicate", "hamming", "near_duplicates", "parse_phash"]

DEFAULT_THRESHOLD: Final = 6
"""Distances at or below this (of 64 bits) count as the same picture."""

_HEX = re.compile(r"^[0-9a-fA-F]{1,16}$")

K = TypeVar("K")


def parse_phash(value: str) -> int:
    """A 64-bit pHash from up to 16 hex digits. Raises ValueError on anything else."""
    if not isinstance(value, str) or not _HEX.match(value):
        raise ValueError(f"{value!r} is not a 64-bit perceptual hash (up to 16 hex digits)")
    return int(value, 16)


def hamming(a: str | int, b: str | int) -> int:
    """How many of the 64 bits differ between two hashes (hex strings or ints)."""
    x = parse_phash(a) if isinstance(a, str) else a
    y = parse_phash(b) if isinstance(b, str) else b
    return (x ^ y).bit_count()


@dataclass(frozen=True, slots=True)
class NearDuplicate(Generic[K]):
    """A candidate within the threshold: its key (a photo id, an appraisal id, ...), its hash and
    the distance."""

    key: K
    phash: str
    distance: int


def _popcount(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    bitwise_count = getattr(np, "bitwise_count", None)  # numpy >= 2.0
    if bitwise_count is not None:
        return np.asarray(bitwise_count(values), dtype=np.int64)
    as_bytes = values.view(np.uint8).reshape(-1, 8)
    return np.asarray(np.unpackbits(as_bytes, axis=1).sum(axis=1), dtype=np.int64)


def near_duplicates(
    phash: str,
    candidates: Iterable[tuple[K, str | None]],
    threshold: int = DEFAULT_THRESHOLD,
) -> list[NearDuplicate[K]]:
    """Candidates whose hash is within ``threshold`` bits of ``phash``, nearest first (ties keep
    the candidates' order).

    ``candidates`` are ``(key, phash)`` pairs; pairs with no hash or a malformed one are skipped
    (a photo recorded before hashing, or a bad row, must not stop the check). Vectorised: a
    million candidates take a few tens of milliseconds.
    """
    if not 0 <= threshold <= 64:
        raise ValueError("threshold is a number of bits, 0 to 64")
    target = np.uint64(parse_phash(phash))
    keys: list[K] = []
    hashes: list[str] = []
    values: list[int] = []
    for key, candidate in candidates:
        if candidate is None or not _HEX.match(candidate):
            continue
        keys.append(key)
        hashes.append(candidate)
        values.append(int(candidate, 16))
    if not values:
        return []
    distances = _popcount(np.array(values, dtype=np.uint64) ^ target)
    hits = np.flatnonzero(distances <= threshold)
    order = hits[np.argsort(distances[hits], kind="stable")]
    return [NearDuplicate(keys[i], hashes[i], int(distances[i])) for i in order]
