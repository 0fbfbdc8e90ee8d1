"""Drawn scenes for the demo, the tests and the benchmark: a car-like picture with a plate, and
the degradations the quality gates must catch (blur, darkness, overexposure, glare).

Deterministic for a given seed; no files, no downloads.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.camera.imaging import Image, u8

__all__ = [
    "PLATE_TEXTS",
    "blurred",
    "car_scene",
    "darkened",
    "motion_blurred",
    "overexposed",
    "with_glare",
]

PLATE_TEXTS = ("7ABC123", "KM 4821", "X9Y 55Z", "3JDL774", "AB12 CDE")


def car_scene(width: int = 1920, height: int = 1080, *, seed: int = 0, plate: bool = True) -> Image:
    """A car seen from the front or rear with a licence plate, on a textured background.

    Returns the BGR image; with ``plate`` the plate's box is where :func:`plate_box` says.
    """
    rng = np.random.default_rng(seed)
    img = np.empty((height, width, 3), np.uint8)
    # Sky-to-ground vertical gradient.
    top = rng.integers(150, 215, 3)
    bottom = rng.integers(110, 170, 3)
    ramp = np.linspace(0.0, 1.0, height)[:, None]
    img[:] = (top[None, :] * (1 - ramp) + bottom[None, :] * ramp).astype(np.uint8)[:, None, :]
    horizon = int(height * rng.uniform(0.55, 0.68))
    img[horizon:] = rng.integers(60, 110, 3).astype(np.uint8)
    # Background clutter: buildings and poles, so scenes differ in texture as real ones do.
    for _ in range(int(rng.integers(6, 14))):
        x = int(rng.integers(0, width))
        w = int(rng.integers(width // 30, width // 8))
        h = int(rng.integers(height // 10, horizon))
        colour = tuple(int(c) for c in rng.integers(70, 200, 3))
        cv2.rectangle(img, (x, horizon - h), (x + w, horizon), colour, -1)
        for wy in range(horizon - h + 12, horizon - 12, 28):
            cv2.line(img, (x + 6, wy), (x + w - 6, wy), (40, 40, 40), 2)
    for _ in range(int(rng.integers(20, 40))):
        x1, y1 = int(rng.integers(0, width)), int(rng.integers(horizon, height))
        x2, y2 = x1 + int(rng.integers(-200, 200)), y1 + int(rng.integers(-20, 20))
        cv2.line(img, (x1, y1), (x2, y2), (130, 130, 130), 2)
    # The car: body, cabin, windscreen, lights, wheels, grille.
    cx = width // 2 + int(rng.integers(-width // 10, width // 10))
    body_w = int(width * rng.uniform(0.5, 0.62))
    body_h = int(height * rng.uniform(0.3, 0.38))
    body_top = int(height * 0.42)
    x0, x1 = cx - body_w // 2, cx + body_w // 2
    colour = tuple(int(c) for c in rng.integers(20, 200, 3))
    cv2.rectangle(img, (x0, body_top), (x1, body_top + body_h), colour, -1)
    cab_top = body_top - int(body_h * 0.45)
    cv2.rectangle(img, (x0 + body_w // 8, cab_top), (x1 - body_w // 8, body_top), colour, -1)
    cv2.rectangle(
        img, (x0 + body_w // 6, cab_top + 12), (x1 - body_w // 6, body_top - 8), (90, 75, 60), -1
    )
    for lx in (x0 + body_w // 12, x1 - body_w // 12):
        cv2.ellipse(
            img,
            (lx, body_top + body_h // 4),
            (body_w // 16, body_h // 10),
            0,
            0,
            360,
            (200, 230, 240),
            -1,
        )
    for gy in range(body_top + body_h // 4, body_top + body_h // 2, 9):
        cv2.line(img, (cx - body_w // 6, gy), (cx + body_w // 6, gy), (30, 30, 30), 3)
    wheel_r = int(body_h * 0.32)
    for wx in (x0 + body_w // 6, x1 - body_w // 6):
        cv2.circle(img, (wx, body_top + body_h), wheel_r, (20, 20, 20), -1)
        cv2.circle(img, (wx, body_top + body_h), wheel_r // 2, (150, 150, 150), -1)
    if plate:
        px, py, pw, ph = plate_box(width, height, cx=cx, body_top=body_top, body_h=body_h)
        cv2.rectangle(img, (px, py), (px + pw, py + ph), (235, 235, 235), -1)
        cv2.rectangle(img, (px, py), (px + pw, py + ph), (15, 15, 15), max(2, ph // 20))
        text = PLATE_TEXTS[int(rng.integers(0, len(PLATE_TEXTS)))]
        scale = ph / 48.0
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(2, ph // 18))
        cv2.putText(
            img,
            text,
            (px + (pw - tw) // 2, py + (ph + th) // 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (15, 15, 15),
            max(2, ph // 18),
            cv2.LINE_AA,
        )
    # Sensor noise, so a blurred frame is not unnaturally clean.
    noise = rng.normal(0.0, 2.5, img.shape).astype(np.float32)
    return u8(np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8))


def plate_box(
    width: int, height: int, *, cx: int, body_top: int, body_h: int
) -> tuple[int, int, int, int]:
    """Where :func:`car_scene` draws the plate (x, y, w, h)."""
    pw = int(width * 0.15)
    ph = int(pw * 0.26)
    return cx - pw // 2, body_top + int(body_h * 0.62), pw, ph


def blurred(image: Image, sigma: float) -> Image:
    """Gaussian defocus of ``sigma`` pixels."""
    return u8(cv2.GaussianBlur(image, (0, 0), sigma))


def motion_blurred(image: Image, length: int) -> Image:
    """Horizontal camera shake over ``length`` pixels."""
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    return u8(cv2.filter2D(image, -1, kernel))


def darkened(image: Image, factor: float) -> Image:
    """Underexposure: every pixel times ``factor`` (< 1)."""
    return u8(cv2.convertScaleAbs(image, alpha=factor))


def overexposed(image: Image, gain: float, offset: float = 40.0) -> Image:
    """Overexposure: gain and lift, clipping at white."""
    return u8(cv2.convertScaleAbs(image, alpha=gain, beta=offset))


def with_glare(image: Image, *, fraction: float = 0.03, seed: int = 0) -> Image:
    """Specular highlights: a few saturated white ellipses covering about ``fraction``."""
    rng = np.random.default_rng(seed)
    out = image.copy()
    height, width = out.shape[:2]
    blobs = 3
    area_each = fraction * width * height / blobs
    for _ in range(blobs):
        ax = int(np.sqrt(area_each / np.pi) * 1.6)
        ay = max(2, int(area_each / np.pi / ax))
        centre = (int(rng.integers(ax, width - ax)), int(rng.integers(ay, height - ay)))
        cv2.ellipse(out, centre, (ax, ay), float(rng.uniform(0, 180)), 0, 360, (255, 255, 255), -1)
    return out
