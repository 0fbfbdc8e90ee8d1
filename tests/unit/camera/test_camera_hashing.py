"""sha256 and the DCT perceptual hash: format, stability under benign edits, separation."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.camera.hashing import encode_jpeg, hamming, phash, phash_hex, sha256_hex
from edge.camera.imaging import decode_image
from edge.camera.synthetic import car_scene, darkened, overexposed
from gateway.photos.similarity import DEFAULT_THRESHOLD
from gateway.photos.similarity import hamming as gateway_hamming

SAME = 6  # measured ceiling for benign edits of car scenes (docs/photos.md)


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return car_scene(seed=11)


def test_phash_is_sixteen_lowercase_hex_digits(scene: np.ndarray) -> None:
    value = phash_hex(scene)
    assert len(value) == 16
    assert value == value.lower()
    assert int(value, 16) == phash(scene)


def test_phash_is_deterministic_and_colour_blind_to_grey(scene: np.ndarray) -> None:
    assert phash(scene) == phash(scene.copy())
    assert phash(scene) == phash(cv2.cvtColor(scene, cv2.COLOR_BGR2GRAY))


def _edits(image: np.ndarray) -> dict[str, np.ndarray]:
    h, w = image.shape[:2]
    return {
        "jpeg q60": decode_image(encode_jpeg(image, 60)),
        "half size": cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
        "brighter": overexposed(image, 1.1, 10),
        "darker": darkened(image, 0.8),
        "crop 2%": image[h // 100 : h - h // 100, w // 100 : w - w // 100],
    }


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_benign_edits_keep_the_hash_close(seed: int) -> None:
    image = car_scene(seed=seed)
    original = phash(image)
    for name, edited in _edits(image).items():
        distance = hamming(original, phash(edited))
        assert distance <= SAME, (name, distance)
        assert distance <= DEFAULT_THRESHOLD


def test_different_scenes_are_far_apart() -> None:
    hashes = [phash(car_scene(seed=s)) for s in range(8)]
    for i, a in enumerate(hashes):
        for b in hashes[i + 1 :]:
            assert hamming(a, b) > DEFAULT_THRESHOLD


def test_every_hash_has_32_one_bits(scene: np.ndarray) -> None:
    # The median split of the 63 AC terms gives 31 ones, plus the always-positive DC term.
    for seed in range(5):
        assert phash(car_scene(seed=seed)).bit_count() == 32


def test_different_real_photos_are_far_apart() -> None:
    data = pytest.importorskip("skimage.data")
    names = ["astronaut", "coffee", "chelsea", "camera", "rocket", "horse", "coins", "moon"]
    hashes = []
    for name in names:
        pixels = np.asarray(getattr(data, name)())
        if pixels.dtype == bool:
            pixels = pixels.astype(np.uint8) * 255
        if pixels.ndim == 3:
            pixels = np.ascontiguousarray(pixels[..., :3])
        hashes.append(phash(pixels.astype(np.uint8)))
    for i, a in enumerate(hashes):
        for b in hashes[i + 1 :]:
            assert hamming(a, b) >= 16


def test_kiosk_and_gateway_hamming_agree(scene: np.ndarray) -> None:
    a, b = phash_hex(scene), phash_hex(car_scene(seed=1))
    assert hamming(a, b) == gateway_hamming(a, b)


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_hamming_is_a_metric_on_64_bits(a: int, b: int) -> None:
    d = hamming(a, b)
    assert 0 <= d <= 64
    assert d == hamming(b, a) == hamming(f"{a:016x}", f"{b:016x}")
    assert (d == 0) == (a == b)


def test_sha256_hex() -> None:
    assert sha256_hex(b"abc") == hashlib.sha256(b"abc").hexdigest()


def test_jpeg_quality_changes_size_and_output_is_bare_jfif(scene: np.ndarray) -> None:
    high, low = encode_jpeg(scene, 95), encode_jpeg(scene, 50)
    assert len(high) > len(low)
    assert high[:4] == b"\xff\xd8\xff\xe0"  # SOI then the JFIF APP0 segment
    assert b"Exif\x00\x00" not in high and b"\xff\xe1" not in high[:64]
