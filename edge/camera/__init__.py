"""Kiosk photos: capture sources, guided views, quality gates, privacy masking and hashes.

Typical use::

    pipeline = PhotoPipeline(config)            # loads the Haar cascades once
    with make_source(config.source) as source:
        run = capture_views(source, pipeline, on_prompt=show)
    records = [photo.record for photo in run.photos.values()]   # edge.protocol.PhotoRecord

Errors: see :mod:`edge.camera.errors` (``CameraError`` and its subclasses).
"""

from edge.camera.config import (
    ALL_VIEWS,
    EXTERIOR_VIEWS,
    CameraConfig,
    FolderSourceConfig,
    MaskingConfig,
    OutputConfig,
    QualityConfig,
    RtspSourceConfig,
    SourceConfig,
    V4l2SourceConfig,
    View,
)
from edge.camera.errors import (
    CameraError,
    DetectorUnavailableError,
    EncodeError,
    FrameUnavailableError,
    ImageDecodeError,
    ImageTooLargeError,
    SourceUnavailableError,
)
from edge.camera.guide import CaptureGuide, Prompt, ViewOutcome
from edge.camera.hashing import encode_jpeg, hamming, phash, phash_hex, sha256_hex
from edge.camera.imaging import MAX_IMAGE_PIXELS, decode_image, image_size, read_image
from edge.camera.masking import Box, MaskedRegion, PrivacyMasker
from edge.camera.pipeline import PhotoPipeline, ProcessedPhoto, check_photo, process_photo
from edge.camera.quality import (
    REASON_BLURRED,
    REASON_DARK,
    REASON_GLARE,
    REASON_LOW_RESOLUTION,
    REASON_OVEREXPOSED,
    QualityResult,
    assess_quality,
)
from edge.camera.session import CaptureRun, capture_views
from edge.camera.sources import (
    SOURCE_FACTORIES,
    FakeSource,
    FolderSource,
    FrameSource,
    OpenCvCaptureSource,
    make_source,
)

__all__ = [
    "ALL_VIEWS",
    "EXTERIOR_VIEWS",
    "MAX_IMAGE_PIXELS",
    "REASON_BLURRED",
    "REASON_DARK",
    "REASON_GLARE",
    "REASON_LOW_RESOLUTION",
    "REASON_OVEREXPOSED",
    "SOURCE_FACTORIES",
    "Box",
    "CameraConfig",
    "CameraError",
    "CaptureGuide",
    "CaptureRun",
    "DetectorUnavailableError",
    "EncodeError",
    "FakeSource",
    "FolderSource",
    "FolderSourceConfig",
    "FrameSource",
    "FrameUnavailableError",
    "ImageDecodeError",
    "ImageTooLargeError",
    "MaskedRegion",
    "MaskingConfig",
    "OpenCvCaptureSource",
    "OutputConfig",
    "PhotoPipeline",
    "PrivacyMasker",
    "ProcessedPhoto",
    "Prompt",
    "QualityConfig",
    "QualityResult",
    "RtspSourceConfig",
    "SourceConfig",
    "SourceUnavailableError",
    "V4l2SourceConfig",
    "View",
    "ViewOutcome",
    "assess_quality",
    "capture_views",
    "check_photo",
    "decode_image",
    "encode_jpeg",
    "hamming",
    "image_size",
    "make_source",
    "phash",
    "phash_hex",
    "process_photo",
    "read_image",
    "sha256_hex",
]
