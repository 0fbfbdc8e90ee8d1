"""Quality gates: pure functions from a frame to numeric metrics and plain-word reasons.

Metrics (all floats, so they fit ``PhotoRecord.metrics``):

- ``width``, ``height``: the frame as captured, pixels;
- ``sharpness``: variance of the Laplacian of a grey copy downscaled to
  ``analysis_long_edge`` and contrast-stretched between its 1st and 99th percentiles, so neither
  the camera's resolution nor the exposure moves the figure much;
- ``sharpness_min_axis``: the smaller of the variances of the second derivative along x and
  along y on the same copy; camera shake smears one axis and leaves the other sharp;
- ``mean_luminance`` (0–255), ``dark_fraction`` (share at or below ``dark_level``),
  ``clipped_fraction`` (share at or above ``bright_level``);
- ``glare_fraction``: share of the frame covered by colourless clipped blobs larger than
  ``glare_min_blob_fraction`` (specular highlights on paint and glass);
- ``glare_blobs``: how many such blobs.

A frame can fail for several reasons at once; "too blurred" is only judged when the exposure is
usable, because a black or white frame has no edges to measure and the inspector should fix the
light first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import cv2
import numpy as np

from edge.camera.config import QualityConfig
from edge.camera.imaging import Image, downscale_long_edge, to_gray

__all__ = [
    "REASON_BLURRED",
    "REASON_DARK",
    "REASON_GLARE",
    "REASON_LOW_RESOLUTION",
    "REASON_OVEREXPOSED",
    "QualityResult",
    "assess_quality",
    "judge",
    "measure",
]

REASON_BLURRED: Final = "too blurred"
REASON_DARK: Final = "too dark"
REASON_OVEREXPOSED: Final = "overexposed"
REASON_LOW_RESOLUTION: Final = "resolution too low"
REASON_GLARE: Final = "glare"


@dataclass(frozen=True, slots=True)
class QualityResult:
    """The verdict on one frame: ``passed`` is True exactly when ``reasons`` is empty."""

    passed: bool
    reasons: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        """The shape ``kioskmatch kiosk check-photo --json`` prints."""
        return {"passed": self.passed, "reasons": list(self.reasons), "metrics": dict(self.metrics)}


def _sharpness(gray_small: Image) -> tuple[float, float]:
    """(variance of the Laplacian, smaller of the variances of the 2nd x and y derivatives)."""
    low, high = np.percentile(gray_small, (1.0, 99.0))
    span = float(high - low)
    if span < 1.0:
        return 0.0, 0.0  # a flat frame has no edges at all
    # Stretch to the full range in float so a dim but sharp frame scores like a well-lit one.
    stretched = (gray_small.astype(np.float32) - float(low)) * np.float32(255.0 / span)
    np.clip(stretched, 0.0, 255.0, out=stretched)
    laplacian = float(cv2.Laplacian(stretched, cv2.CV_32F).var())
    # Camera shake smears along one axis only; edges across it keep the Laplacian high, so
    # each axis is also measured on its own.
    dxx = float(cv2.Sobel(stretched, cv2.CV_32F, 2, 0, ksize=1).var())
    dyy = float(cv2.Sobel(stretched, cv2.CV_32F, 0, 2, ksize=1).var())
    return laplacian, min(dxx, dyy)


def _glare(small_bgr: Image, gray_small: Image, config: QualityConfig) -> tuple[float, int]:
    saturation = cv2.cvtColor(small_bgr, cv2.COLOR_BGR2HSV)[:, :, 1]
    colourless_clipped = (gray_small >= config.bright_level) & (
        saturation <= config.glare_max_saturation
    )
    if not colourless_clipped.any():
        return 0.0, 0
    # Opening removes single sparkling pixels so only real highlights are counted.
    mask = cv2.morphologyEx(
        colourless_clipped.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)
    )
    count, _labels, stats, _centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    total = float(mask.shape[0] * mask.shape[1])
    min_area = config.glare_min_blob_fraction * total
    areas = stats[1:count, cv2.CC_STAT_AREA]
    big = areas[areas >= min_area]
    return float(big.sum()) / total, int(big.size)


def measure(image: Image, config: QualityConfig) -> dict[str, float]:
    """Compute every quality metric of a BGR (or grey) frame."""
    height, width = image.shape[:2]
    gray = to_gray(image)
    # Exposure statistics come from the analysis copy too: area averaging keeps the histogram
    # shape and makes the gate ~10× cheaper at 1080p.
    gray_small, _ = downscale_long_edge(gray, config.analysis_long_edge)
    total = float(gray_small.size)
    hist = np.bincount(gray_small.ravel(), minlength=256).astype(np.float64)
    mean = float(np.dot(hist, np.arange(256)) / total)
    dark = float(hist[: config.dark_level + 1].sum() / total)
    clipped = float(hist[config.bright_level :].sum() / total)
    if image.ndim == 3:
        small_bgr, _ = downscale_long_edge(image, config.analysis_long_edge)
        glare_fraction, glare_blobs = _glare(small_bgr, gray_small, config)
    else:
        glare_fraction, glare_blobs = 0.0, 0
    sharpness, min_axis = _sharpness(gray_small)
    return {
        "width": float(width),
        "height": float(height),
        "sharpness": round(sharpness, 3),
        "sharpness_min_axis": round(min_axis, 3),
        "mean_luminance": round(mean, 3),
        "dark_fraction": round(dark, 5),
        "clipped_fraction": round(clipped, 5),
        "glare_fraction": round(glare_fraction, 5),
        "glare_blobs": float(glare_blobs),
    }


def judge(metrics: dict[str, float], config: QualityConfig) -> tuple[str, ...]:
    """Turn metrics into reasons (empty when the frame passes). Order: resolution, exposure,
    glare, sharpness — roughly the order an inspector should fix them in."""
    reasons: list[str] = []
    long_edge = max(metrics["width"], metrics["height"])
    short_edge = min(metrics["width"], metrics["height"])
    if long_edge < config.min_long_edge or short_edge < config.min_short_edge:
        reasons.append(REASON_LOW_RESOLUTION)
    too_dark = (
        metrics["mean_luminance"] < config.min_mean_luminance
        or metrics["dark_fraction"] > config.max_dark_fraction
    )
    overexposed = (
        metrics["mean_luminance"] > config.max_mean_luminance
        or metrics["clipped_fraction"] > config.max_clipped_fraction
    )
    if too_dark:
        reasons.append(REASON_DARK)
    if overexposed:
        reasons.append(REASON_OVEREXPOSED)
    # Glare is local saturation in an otherwise usable frame; a blown-out frame says so already.
    if not overexposed and metrics["glare_fraction"] > config.max_glare_fraction:
        reasons.append(REASON_GLARE)
    blurred = (
        metrics["sharpness"] < config.min_sharpness
        or metrics["sharpness_min_axis"] < config.min_axis_sharpness
    )
    if blurred and not (too_dark or overexposed):
        reasons.append(REASON_BLURRED)
    return tuple(reasons)


def assess_quality(image: Image, config: QualityConfig | None = None) -> QualityResult:
    """Measure a frame and judge it against ``config`` (defaults when None)."""
    config = config or QualityConfig()
    metrics = measure(image, config)
    reasons = judge(metrics, config)
    return QualityResult(passed=not reasons, reasons=reasons, metrics=metrics)
