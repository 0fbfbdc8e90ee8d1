"""Quality gates on drawn scenes and on real sample photos (scikit-image's data)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.camera.config import QualityConfig
from edge.camera.quality import (
    REASON_BLURRED,
    REASON_DARK,
    REASON_GLARE,
    REASON_LOW_RESOLUTION,
    REASON_OVEREXPOSED,
    assess_quality,
    judge,
)
from edge.camera.synthetic import (
    blurred,
    car_scene,
    darkened,
    motion_blurred,
    overexposed,
    with_glare,
)

METRICS = {
    "width",
    "height",
    "sharpness",
    "sharpness_min_axis",
    "mean_luminance",
    "dark_fraction",
    "clipped_fraction",
    "glare_fraction",
    "glare_blobs",
}


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return car_scene(seed=3)


def test_a_sharp_well_exposed_scene_passes(scene: np.ndarray) -> None:
    result = assess_quality(scene)
    assert result.passed, result.reasons
    assert result.reasons == ()
    assert set(result.metrics) == METRICS
    assert all(isinstance(v, float) for v in result.metrics.values())
    assert result.metrics["width"] == 1920.0 and result.metrics["height"] == 1080.0


@pytest.mark.parametrize("sigma", [3.0, 5.0, 8.0])
def test_defocus_fails_as_too_blurred(scene: np.ndarray, sigma: float) -> None:
    result = assess_quality(blurred(scene, sigma))
    assert result.reasons == (REASON_BLURRED,)
    assert result.metrics["sharpness"] < QualityConfig().min_sharpness


@pytest.mark.parametrize("length", [15, 25])
def test_camera_shake_fails_as_too_blurred(scene: np.ndarray, length: int) -> None:
    shaken = motion_blurred(scene, length)
    result = assess_quality(shaken)
    assert result.reasons == (REASON_BLURRED,)
    # The Laplacian alone would pass it: the edges across the shake stay sharp.
    assert result.metrics["sharpness"] > QualityConfig().min_sharpness


def test_vertical_camera_shake_fails_as_too_blurred(scene: np.ndarray) -> None:
    shaken = np.ascontiguousarray(np.rot90(motion_blurred(np.rot90(scene), 25), -1))
    assert assess_quality(shaken).reasons == (REASON_BLURRED,)


def test_sharpness_falls_as_blur_grows(scene: np.ndarray) -> None:
    values = [
        assess_quality(blurred(scene, s) if s else scene).metrics["sharpness"]
        for s in (0, 1, 2, 3, 5)
    ]
    assert values == sorted(values, reverse=True)


def test_dark_frame_fails_as_too_dark_and_not_as_blurred(scene: np.ndarray) -> None:
    result = assess_quality(darkened(scene, 0.25))
    assert result.reasons == (REASON_DARK,)
    assert result.metrics["mean_luminance"] < QualityConfig().min_mean_luminance


def test_blown_out_frame_fails_as_overexposed(scene: np.ndarray) -> None:
    result = assess_quality(overexposed(scene, 1.8))
    assert result.reasons == (REASON_OVEREXPOSED,)
    assert result.metrics["clipped_fraction"] > QualityConfig().max_clipped_fraction


def test_specular_highlights_fail_as_glare(scene: np.ndarray) -> None:
    result = assess_quality(with_glare(scene, fraction=0.04, seed=1))
    assert result.reasons == (REASON_GLARE,)
    assert result.metrics["glare_blobs"] >= 1
    assert result.metrics["glare_fraction"] > QualityConfig().max_glare_fraction


def test_small_sparkles_are_not_glare(scene: np.ndarray) -> None:
    speckled = scene.copy()
    rng = np.random.default_rng(0)
    ys = rng.integers(0, speckled.shape[0], 400)
    xs = rng.integers(0, speckled.shape[1], 400)
    speckled[ys, xs] = 255
    result = assess_quality(speckled)
    assert REASON_GLARE not in result.reasons
    assert result.metrics["glare_blobs"] == 0


def test_low_resolution_is_reported(scene: np.ndarray) -> None:
    small = cv2.resize(scene, (640, 360), interpolation=cv2.INTER_AREA)
    result = assess_quality(small)
    assert REASON_LOW_RESOLUTION in result.reasons
    portrait = np.ascontiguousarray(np.rot90(scene))
    assert REASON_LOW_RESOLUTION not in assess_quality(portrait).reasons


def test_sharpness_does_not_depend_on_resolution() -> None:
    # The same drawing at 1080p and 4K: the analysis copy makes the figures comparable.
    hd = assess_quality(car_scene(1920, 1080, seed=5)).metrics["sharpness"]
    uhd = assess_quality(car_scene(3840, 2160, seed=5)).metrics["sharpness"]
    assert 0.5 < uhd / hd < 2.0


def test_sharpness_does_not_depend_much_on_exposure(scene: np.ndarray) -> None:
    bright = assess_quality(scene).metrics["sharpness"]
    dim = assess_quality(darkened(scene, 0.5)).metrics["sharpness"]
    assert 0.6 < dim / bright < 1.6


def test_grey_and_flat_frames_are_handled() -> None:
    grey = cv2.cvtColor(car_scene(seed=1), cv2.COLOR_BGR2GRAY)
    assert assess_quality(grey).passed
    flat = np.full((1080, 1920, 3), 128, np.uint8)
    result = assess_quality(flat)
    assert result.metrics["sharpness"] == 0.0
    assert result.reasons == (REASON_BLURRED,)


def test_several_reasons_at_once() -> None:
    small_dark = darkened(cv2.resize(car_scene(seed=2), (800, 450)), 0.2)
    assert assess_quality(small_dark).reasons == (REASON_LOW_RESOLUTION, REASON_DARK)


def test_thresholds_come_from_config(scene: np.ndarray) -> None:
    soft = blurred(scene, 3.0)
    assert not assess_quality(soft).passed
    lenient = QualityConfig(min_sharpness=5.0, min_axis_sharpness=5.0)
    assert assess_quality(soft, lenient).passed


def test_judge_is_pure_over_metrics() -> None:
    metrics = {
        "width": 1920.0,
        "height": 1080.0,
        "sharpness": 500.0,
        "sharpness_min_axis": 100.0,
        "mean_luminance": 120.0,
        "dark_fraction": 0.0,
        "clipped_fraction": 0.0,
        "glare_fraction": 0.0,
        "glare_blobs": 0.0,
    }
    config = QualityConfig()
    assert judge(metrics, config) == ()
    assert judge({**metrics, "sharpness": 1.0}, config) == (REASON_BLURRED,)
    assert judge({**metrics, "sharpness_min_axis": 1.0}, config) == (REASON_BLURRED,)
    assert judge({**metrics, "glare_fraction": 0.5}, config) == (REASON_GLARE,)
    # Glare is not reported on a frame that is blown out anyway.
    assert judge({**metrics, "glare_fraction": 0.5, "clipped_fraction": 0.5}, config) == (
        REASON_OVEREXPOSED,
    )


def test_as_json_has_the_cli_shape(scene: np.ndarray) -> None:
    payload = assess_quality(darkened(scene, 0.2)).as_json()
    assert payload["passed"] is False
    assert payload["reasons"] == ["too dark"]
    assert isinstance(payload["metrics"], dict)


# --- real photos shipped by scikit-image (BSD-3) ----------------------------------------------

skimage_data = pytest.importorskip("skimage.data")
SAMPLE_CONFIG = QualityConfig(min_long_edge=256, min_short_edge=256)


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "camera", "rocket"])
def test_real_photos_pass_and_their_blurred_copies_fail(name: str) -> None:
    image = getattr(skimage_data, name)()
    if image.ndim == 3:
        image = cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2BGR)
    assert assess_quality(image, SAMPLE_CONFIG).passed
    # These photos are smaller than the analysis size, so σ=1.5 here is σ≈4.5 at 1080p.
    assert assess_quality(blurred(image, 1.5), SAMPLE_CONFIG).reasons == (REASON_BLURRED,)
    assert REASON_DARK in assess_quality(darkened(image, 0.15), SAMPLE_CONFIG).reasons
