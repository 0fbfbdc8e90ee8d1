"""Where frames come from: a small port (:class:`FrameSource`), the real adapters and a fake.

- :class:`OpenCvCaptureSource` — a USB/V4L2 camera or an RTSP/IP camera through
  ``cv2.VideoCapture`` (the capture factory is injectable, so tests drive the real code with a
  fake ``VideoCapture``);
- :class:`FolderSource` — image files named by view, for the demo and tests;
- :class:`FakeSource` — frames held in memory, for tests of code that uses a source.

Live cameras do not know which view the inspector is pointing at; the ``view`` argument of
:meth:`FrameSource.grab` only selects a file (folder) or a queue (fake). Sources are chosen by
the config's ``type`` through :data:`SOURCE_FACTORIES` (an explicit registry, not imports).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

import cv2
import numpy as np

from edge.camera.config import (
    FolderSourceConfig,
    RtspSourceConfig,
    SourceConfig,
    V4l2SourceConfig,
)
from edge.camera.errors import FrameUnavailableError, ImageDecodeError, SourceUnavailableError
from edge.camera.imaging import Image, as_bgr, read_image

__all__ = [
    "SOURCE_FACTORIES",
    "CaptureFactory",
    "FakeSource",
    "FolderSource",
    "FrameSource",
    "OpenCvCaptureSource",
    "make_source",
    "redact_url",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class FrameSource(Protocol):
    """The camera port. ``open`` before ``grab``; ``close`` is idempotent. Also a context
    manager (opens on enter, closes on exit)."""

    @property
    def name(self) -> str:
        """A printable name (credentials redacted) for logs and errors."""
        ...

    def open(self) -> None:
        """Acquire the device. Raises :class:`SourceUnavailableError`."""
        ...

    def grab(self, view: str) -> Image:
        """One BGR frame for ``view``. Raises :class:`FrameUnavailableError`, or
        :class:`SourceUnavailableError` when the source is not open."""
        ...

    def close(self) -> None:
        """Release the device."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class _ContextManaged:
    def open(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def redact_url(url: str) -> str:
    """``rtsp://user:secret@host/x`` → ``rtsp://***@host/x`` (camera passwords stay out of logs)."""
    return re.sub(r"^([a-z]+://)[^@/]*@", r"\1***@", url)


# --- OpenCV capture (V4L2 and RTSP) ----------------------------------------------------------


class _Capture(Protocol):
    """The slice of ``cv2.VideoCapture`` the adapter uses (what a test fake implements)."""

    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's name
    def set(self, prop: int, value: float) -> bool: ...
    def grab(self) -> bool: ...
    def read(self) -> tuple[bool, Any]: ...
    def release(self) -> None: ...


CaptureFactory = Callable[..., _Capture]
"""Called like ``cv2.VideoCapture(target, api_preference, params)``."""

_FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"


class OpenCvCaptureSource(_ContextManaged):
    """A live camera through ``cv2.VideoCapture``: V4L2 (USB) or FFmpeg (RTSP/HTTP)."""

    def __init__(
        self,
        config: V4l2SourceConfig | RtspSourceConfig,
        *,
        capture_factory: CaptureFactory | None = None,
    ) -> None:
        self.config = config
        self._factory: CaptureFactory = capture_factory or cv2.VideoCapture
        self._capture: _Capture | None = None

    @property
    def name(self) -> str:
        """``v4l2:/dev/video0`` or the redacted stream URL."""
        if isinstance(self.config, V4l2SourceConfig):
            device = self.config.device
            return f"v4l2:/dev/video{device}" if isinstance(device, int) else f"v4l2:{device}"
        return redact_url(self.config.url)

    def _open_capture(self) -> _Capture:
        config = self.config
        if isinstance(config, V4l2SourceConfig):
            return self._factory(config.device, cv2.CAP_V4L2)
        # FFmpeg reads its RTSP options from the environment when the capture opens. An operator's
        # own setting wins; otherwise ask for the configured transport.
        if _FFMPEG_OPTIONS_ENV not in os.environ and config.url.startswith("rtsp"):
            os.environ[_FFMPEG_OPTIONS_ENV] = f"rtsp_transport;{config.transport}"
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(config.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(config.read_timeout_s * 1000),
        ]
        return self._factory(config.url, cv2.CAP_FFMPEG, params)

    def open(self) -> None:
        """Open the device, request format and size (V4L2), discard warm-up frames."""
        if self._capture is not None:
            return
        try:
            capture = self._open_capture()
        except cv2.error as exc:
            raise SourceUnavailableError(self.name, str(exc)) from exc
        if not capture.isOpened():
            capture.release()
            raise SourceUnavailableError(
                self.name, "OpenCV could not open it (check the device or URL and permissions)"
            )
        # Keep only the newest frame so a grab shows what is in front of the camera now.
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if isinstance(self.config, V4l2SourceConfig):
            if self.config.fourcc:
                capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*self.config.fourcc))
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.config.width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.config.height)
            for _ in range(self.config.warmup_frames):
                capture.grab()
        self._capture = capture
        logger.info("camera %s opened", self.name)

    def _read(self, capture: _Capture) -> Image | None:
        drain = self.config.drain_frames if isinstance(self.config, RtspSourceConfig) else 1
        for _ in range(drain):
            capture.grab()
        ok, frame = capture.read()
        if not ok or frame is None:
            return None
        array = np.asarray(frame)
        if array.dtype != np.uint8 or array.size == 0:
            return None
        return as_bgr(array)

    def grab(self, view: str) -> Image:
        """The newest frame. An RTSP stream that stopped is reopened once before giving up."""
        if self._capture is None:
            raise SourceUnavailableError(self.name, "not open")
        frame = self._read(self._capture)
        if frame is None and isinstance(self.config, RtspSourceConfig):
            logger.warning("camera %s gave no frame; reconnecting once", self.name)
            self.close()
            self.open()
            assert self._capture is not None
            frame = self._read(self._capture)
        if frame is None:
            raise FrameUnavailableError(self.name, view, "the camera returned no frame")
        return frame

    def close(self) -> None:
        """Release the device (idempotent)."""
        if self._capture is not None:
            self._capture.release()
            self._capture = None
            logger.info("camera %s closed", self.name)


