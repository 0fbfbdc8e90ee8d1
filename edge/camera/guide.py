"""The guided capture flow as pure state: which view to take next, when to ask for a retake, and
the words the kiosk shows the inspector.

:class:`CaptureGuide` is immutable; :meth:`CaptureGuide.record` and :meth:`CaptureGuide.skip`
return a new guide. No camera, no clock: the inspection state machine owns those and asks the
guide what to say.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from edge.camera.config import View
from edge.camera.quality import (
    REASON_BLURRED,
    REASON_DARK,
    REASON_GLARE,
    REASON_LOW_RESOLUTION,
    REASON_OVEREXPOSED,
)

__all__ = [
    "REASON_NO_FRAME",
    "CaptureGuide",
    "Prompt",
    "ViewOutcome",
    "advice_for",
    "view_label",
]

REASON_NO_FRAME = "no frame from the camera"

VIEW_LABELS: Mapping[str, str] = MappingProxyType(
    {
        View.FRONT: "front",
        View.REAR: "rear",
        View.LEFT: "left side",
        View.RIGHT: "right side",
        View.INTERIOR: "interior",
        View.DASHBOARD: "dashboard",
        View.VIN_PLATE: "VIN plate",
    }
)

INSTRUCTIONS: Mapping[str, str] = MappingProxyType(
    {
        View.FRONT: "Stand about 3 m in front of the car so the whole front, with the bumper and "
        "plate, fills the frame.",
        View.REAR: "Stand about 3 m behind the car so the whole rear, with the bumper and plate, "
        "fills the frame.",
        View.LEFT: "Stand level with the middle of the car's left side, far enough back that both "
        "wheels are in the frame.",
        View.RIGHT: "Stand level with the middle of the car's right side, far enough back that "
        "both wheels are in the frame.",
        View.INTERIOR: "From the open driver's door, take in the seats, steering wheel and "
        "console.",
        View.DASHBOARD: "With the ignition on, fill the frame with the instrument cluster so the "
        "odometer reading is sharp.",
        View.VIN_PLATE: "Fill the frame with the VIN plate (base of the windscreen or the door "
        "pillar) so every character is sharp.",
    }
)

ADVICE: Mapping[str, str] = MappingProxyType(
    {
        REASON_BLURRED: "hold the camera still and let it focus before you shoot",
        REASON_DARK: "add light: open the bay door, switch on the work light or the car's "
        "interior light",
        REASON_OVEREXPOSED: "move out of direct sunlight or turn away from the bright light",
        REASON_LOW_RESOLUTION: "the camera is set too low; ask support to check its resolution",
        REASON_GLARE: "change your angle so the reflections move off the paint and glass",
        REASON_NO_FRAME: "check the camera is connected, then try again",
    }
)


class ViewOutcome(StrEnum):
    """How a view ended."""

    PASSED = "passed"
    FAILED = "failed"  # every attempt failed; the last photo is kept with its reasons
    SKIPPED = "skipped"  # the inspector could not take it (e.g. no VIN plate visible)


def view_label(view: str) -> str:
    """Words for a view (``vin_plate`` → ``VIN plate``); unknown views keep their name."""
    return VIEW_LABELS.get(view, view.replace("_", " "))


def advice_for(reasons: Iterable[str]) -> list[str]:
    """One piece of advice per known reason, in order."""
    return [ADVICE[r] for r in reasons if r in ADVICE]


@dataclass(frozen=True, slots=True)
class Prompt:
    """What the kiosk shows next."""

    view: str
    attempt: int
    """1 for the first capture of the view, 2 for the first retake..."""
    max_attempts: int
    kind: Literal["capture", "retake"]
    reasons: tuple[str, ...]
    """Why the previous attempt failed (empty for a first capture)."""
    text: str


@dataclass(frozen=True, slots=True)
class CaptureGuide:
    """Progress through the required views. Build with :meth:`start`."""

    views: tuple[str, ...]
    max_attempts: int
    attempts: Mapping[str, int] = field(default_factory=dict)
    outcomes: Mapping[str, ViewOutcome] = field(default_factory=dict)
    last_reasons: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def start(cls, views: Iterable[str | View], max_attempts: int = 3) -> CaptureGuide:
        """A fresh guide over ``views`` (in order)."""
        names = tuple(v.value if isinstance(v, View) else v for v in views)
        if not names:
            raise ValueError("at least one view is required")
        if len(set(names)) != len(names):
            raise ValueError("each view may be listed once")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        return cls(views=names, max_attempts=max_attempts)

    @property
    def current_view(self) -> str | None:
        """The first view without an outcome, or None when every view is done."""
        for view in self.views:
            if view not in self.outcomes:
                return view
        return None

    @property
    def done(self) -> bool:
        """True once every view passed, failed for good, or was skipped."""
        return self.current_view is None

    def views_with(self, outcome: ViewOutcome) -> list[str]:
        """Views that ended with ``outcome``, in guide order."""
        return [v for v in self.views if self.outcomes.get(v) == outcome]

    def next_prompt(self) -> Prompt | None:
        """The instruction for the next capture, or None when done."""
        view = self.current_view
        if view is None:
            return None
        attempt = self.attempts.get(view, 0) + 1
        label = view_label(view)
        instruction = INSTRUCTIONS.get(view, f"Photograph the {label}.")
        if attempt == 1:
            return Prompt(
                view=view,
                attempt=1,
                max_attempts=self.max_attempts,
                kind="capture",
                reasons=(),
                text=f"Photo {self.views.index(view) + 1} of {len(self.views)}: the {label}. "
                f"{instruction}",
            )
        reasons = self.last_reasons.get(view, ())
        why = ", ".join(reasons) if reasons else "it did not pass the checks"
        advice = advice_for(reasons)
        tip = f" To fix it: {'; '.join(advice)}." if advice else ""
        return Prompt(
            view=view,
            attempt=attempt,
            max_attempts=self.max_attempts,
            kind="retake",
            reasons=reasons,
            text=f"Retake the {label} photo (attempt {attempt} of {self.max_attempts}): "
            f"{why}.{tip}",
        )

    def record(self, view: str | View, passed: bool, reasons: Iterable[str] = ()) -> CaptureGuide:
        """The guide after a capture of ``view`` passed or failed with ``reasons``.

        A failing view is retaken until ``max_attempts``; then it ends as FAILED (the report
        keeps the photo with its reasons so an appraiser can judge it).
        """
        name = view.value if isinstance(view, View) else view
        if name != self.current_view:
            raise ValueError(f"expected a photo of {self.current_view!r}, got {name!r}")
        attempts = {**self.attempts, name: self.attempts.get(name, 0) + 1}
        reason_tuple = tuple(reasons)
        last = {**self.last_reasons, name: reason_tuple}
        outcomes = dict(self.outcomes)
        if passed:
            outcomes[name] = ViewOutcome.PASSED
        elif attempts[name] >= self.max_attempts:
            outcomes[name] = ViewOutcome.FAILED
        return replace(self, attempts=attempts, outcomes=outcomes, last_reasons=last)

    def skip(self, view: str | View, why: str) -> CaptureGuide:
        """The guide after the inspector skipped ``view`` (``why`` is kept as its reason)."""
        name = view.value if isinstance(view, View) else view
        if name not in self.views:
            raise ValueError(f"{name!r} is not one of the required views")
        if name in self.outcomes:
            raise ValueError(f"{name!r} is already {self.outcomes[name].value}")
        outcomes = {**self.outcomes, name: ViewOutcome.SKIPPED}
        last = {**self.last_reasons, name: (why,)}
        return replace(self, outcomes=outcomes, last_reasons=last)
