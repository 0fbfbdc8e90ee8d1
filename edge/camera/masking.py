"""Privacy masking: find licence plates and faces, record where, and make them unreadable.

Detectors are the Haar cascades that ship inside opencv-python-headless 4.x
(``cv2.data.haarcascades``): ``haarcascade_frontalface_default.xml`` for faces and
``haarcascade_russian_plate_number.xml`` for plates. Nothing is downloaded. The plate cascade was
trained on Russian plates and also fires on windscreens and grilles, so each plate candidate is
verified: it must be narrower than ``plate_max_width_fraction`` of the frame, shaped like a plate,
and carry character strokes (edge density). Over-masking a real plate's neighbourhood is the safe
failure; a missed plate is the unsafe one (see docs/photos.md for the measured limits).

Detectors run on a downscaled copy (``detect_long_edge``) for speed; boxes are mapped back to
full resolution and padded before masking.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np

from edge.camera.config import MaskingConfig, View
from edge.camera.errors import DetectorUnavailableError
from edge.camera.imaging import Image, downscale_long_edge, to_gray

__all__ = [
    "Box",
    "Detector",
    "HaarFaceDetector",
    "HaarPlateDetector",
    "MaskKind",
    "MaskedRegion",
    "PrivacyMasker",
    "apply_mask",
    "cascade_path",
]

logger = logging.getLogger(__name__)

MaskKind = Literal["face", "plate"]

FACE_CASCADE = "haarcascade_frontalface_default.xml"
PLATE_CASCADE = "haarcascade_russian_plate_number.xml"


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in pixels: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    def scaled(self, factor: float) -> Box:
        """The same box in an image ``factor`` times larger."""
        return Box(
            round(self.x * factor),
            round(self.y * factor),
            round(self.w * factor),
            round(self.h * factor),
        )

    def padded(self, fraction: float, width: int, height: int) -> Box:
        """Grown by ``fraction`` of its size on every side, clipped to a ``width``×``height``
        frame."""
        dx, dy = round(self.w * fraction), round(self.h * fraction)
        x0, y0 = max(0, self.x - dx), max(0, self.y - dy)
        x1, y1 = min(width, self.x + self.w + dx), min(height, self.y + self.h + dy)
        return Box(x0, y0, max(0, x1 - x0), max(0, y1 - y0))

    def as_list(self) -> list[int]:
        """``[x, y, w, h]`` for JSON."""
        return [self.x, self.y, self.w, self.h]


@dataclass(frozen=True, slots=True)
class MaskedRegion:
    """One masked area, recorded in the report: which view, what was masked, where (full-frame
    pixels of the photo as uploaded)."""

    view: str
    kind: MaskKind
    box: Box

    def as_json(self) -> dict[str, object]:
        """JSON-ready form: ``{"view", "kind", "box": [x, y, w, h]}``."""
        return {"view": self.view, "kind": self.kind, "box": self.box.as_list()}


class Detector(Protocol):
    """Finds regions of one kind in a grey image; boxes are in that image's pixels."""

    kind: MaskKind

    def detect(self, gray: Image) -> list[Box]:
        """Return the boxes found in ``gray``."""
        ...


def cascade_path(name: str) -> Path:
    """Path of a Haar cascade shipped with OpenCV. Raises :class:`DetectorUnavailableError`."""
    base = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if not base:
        raise DetectorUnavailableError(name)
    path = Path(base) / name
    if not path.is_file():
        raise DetectorUnavailableError(str(path))
    return path


def _load_cascade(name: str) -> cv2.CascadeClassifier:
    path = cascade_path(name)
    classifier = cv2.CascadeClassifier(str(path))
    if classifier.empty():
        raise DetectorUnavailableError(str(path))
    return classifier


def _to_boxes(found: object) -> list[Box]:
    array = np.asarray(found, dtype=np.int64).reshape(-1, 4)
    return [Box(int(x), int(y), int(w), int(h)) for x, y, w, h in array]


class HaarFaceDetector:
    """Frontal faces with OpenCV's default frontal-face cascade."""

    kind: MaskKind = "face"

    def __init__(self, config: MaskingConfig) -> None:
        self._config = config
        self._cascade = _load_cascade(FACE_CASCADE)
        # CascadeClassifier keeps scratch state; one caller at a time.
        self._lock = threading.Lock()

    def detect(self, gray: Image) -> list[Box]:
        """Faces in ``gray``."""
        size = self._config.face_min_size
        with self._lock:
            found = self._cascade.detectMultiScale(
                gray,
                scaleFactor=self._config.face_scale_factor,
                minNeighbors=self._config.face_min_neighbors,
                minSize=(size, size),
            )
        return _to_boxes(found)


