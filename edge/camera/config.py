"""Camera configuration: the source (chosen by ``type``), required views, quality gates, masking
and JPEG output.

Every model forbids unknown keys and gives each field a default, a description and bounds, so a
typo in a kiosk's YAML fails loudly. ``firmware_config`` embeds :class:`CameraConfig` as the
kiosk's ``camera`` section.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class View(StrEnum):
    """The views an appraisal can require; the value is the name used on the wire and in files."""

    FRONT = "front"
    REAR = "rear"
    LEFT = "left"
    RIGHT = "right"
    INTERIOR = "interior"
    DASHBOARD = "dashboard"  # with the odometer readable
    VIN_PLATE = "vin_plate"


ALL_VIEWS: tuple[View, ...] = tuple(View)
EXTERIOR_VIEWS: tuple[View, ...] = (View.FRONT, View.REAR, View.LEFT, View.RIGHT)


class _Strict(BaseModel):
    # NaN and infinity are refused as such rather than as out-of-bounds numbers.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --- sources ---------------------------------------------------------------------------------


class V4l2SourceConfig(_Strict):
    """A USB camera through Video4Linux2 (``cv2.VideoCapture`` with the V4L2 backend)."""

    type: Literal["v4l2"] = "v4l2"
    device: int | str = Field(
        0,
        description="Camera index (0 for /dev/video0) or a device path such as /dev/video2",
    )
    width: int = Field(1920, ge=320, le=8192, description="Requested capture width in pixels")
    height: int = Field(1080, ge=240, le=8192, description="Requested capture height in pixels")
    fourcc: str | None = Field(
        "MJPG",
        min_length=4,
        max_length=4,
        description="Pixel format to request (MJPG lets USB 2 cameras deliver 1080p); null keeps "
        "the driver's default",
    )
    warmup_frames: int = Field(
        5, ge=0, le=120, description="Frames discarded after opening so auto-exposure settles"
    )

    @field_validator("device")
    @classmethod
    def _device_shape(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            if value < 0:
                raise ValueError("a camera index is 0 or more (0 is /dev/video0)")
            return value
        if not value.startswith("/dev/"):
            raise ValueError("a device path starts with /dev/, e.g. /dev/video0")
        return value


class RtspSourceConfig(_Strict):
    """An IP camera: RTSP (or HTTP MJPEG) through OpenCV's FFmpeg backend."""

    type: Literal["rtsp"] = "rtsp"
    url: str = Field(
        description="Stream URL, e.g. rtsp://user:pass@192.0.2.10:554/stream1",
        pattern=r"^(rtsps?|https?)://\S+$",
    )
    transport: Literal["tcp", "udp"] = Field(
        "tcp", description="RTSP transport; TCP survives lossy site Wi-Fi better"
    )
    open_timeout_s: float = Field(10.0, gt=0, le=120, description="Give up opening after this")
    read_timeout_s: float = Field(5.0, gt=0, le=120, description="Give up on one frame after this")
    drain_frames: int = Field(
        3,
        ge=0,
        le=60,
        description="Frames dropped before the one kept, so a buffered stale frame is not used",
    )


class FolderSourceConfig(_Strict):
    """Image files named by view (``front.jpg``; retakes ``front-2.jpg``, ``front-3.jpg``...)."""

    type: Literal["folder"] = "folder"
    path: Path = Field(description="Folder holding one image per view")

    @field_validator("path", mode="before")
    @classmethod
    def _path_given(cls, value: object) -> object:
        # Path("") is the current folder: an empty path would read whatever images are there.
        if isinstance(value, str) and not value.strip():
            raise ValueError("the folder path is empty: give the folder holding the photos")
        return value

    extensions: tuple[str, ...] = Field(
        (".jpg", ".jpeg", ".png"),
        min_length=1,
        description="File extensions looked for, in order of preference",
    )


SourceConfig = Annotated[
    V4l2SourceConfig | RtspSourceConfig | FolderSourceConfig, Field(discriminator="type")
]


# --- quality, masking, output ----------------------------------------------------------------


