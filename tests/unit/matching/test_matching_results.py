"""LtvCurve: a window on one shared array that behaves as the tuple of floats it stands for."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from gateway.matching import LtvCurve


def _windows() -> tuple[LtvCurve, LtvCurve]:
    flat = np.array([80.0, 79.51, 0.0, 99.99, 50.25, 12.5, 0.0], np.float64)
    flat.flags.writeable = False
    return LtvCurve(flat, 0, 3), LtvCurve(flat, 3, 7)


def test_a_window_is_its_own_floats() -> None:
    first, second = _windows()
    assert len(first) == 3 and len(second) == 4
    assert list(first) == [80.0, 79.51, 0.0]
    assert second.tolist() == [99.99, 50.25, 12.5, 0.0]
    assert all(type(v) is float for v in second)
    assert second[0] == 99.99 and second[-1] == 0.0 and second[-4] == 99.99
    assert second[1:3] == (50.25, 12.5)
    assert max(second) == 99.99 and 12.5 in second and second.index(12.5) == 2
    with pytest.raises(IndexError):
        second[4]
    with pytest.raises(IndexError):
        second[-5]


def test_curves_compare_and_hash_as_tuples() -> None:
    first, second = _windows()
    assert first == (80.0, 79.51, 0.0)
    assert (80.0, 79.51, 0.0) == first  # noqa: SIM300  # the tuple on the left, on purpose
    assert first == LtvCurve.of([80.0, 79.51, 0.0])
    assert first != second and first != [80.0, 79.51, 0.0]
    assert hash(first) == hash((80.0, 79.51, 0.0))
    assert repr(first) == "LtvCurve((80.0, 79.51, 0.0))"


def test_a_curve_survives_pickling_without_its_neighbours() -> None:
    _, second = _windows()
    back = pickle.loads(pickle.dumps(second))
    assert back == second and len(back._values) == 4


def test_the_shared_array_cannot_be_changed_through_a_curve() -> None:
    first, _ = _windows()
    with pytest.raises(ValueError):
        first._values[0] = 1.0
    made = LtvCurve.of([1.0, 2.0])
    with pytest.raises(ValueError):
        made._values[0] = 3.0
