"""The per-photo pipeline: quality gates → downscale → privacy masking → JPEG (no metadata) →
sha256 + pHash → :class:`edge.protocol.PhotoRecord`.

Quality is judged on the frame as captured (masking would smooth away edges the sharpness gate
needs); the hashes are of what leaves the kiosk, the masked JPEG, so the gateway can verify and
compare exactly what it stores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2

from edge.camera.config import CameraConfig, QualityConfig, View
from edge.camera.hashing import encode_jpeg, phash_hex, sha256_hex
from edge.camera.imaging import Image, as_bgr, downscale_long_edge, read_image
from edge.camera.masking import MaskedRegion, PrivacyMasker
from edge.camera.quality import QualityResult, assess_quality
from edge.protocol import PhotoRecord

__all__ = ["PhotoPipeline", "ProcessedPhoto", "check_photo", "process_photo"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProcessedPhoto:
    """One photo ready to leave the kiosk."""

    record: PhotoRecord
    """What goes into the appraisal report (view, sha256, pHash, verdict, metrics)."""
    jpeg: bytes
    """The masked JPEG, without metadata; ``record.sha256`` is its sha256."""
    masked_regions: tuple[MaskedRegion, ...]
    """Faces and plates that were masked, in the JPEG's pixels."""
    quality: QualityResult
    """The quality verdict (the same reasons and metrics as the record)."""
    width: int
    height: int


class PhotoPipeline:
    """Holds what is costly to build (the cascades) and processes frames with one config.

    Build one per kiosk process and reuse it; :meth:`process` is safe to call from several
    threads.
    """

    def __init__(self, config: CameraConfig, masker: PrivacyMasker | None = None) -> None:
        self.config = config
        self.masker = masker if masker is not None else PrivacyMasker(config.masking)

    def process(self, image: Image, view: str | View) -> ProcessedPhoto:
        """Run the whole pipeline on a captured frame (BGR, BGRA or grey ``uint8``)."""
        view_name = view.value if isinstance(view, View) else view
        frame = as_bgr(image)
        quality = assess_quality(frame, self.config.quality)
        output, scale = downscale_long_edge(frame, self.config.output.max_long_edge)
        if scale != 1.0:
            logger.debug("view %s downscaled by %.3f for upload", view_name, scale)
        masked, regions = self.masker.mask(output, view_name)
        jpeg = encode_jpeg(masked, self.config.output.jpeg_quality)
        metrics = dict(quality.metrics)
        metrics["masked_faces"] = float(sum(1 for r in regions if r.kind == "face"))
        metrics["masked_plates"] = float(sum(1 for r in regions if r.kind == "plate"))
        metrics["jpeg_bytes"] = float(len(jpeg))
        record = PhotoRecord(
            view=view_name,
            sha256=sha256_hex(jpeg),
            phash=phash_hex(masked),
            passed=quality.passed,
            reasons=list(quality.reasons),
            metrics=metrics,
        )
        height, width = masked.shape[:2]
        return ProcessedPhoto(
            record=record,
            jpeg=jpeg,
            masked_regions=tuple(regions),
            quality=quality,
            width=width,
            height=height,
        )


def process_photo(
    image: Image,
    view: str | View,
    config: CameraConfig | None = None,
    *,
    masker: PrivacyMasker | None = None,
) -> ProcessedPhoto:
    """Process one frame. Convenience over :class:`PhotoPipeline`; pass a ``masker`` (or keep a
    pipeline) when processing many photos, so the cascades load once."""
    config = config or CameraConfig()
    return PhotoPipeline(config, masker).process(image, view)


def check_photo(path: Path, config: QualityConfig | None = None) -> QualityResult:
    """Quality-check an image file. Raises :class:`edge.camera.ImageDecodeError` naming the file
    when it cannot be read as an image."""
    return assess_quality(read_image(path), config or QualityConfig())


# OpenCV's own thread pool would fight the kiosk's other work on two cores for little gain on
# these small operations; callers who want it can raise it again.
def limit_opencv_threads(threads: int = 1) -> None:
    """Cap OpenCV's internal thread pool (call once at kiosk start, not at import)."""
    cv2.setNumThreads(threads)
