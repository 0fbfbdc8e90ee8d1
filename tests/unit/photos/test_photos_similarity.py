"""Near-duplicate check by pHash Hamming distance (pure)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.photos import similarity
from gateway.photos.similarity import (
    DEFAULT_THRESHOLD,
    NearDuplicate,
    hamming,
    near_duplicates,
    parse_phash,
)

BASE = "f0f0f0f00f0f0f0f"


def flip(hex_hash: str, bits: int) -> str:
    return f"{int(hex_hash, 16) ^ ((1 << bits) - 1):016x}"


def test_hamming_counts_differing_bits() -> None:
    assert hamming(BASE, BASE) == 0
    assert hamming(BASE, flip(BASE, 5)) == 5
    assert hamming("0" * 16, "f" * 16) == 64
    assert hamming(0, 0b1011) == 3


@pytest.mark.parametrize("bad", ["", "xyz", "0" * 17, "12 34", "0x12"])
def test_parse_phash_refuses_anything_but_hex(bad: str) -> None:
    with pytest.raises(ValueError, match="perceptual hash"):
        parse_phash(bad)


def test_near_duplicates_are_sorted_by_distance_and_thresholded() -> None:
    candidates = [
        ("far", flip(BASE, 20)),
        ("four", flip(BASE, 4)),
        ("same", BASE),
        ("six", flip(BASE, 6)),
        ("eight", flip(BASE, 8)),
    ]
    found = near_duplicates(BASE, candidates)
    assert [(d.key, d.distance) for d in found] == [("same", 0), ("four", 4), ("six", 6)]
    assert found[0] == NearDuplicate("same", BASE, 0)
    assert [d.key for d in near_duplicates(BASE, candidates, threshold=0)] == ["same"]
    assert len(near_duplicates(BASE, candidates, threshold=64)) == 5
    assert DEFAULT_THRESHOLD == 6


def test_ties_keep_the_candidates_order_and_bad_rows_are_skipped() -> None:
    candidates: list[tuple[int, str | None]] = [
        (1, flip(BASE, 2)),
        (2, None),
        (3, "not-hex"),
        (4, flip(BASE, 2)),
        (5, BASE.upper()),
    ]
    assert [d.key for d in near_duplicates(BASE, candidates)] == [5, 1, 4]


def test_no_candidates_and_bad_arguments() -> None:
    assert near_duplicates(BASE, []) == []
    with pytest.raises(ValueError, match="threshold"):
        near_duplicates(BASE, [], threshold=65)
    with pytest.raises(ValueError):
        near_duplicates("nope", [("a", BASE)])


def test_popcount_fallback_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.array([0, 1, 2**64 - 1, 0xF0F0, 2**63], dtype=np.uint64)
    expected = [0, 1, 64, 8, 1]
    assert similarity._popcount(values).tolist() == expected
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    assert similarity._popcount(values).tolist() == expected


@given(
    target=st.integers(0, 2**64 - 1),
    others=st.lists(st.integers(0, 2**64 - 1), max_size=30),
    threshold=st.integers(0, 64),
)
def test_agrees_with_a_plain_loop(target: int, others: list[int], threshold: int) -> None:
    candidates = [(i, f"{v:016x}") for i, v in enumerate(others)]
    found = near_duplicates(f"{target:016x}", candidates, threshold)
    expected = sorted(
        (
            (i, (target ^ v).bit_count())
            for i, v in enumerate(others)
            if (target ^ v).bit_count() <= threshold
        ),
        key=lambda pair: pair[1],
    )
    assert [(d.key, d.distance) for d in found] == expected