class QualityConfig(_Strict):
    """Thresholds of the quality gates; metrics are measured as described in docs/photos.md."""

    min_long_edge: int = Field(1280, ge=64, le=16384, description="Smallest long edge, pixels")
    min_short_edge: int = Field(720, ge=64, le=16384, description="Smallest short edge, pixels")
    analysis_long_edge: int = Field(
        640,
        ge=128,
        le=4096,
        description="Sharpness and glare are measured on a copy downscaled to this long edge, "
        "so the figures do not depend on the camera's resolution",
    )
    min_sharpness: float = Field(
        100.0,
        ge=0,
        le=100000,
        description="Smallest variance of the Laplacian of the contrast-normalised analysis copy",
    )
    min_axis_sharpness: float = Field(
        20.0,
        ge=0,
        le=100000,
        description="Smallest variance of the second derivative along the blurrier axis "
        "(catches camera shake)",
    )
    dark_level: int = Field(25, ge=0, le=254, description="Luma at or below this counts as dark")
    bright_level: int = Field(
        250, ge=1, le=255, description="Luma at or above this counts as clipped (blown out)"
    )
    min_mean_luminance: float = Field(55.0, ge=0, le=255, description="Darker mean: too dark")
    max_dark_fraction: float = Field(
        0.55, ge=0, le=1, description="More of the frame dark than this: too dark"
    )
    max_mean_luminance: float = Field(215.0, ge=0, le=255, description="Brighter mean: overexposed")
    max_clipped_fraction: float = Field(
        0.10, ge=0, le=1, description="More of the frame clipped than this: overexposed"
    )
    glare_max_saturation: int = Field(
        40, ge=0, le=255, description="Clipped pixels more colourless than this may be glare"
    )
    glare_min_blob_fraction: float = Field(
        0.0004, ge=0, le=1, description="Smaller saturated blobs are sparkle, not glare"
    )
    max_glare_fraction: float = Field(
        0.012, ge=0, le=1, description="More of the frame in glare blobs than this: glare"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.min_short_edge > self.min_long_edge:
            raise ValueError("min_short_edge cannot be larger than min_long_edge")
        if self.dark_level >= self.bright_level:
            raise ValueError("dark_level must be below bright_level")
        if self.min_mean_luminance >= self.max_mean_luminance:
            raise ValueError("min_mean_luminance must be below max_mean_luminance")
        return self


class MaskingConfig(_Strict):
    """Privacy masking of licence plates and faces (Haar cascades shipped with OpenCV 4.x)."""

    enabled: bool = Field(True, description="Turn masking off only for lab work, never on site")
    faces: bool = Field(True, description="Mask faces (frontal-face cascade)")
    plates: bool = Field(True, description="Mask licence plates (plate cascade, verified)")
    plate_views: tuple[View, ...] = Field(
        EXTERIOR_VIEWS,
        description="Views whose plates are masked; the VIN plate and dashboard are left readable",
    )
    method: Literal["blur", "pixelate", "fill"] = Field(
        "blur",
        description="blur: about six samples across the box, smoothly interpolated; pixelate: "
        "eight coarse blocks across; fill: a solid grey box",
    )
    detect_long_edge: int = Field(
        720, ge=160, le=4096, description="Detectors run on a copy downscaled to this long edge"
    )
    face_scale_factor: float = Field(
        1.2,
        ge=1.01,
        le=2.0,
        description="Step between the face cascade's search scales; smaller finds more, runs "
        "slower",
    )
    plate_scale_factor: float = Field(
        1.1,
        ge=1.01,
        le=2.0,
        description="Step between the plate cascade's search scales (finer than faces: the "
        "plate cascade is picky about size, and it is cheaper)",
    )
    padding: float = Field(
        0.15, ge=0, le=1, description="Each masked box grows by this fraction of its size per side"
    )
    face_min_size: int = Field(
        20, ge=8, le=1024, description="Smallest face searched, pixels at the detection scale"
    )
    face_min_neighbors: int = Field(5, ge=1, le=50, description="Cascade votes needed for a face")
    plate_min_neighbors: int = Field(3, ge=1, le=50, description="Cascade votes needed for a plate")
    plate_max_width_fraction: float = Field(
        0.4, gt=0, le=1, description="Wider candidates are not plates (a windscreen, a grille)"
    )
    plate_min_edge_density: float = Field(
        0.04,
        ge=0,
        le=1,
        description="Share of edge pixels a plate candidate needs (its characters); flat "
        "candidates are rejected",
    )


class OutputConfig(_Strict):
    """The JPEG that leaves the kiosk."""

    jpeg_quality: int = Field(85, ge=30, le=100, description="JPEG quality (libjpeg scale)")
    max_long_edge: int = Field(
        1920, ge=320, le=16384, description="Larger frames are downscaled to this long edge"
    )


class CameraConfig(_Strict):
    """The kiosk's camera section."""

    source: SourceConfig = Field(
        default_factory=V4l2SourceConfig, description="Where frames come from, chosen by type"
    )
    required_views: tuple[View, ...] = Field(
        ALL_VIEWS, min_length=1, description="Views the inspector is guided through, in order"
    )
    max_attempts: int = Field(
        3,
        ge=1,
        le=10,
        description="Captures per view before a failing photo is kept with its reasons",
    )
    quality: QualityConfig = Field(default_factory=QualityConfig)
    masking: MaskingConfig = Field(default_factory=MaskingConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @field_validator("required_views")
    @classmethod
    def _unique_views(cls, views: tuple[View, ...]) -> tuple[View, ...]:
        seen: set[View] = set()
        for view in views:
            if view in seen:
                raise ValueError(f"view {view.value!r} is listed twice in required_views")
            seen.add(view)
        return views
