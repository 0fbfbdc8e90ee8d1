"""Camera configuration: defaults, unknown keys, the source union, bounds and cross-field rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from edge.camera.config import (
    ALL_VIEWS,
    CameraConfig,
    FolderSourceConfig,
    QualityConfig,
    RtspSourceConfig,
    SourceConfig,
    V4l2SourceConfig,
    View,
)


def test_defaults_are_a_usable_kiosk_config() -> None:
    config = CameraConfig()
    assert isinstance(config.source, V4l2SourceConfig)
    assert config.required_views == ALL_VIEWS
    assert [v.value for v in config.required_views] == [
        "front",
        "rear",
        "left",
        "right",
        "interior",
        "dashboard",
        "vin_plate",
    ]
    assert config.output.jpeg_quality == 85


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"type": "v4l2", "device": "/dev/video2"}, V4l2SourceConfig),
        ({"type": "v4l2", "device": 1}, V4l2SourceConfig),
        ({"type": "rtsp", "url": "rtsp://u:p@192.0.2.1:554/s1"}, RtspSourceConfig),
        ({"type": "folder", "path": "demo/photos"}, FolderSourceConfig),
    ],
)
def test_source_is_chosen_by_type(raw: dict[str, object], expected: type) -> None:
    source = TypeAdapter(SourceConfig).validate_python(raw)
    assert isinstance(source, expected)


def test_unknown_source_type_is_rejected_naming_the_choices() -> None:
    with pytest.raises(ValidationError) as info:
        CameraConfig.model_validate({"source": {"type": "webcam"}})
    assert "v4l2" in str(info.value) and "folder" in str(info.value)


@pytest.mark.parametrize(
    "raw",
    [
        {"sourse": {"type": "folder", "path": "x"}},
        {"source": {"type": "folder", "path": "x", "recursive": True}},
        {"quality": {"min_sharpnes": 10}},
        {"masking": {"face": False}},
        {"output": {"quality": 90}},
    ],
)
def test_unknown_keys_are_forbidden_at_every_level(raw: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        CameraConfig.model_validate(raw)


@pytest.mark.parametrize(
    "raw",
    [
        {"source": {"type": "v4l2", "device": -1}},
        {"source": {"type": "v4l2", "device": "video0"}},
        {"source": {"type": "rtsp", "url": "ftp://camera/stream"}},
        {"output": {"jpeg_quality": 101}},
        {"output": {"jpeg_quality": 10}},
        {"max_attempts": 0},
        {"required_views": []},
        {"required_views": ["front", "roof"]},
        {"quality": {"max_dark_fraction": 1.5}},
    ],
)
def test_out_of_bounds_values_are_rejected(raw: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        CameraConfig.model_validate(raw)


def test_a_view_listed_twice_is_rejected_with_a_sentence() -> None:
    with pytest.raises(ValidationError, match="'front' is listed twice"):
        CameraConfig.model_validate({"required_views": ["front", "rear", "front"]})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"min_long_edge": 640, "min_short_edge": 720}, "min_short_edge cannot be larger"),
        ({"dark_level": 250, "bright_level": 240}, "dark_level must be below bright_level"),
        ({"min_mean_luminance": 200, "max_mean_luminance": 150}, "min_mean_luminance must be"),
    ],
)
def test_cross_field_rules_raise_plain_sentences(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        QualityConfig.model_validate(raw)


def test_every_field_has_a_description() -> None:
    schema = CameraConfig.model_json_schema()
    for name, definition in schema["$defs"].items():
        for field, spec in definition.get("properties", {}).items():
            if field in {"type"}:
                continue
            assert "description" in spec or "$ref" in spec or "allOf" in spec, (name, field)


def test_config_round_trips_through_json(tmp_path: Path) -> None:
    config = CameraConfig.model_validate(
        {
            "source": {"type": "folder", "path": str(tmp_path)},
            "required_views": ["front", "vin_plate"],
            "masking": {"method": "pixelate", "plate_views": ["front"]},
        }
    )
    again = CameraConfig.model_validate_json(config.model_dump_json())
    assert again == config
    assert again.required_views == (View.FRONT, View.VIN_PLATE)
