"""Walk the inspector through the required views with a real source: prompt, grab, process,
retake on failure. The only IO here is the source and the ``on_prompt`` callback; the decisions
are :class:`edge.camera.guide.CaptureGuide`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.camera.errors import FrameUnavailableError
from edge.camera.guide import REASON_NO_FRAME, CaptureGuide, Prompt
from edge.camera.masking import MaskedRegion
from edge.camera.pipeline import PhotoPipeline, ProcessedPhoto
from edge.camera.sources import FrameSource

__all__ = ["CaptureRun", "capture_views"]

logger = logging.getLogger(__name__)


@dataclass
class CaptureRun:
    """The result of a guided capture: the last photo taken of each view (passing or not), and
    the guide's final state (outcomes, attempts, reasons)."""

    guide: CaptureGuide
    photos: dict[str, ProcessedPhoto] = field(default_factory=dict)

    @property
    def masked_regions(self) -> list[MaskedRegion]:
        """Every masked region, in view order."""
        photos = [self.photos[v] for v in self.guide.views if v in self.photos]
        return [region for photo in photos for region in photo.masked_regions]


def capture_views(
    source: FrameSource,
    pipeline: PhotoPipeline,
    *,
    guide: CaptureGuide | None = None,
    on_prompt: Callable[[Prompt], None] | None = None,
) -> CaptureRun:
    """Capture every required view from an open ``source``.

    ``on_prompt`` is called before each capture with the text to show; the kiosk's UI blocks in
    it until the inspector presses the shutter. A view that gives no frame counts as a failed
    attempt ("no frame from the camera").
    """
    guide = guide or CaptureGuide.start(
        pipeline.config.required_views, pipeline.config.max_attempts
    )
    run = CaptureRun(guide=guide)
    while (prompt := run.guide.next_prompt()) is not None:
        if on_prompt is not None:
            on_prompt(prompt)
        try:
            frame = source.grab(prompt.view)
        except FrameUnavailableError as exc:
            logger.warning("%s", exc)
            run.guide = run.guide.record(prompt.view, passed=False, reasons=[REASON_NO_FRAME])
            continue
        photo = pipeline.process(frame, prompt.view)
        run.photos[prompt.view] = photo
        run.guide = run.guide.record(prompt.view, photo.record.passed, photo.record.reasons)
        logger.info(
            "view %s attempt %d: %s",
            prompt.view,
            prompt.attempt,
            "passed" if photo.record.passed else ", ".join(photo.record.reasons),
        )
    return run