class HaarPlateDetector:
    """Licence plates: the shipped plate cascade, then a geometric and texture check."""

    kind: MaskKind = "plate"

    def __init__(self, config: MaskingConfig) -> None:
        self._config = config
        self._cascade = _load_cascade(PLATE_CASCADE)
        self._lock = threading.Lock()

    def detect(self, gray: Image) -> list[Box]:
        """Plates in ``gray`` that pass :meth:`looks_like_plate`."""
        with self._lock:
            found = self._cascade.detectMultiScale(
                gray,
                scaleFactor=self._config.plate_scale_factor,
                minNeighbors=self._config.plate_min_neighbors,
                minSize=(24, 8),
            )
        plates = [box for box in _to_boxes(found) if self.looks_like_plate(gray, box)]
        return _drop_enclosing(plates)

    def looks_like_plate(self, gray: Image, box: Box) -> bool:
        """Reject windscreens, grilles and flat panels the cascade also fires on."""
        width = gray.shape[1]
        if box.w > self._config.plate_max_width_fraction * width:
            return False
        aspect = box.w / max(1, box.h)
        if not 1.5 <= aspect <= 6.5:
            return False
        patch = gray[box.y : box.y + box.h, box.x : box.x + box.w]
        if patch.size == 0:
            return False
        edges = cv2.Canny(patch, 60, 160)
        density = float(np.count_nonzero(edges)) / float(edges.size)
        return density >= self._config.plate_min_edge_density


def _drop_enclosing(boxes: list[Box]) -> list[Box]:
    """Keep the tightest of nested candidates: the cascade also fires on the bumper around a
    plate, and masking the whole bumper hides condition the appraiser needs to see."""
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda b: b.w * b.h):
        inside = any(
            box.x <= k.x + k.w // 2 < box.x + box.w and box.y <= k.y + k.h // 2 < box.y + box.h
            for k in kept
        )
        if not inside:
            kept.append(box)
    return kept


def apply_mask(image: Image, box: Box, method: Literal["blur", "pixelate", "fill"]) -> None:
    """Make ``box`` of ``image`` unreadable, in place.

    ``blur`` keeps about six samples across the box and interpolates between them: as strong as
    a Gaussian with a sigma of a sixth of the box, at a fraction of its cost on large boxes, and
    no character or facial feature survives. ``pixelate`` keeps eight blocks across, each wider
    than a plate character. ``fill`` paints mid grey.
    """
    if box.w <= 0 or box.h <= 0:
        return
    roi = image[box.y : box.y + box.h, box.x : box.x + box.w]
    if method == "fill":
        roi[:] = 128
        return
    across = 6 if method == "blur" else 8
    cells_x = max(1, min(across, box.w))
    cells_y = max(1, min(box.h, round(cells_x * box.h / box.w)))
    small = cv2.resize(roi, (cells_x, cells_y), interpolation=cv2.INTER_AREA)
    upsample = cv2.INTER_LINEAR if method == "blur" else cv2.INTER_NEAREST
    roi[:] = cv2.resize(small, (box.w, box.h), interpolation=upsample)


class PrivacyMasker:
    """Detects and masks faces and plates. Build one per process (cascades load once) and call
    :meth:`mask` per frame; it is safe to share between threads."""

    def __init__(self, config: MaskingConfig, detectors: list[Detector] | None = None) -> None:
        self.config = config
        if detectors is None:
            detectors = []
            if config.enabled and config.faces:
                detectors.append(HaarFaceDetector(config))
            if config.enabled and config.plates:
                detectors.append(HaarPlateDetector(config))
        self._detectors = detectors

    def find(self, image: Image, view: str) -> list[MaskedRegion]:
        """The regions that :meth:`mask` would mask, in full-frame pixels, padded."""
        if not self.config.enabled:
            return []
        height, width = image.shape[:2]
        small, scale = downscale_long_edge(to_gray(image), self.config.detect_long_edge)
        plate_views = {v.value for v in self.config.plate_views}
        regions: list[MaskedRegion] = []
        for detector in self._detectors:
            if detector.kind == "plate" and view not in plate_views:
                continue
            for box in detector.detect(small):
                full = box.scaled(1.0 / scale).padded(self.config.padding, width, height)
                if full.w and full.h:
                    regions.append(MaskedRegion(view=view, kind=detector.kind, box=full))
        return regions

    def mask(self, image: Image, view: str | View) -> tuple[Image, list[MaskedRegion]]:
        """Return a masked copy of ``image`` and the regions masked. The input is not changed."""
        view_name = view.value if isinstance(view, View) else view
        regions = self.find(image, view_name)
        out = image.copy()
        for region in regions:
            apply_mask(out, region.box, self.config.method)
        if regions:
            logger.debug("masked %d region(s) in view %s", len(regions), view_name)
        return out, regions