# --- folder ----------------------------------------------------------------------------------


class FolderSource(_ContextManaged):
    """``<view>.<ext>`` for the first capture of a view, ``<view>-2.<ext>``, ``<view>-3.<ext>``...
    for retakes; when the retakes run out the last file is given again."""

    def __init__(self, config: FolderSourceConfig) -> None:
        self.config = config
        self._open = False
        self._attempts: dict[str, int] = {}

    @property
    def name(self) -> str:
        """``folder:<path>``."""
        return f"folder:{self.config.path}"

    def open(self) -> None:
        """Check the folder exists."""
        if not self.config.path.is_dir():
            raise SourceUnavailableError(self.name, "no such folder")
        self._open = True
        self._attempts.clear()

    def _file_for(self, view: str, attempt: int) -> Path | None:
        stem = view if attempt == 1 else f"{view}-{attempt}"
        for ext in self.config.extensions:
            candidate = self.config.path / f"{stem}{ext}"
            if candidate.is_file():
                return candidate
        return None

    def grab(self, view: str) -> Image:
        """The file for this view and attempt, decoded to BGR."""
        if not self._open:
            raise SourceUnavailableError(self.name, "not open")
        attempt = self._attempts.get(view, 0) + 1
        self._attempts[view] = attempt
        path = None
        for n in range(attempt, 0, -1):
            path = self._file_for(view, n)
            if path is not None:
                break
        if path is None:
            raise FrameUnavailableError(self.name, view, f"no {view}.* file in the folder")
        try:
            return read_image(path)
        except ImageDecodeError as exc:
            raise FrameUnavailableError(self.name, view, str(exc)) from exc

    def close(self) -> None:
        """Forget the attempt counters."""
        self._open = False


# --- fake ------------------------------------------------------------------------------------


class FakeSource(_ContextManaged):
    """Frames from memory: ``frames[view]`` is the sequence given on successive grabs (the last
    repeats). Records every grab in :attr:`grabs`. ``fail_open`` simulates a missing camera."""

    def __init__(self, frames: Mapping[str, Sequence[Image]], *, fail_open: bool = False) -> None:
        self._frames = {view: list(seq) for view, seq in frames.items()}
        self._fail_open = fail_open
        self._open = False
        self.grabs: list[str] = []

    @property
    def name(self) -> str:
        """``fake``."""
        return "fake"

    def open(self) -> None:
        """Open, or raise :class:`SourceUnavailableError` when built with ``fail_open``."""
        if self._fail_open:
            raise SourceUnavailableError(self.name, "simulated missing camera")
        self._open = True

    def grab(self, view: str) -> Image:
        """The next frame queued for ``view``."""
        if not self._open:
            raise SourceUnavailableError(self.name, "not open")
        queue = self._frames.get(view)
        if not queue:
            raise FrameUnavailableError(self.name, view, "no frame queued")
        attempt = sum(1 for v in self.grabs if v == view)
        self.grabs.append(view)
        return queue[min(attempt, len(queue) - 1)].copy()

    def close(self) -> None:
        """Close (idempotent)."""
        self._open = False


# --- registry --------------------------------------------------------------------------------


def _capture_source(config: SourceConfig) -> FrameSource:
    assert isinstance(config, V4l2SourceConfig | RtspSourceConfig)
    return OpenCvCaptureSource(config)


def _folder_source(config: SourceConfig) -> FrameSource:
    assert isinstance(config, FolderSourceConfig)
    return FolderSource(config)


SOURCE_FACTORIES: dict[str, Callable[[SourceConfig], FrameSource]] = {
    "v4l2": _capture_source,
    "rtsp": _capture_source,
    "folder": _folder_source,
}
"""Source constructors by config ``type``."""


def make_source(config: SourceConfig) -> FrameSource:
    """Build (not open) the source a config describes."""
    try:
        factory = SOURCE_FACTORIES[config.type]
    except KeyError:  # a config type added without a factory
        raise SourceUnavailableError(config.type, "no source implementation registered") from None
    return factory(config)
