"""Errors raised by the kiosk camera pipeline.

    CameraError                      anything the camera pipeline cannot do
     +-- SourceUnavailableError      a camera or folder that cannot be opened (device missing,
     |                               URL unreachable, folder absent); carries ``source``
     +-- FrameUnavailableError       an open source gave no frame for a view; carries
     |                               ``source`` and ``view``
     +-- ImageDecodeError            bytes or a file that are not a readable image; carries
     |    |                          ``origin`` and ``why``
     |    +-- ImageTooLargeError     an image whose header claims more pixels than the kiosk
     |                               decodes; carries ``width``, ``height`` and ``limit``
     +-- EncodeError                 OpenCV refused to encode the final JPEG (should not happen)
     +-- DetectorUnavailableError    a Haar cascade file missing from the installed OpenCV

A photo that fails its quality gates is a result (``QualityResult.passed`` is False), not an error.
"""

from __future__ import annotations


class CameraError(Exception):
    """Base class of every camera-pipeline error."""


class SourceUnavailableError(CameraError):
    """The source could not be opened. ``source`` names the device, URL or folder."""

    def __init__(self, source: str, why: str) -> None:
        super().__init__(f"camera source {source} is unavailable: {why}")
        self.source = source
        self.why = why


class FrameUnavailableError(CameraError):
    """An open source gave no frame for ``view``."""

    def __init__(self, source: str, view: str, why: str) -> None:
        super().__init__(f"no frame for view {view!r} from {source}: {why}")
        self.source = source
        self.view = view
        self.why = why


class ImageDecodeError(CameraError):
    """``origin`` (a path, or a description of the bytes) is not a readable image."""

    def __init__(self, origin: str, why: str = "not a readable image") -> None:
        super().__init__(f"{origin}: {why}")
        self.origin = origin
        self.why = why


class ImageTooLargeError(ImageDecodeError):
    """``origin`` is ``width`` × ``height`` pixels, more than ``limit``: refused before decoding,
    since a small compressed file can claim billions of pixels."""

    def __init__(self, origin: str, width: int, height: int, limit: int) -> None:
        super().__init__(
            origin,
            f"the image is {width} × {height} pixels ({width * height:,}); the kiosk decodes at"
            f" most {limit:,} pixels: resize it, or check the file is a photo",
        )
        self.width = width
        self.height = height
        self.limit = limit


class EncodeError(CameraError):
    """OpenCV could not encode the final JPEG."""


class DetectorUnavailableError(CameraError):
    """A detector's cascade file is missing or could not be loaded. ``path`` names it."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"cannot load the Haar cascade {path}; install opencv-python-headless 4.x, "
            "which ships the cascades in cv2.data.haarcascades"
        )
        self.path = path
