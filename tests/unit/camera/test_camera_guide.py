"""The guided capture flow: order, retakes, give-up, skips, and the words shown."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.camera.config import ALL_VIEWS, View
from edge.camera.guide import CaptureGuide, ViewOutcome, advice_for, view_label


def test_views_come_in_order_with_instructions() -> None:
    guide = CaptureGuide.start([View.FRONT, View.VIN_PLATE], max_attempts=2)
    prompt = guide.next_prompt()
    assert prompt is not None
    assert (prompt.view, prompt.attempt, prompt.kind) == ("front", 1, "capture")
    assert prompt.text.startswith("Photo 1 of 2: the front.")
    guide = guide.record("front", passed=True)
    prompt = guide.next_prompt()
    assert prompt is not None and prompt.view == "vin_plate"
    assert "VIN plate" in prompt.text and "every character is sharp" in prompt.text
    guide = guide.record(View.VIN_PLATE, passed=True)
    assert guide.done and guide.next_prompt() is None
    assert guide.views_with(ViewOutcome.PASSED) == ["front", "vin_plate"]


def test_a_failed_photo_is_retaken_with_reasons_and_advice() -> None:
    guide = CaptureGuide.start(["dashboard"], max_attempts=3)
    guide = guide.record("dashboard", passed=False, reasons=["too dark", "too blurred"])
    prompt = guide.next_prompt()
    assert prompt is not None
    assert (prompt.kind, prompt.attempt, prompt.reasons) == (
        "retake",
        2,
        ("too dark", "too blurred"),
    )
    assert prompt.text.startswith(
        "Retake the dashboard photo (attempt 2 of 3): too dark, too blurred."
    )
    assert "add light" in prompt.text and "hold the camera still" in prompt.text


def test_after_max_attempts_the_view_is_kept_as_failed_and_the_flow_moves_on() -> None:
    guide = CaptureGuide.start(["front", "rear"], max_attempts=2)
    guide = guide.record("front", passed=False, reasons=["glare"])
    guide = guide.record("front", passed=False, reasons=["glare"])
    assert guide.outcomes["front"] is ViewOutcome.FAILED
    assert guide.last_reasons["front"] == ("glare",)
    assert guide.current_view == "rear"


def test_skip_records_why() -> None:
    guide = CaptureGuide.start(["front", "vin_plate"]).skip("vin_plate", "plate missing")
    assert guide.views_with(ViewOutcome.SKIPPED) == ["vin_plate"]
    assert guide.last_reasons["vin_plate"] == ("plate missing",)
    assert guide.current_view == "front"
    with pytest.raises(ValueError, match="already skipped"):
        guide.skip("vin_plate", "again")
    with pytest.raises(ValueError, match="not one of the required views"):
        guide.skip("roof", "no")


def test_recording_the_wrong_view_is_refused() -> None:
    guide = CaptureGuide.start(["front", "rear"])
    with pytest.raises(ValueError, match="expected a photo of 'front', got 'rear'"):
        guide.record("rear", passed=True)


@pytest.mark.parametrize(
    ("views", "attempts", "message"),
    [([], 3, "at least one view"), (["front", "front"], 3, "once"), (["front"], 0, "at least 1")],
)
def test_start_validates(views: list[str], attempts: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CaptureGuide.start(views, attempts)


def test_guide_is_immutable() -> None:
    first = CaptureGuide.start(["front"])
    second = first.record("front", passed=False, reasons=["too dark"])
    assert first.attempts == {} and second.attempts == {"front": 1}


def test_labels_and_advice() -> None:
    assert view_label("vin_plate") == "VIN plate"
    assert view_label("left") == "left side"
    assert view_label("spare_wheel") == "spare wheel"
    assert advice_for(["overexposed", "unknown"]) == [
        "move out of direct sunlight or turn away from the bright light"
    ]


@given(
    max_attempts=st.integers(1, 4),
    verdicts=st.lists(st.booleans(), min_size=0, max_size=40),
)
def test_the_flow_always_ends_within_its_attempt_budget(
    max_attempts: int, verdicts: list[bool]
) -> None:
    guide = CaptureGuide.start(ALL_VIEWS, max_attempts)
    captures = 0
    feed = iter(verdicts)
    while (prompt := guide.next_prompt()) is not None:
        assert prompt.attempt <= max_attempts
        guide = guide.record(prompt.view, passed=next(feed, True), reasons=["too blurred"])
        captures += 1
    assert captures <= len(ALL_VIEWS) * max_attempts
    assert set(guide.outcomes) == {v.value for v in ALL_VIEWS}
    for view, count in guide.attempts.items():
        assert 1 <= count <= max_attempts
        if guide.outcomes[view] is ViewOutcome.FAILED:
            assert count == max_attempts
