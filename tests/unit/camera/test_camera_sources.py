"""One contract suite over every frame source (folder, fake, and the OpenCV capture adapter for
V4L2 and RTSP driven through a fake ``VideoCapture``), then each adapter's own behaviour.

Not verified here: a real USB camera or RTSP stream (none on the build machines); the capture
adapter's calls into OpenCV are what these tests pin down.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.camera.config import (
    FolderSourceConfig,
    RtspSourceConfig,
    V4l2SourceConfig,
)
from edge.camera.errors import FrameUnavailableError, SourceUnavailableError
from edge.camera.sources import (
    FakeSource,
    FolderSource,
    FrameSource,
    OpenCvCaptureSource,
    make_source,
    redact_url,
)
from edge.camera.synthetic import car_scene

FRAME = car_scene(640, 360, seed=1)


class FakeCapture:
    """Stands in for cv2.VideoCapture: records what the adapter asks of it."""

    def __init__(
        self,
        target: object,
        api: int,
        params: list[int] | None = None,
        *,
        opened: bool = True,
        frames: list[np.ndarray | None] | None = None,
    ) -> None:
        self.target, self.api, self.params = target, api, params
        self.opened = opened
        self.frames = list(frames) if frames is not None else []
        self.props: dict[int, float] = {}
        self.grabs = 0
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opened

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def grab(self) -> bool:
        self.grabs += 1
        return self.opened

    def read(self) -> tuple[bool, Any]:
        frame = self.frames.pop(0) if self.frames else FRAME.copy()
        return frame is not None, frame

    def release(self) -> None:
        self.released = True


class CaptureFactory:
    """Hands out FakeCaptures in order and keeps them for inspection."""

    def __init__(self, *specs: dict[str, Any]) -> None:
        self.specs = list(specs) or [{}]
        self.made: list[FakeCapture] = []

    def __call__(self, target: object, api: int, params: list[int] | None = None) -> FakeCapture:
        spec = self.specs[min(len(self.made), len(self.specs) - 1)]
        capture = FakeCapture(target, api, params, **spec)
        self.made.append(capture)
        return capture


def _folder(tmp_path: Path) -> FrameSource:
    cv2.imwrite(str(tmp_path / "front.jpg"), FRAME)
    return FolderSource(FolderSourceConfig(path=tmp_path))


def _fake(tmp_path: Path) -> FrameSource:
    return FakeSource({"front": [FRAME]})


def _v4l2(tmp_path: Path) -> FrameSource:
    return OpenCvCaptureSource(V4l2SourceConfig(device=0), capture_factory=CaptureFactory())


def _rtsp(tmp_path: Path) -> FrameSource:
    config = RtspSourceConfig(url="rtsp://admin:secret@192.0.2.7:554/stream1")
    return OpenCvCaptureSource(config, capture_factory=CaptureFactory())


IMPLEMENTATIONS: dict[str, Callable[[Path], FrameSource]] = {
    "folder": _folder,
    "fake": _fake,
    "v4l2": _v4l2,
    "rtsp": _rtsp,
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FrameSource]:
    made = IMPLEMENTATIONS[request.param](tmp_path)
    yield made
    made.close()


# --- contract ---------------------------------------------------------------------------------


def test_is_a_frame_source(source: FrameSource) -> None:
    assert isinstance(source, FrameSource)
    assert isinstance(source.name, str) and source.name
    assert "secret" not in source.name


def test_grab_before_open_is_refused(source: FrameSource) -> None:
    with pytest.raises(SourceUnavailableError, match="not open"):
        source.grab("front")


def test_grab_returns_a_bgr_uint8_frame(source: FrameSource) -> None:
    source.open()
    frame = source.grab("front")
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert frame.shape[:2] == FRAME.shape[:2]
    again = source.grab("front")  # a second grab of the same view works too
    assert again.shape == frame.shape


def test_close_is_idempotent_and_grab_after_close_is_refused(source: FrameSource) -> None:
    source.open()
    source.close()
    source.close()
    with pytest.raises(SourceUnavailableError):
        source.grab("front")


def test_context_manager_opens_and_closes(source: FrameSource) -> None:
    with source as opened:
        assert opened is source
        assert opened.grab("front").size
    with pytest.raises(SourceUnavailableError):
        source.grab("front")


def test_reopening_after_close_works(source: FrameSource) -> None:
    with source:
        source.grab("front")
    with source:
        assert source.grab("front").size


# --- folder -----------------------------------------------------------------------------------


def test_folder_serves_retakes_in_order_then_repeats_the_last(tmp_path: Path) -> None:
    for name, value in (("front.jpg", 10), ("front-2.png", 120), ("front-3.jpeg", 240)):
        cv2.imwrite(str(tmp_path / name), np.full((20, 30, 3), value, np.uint8))
    with FolderSource(FolderSourceConfig(path=tmp_path)) as source:
        means = [round(float(source.grab("front").mean()), -1) for _ in range(4)]
    assert means == [10, 120, 240, 240]


def test_folder_missing_view_and_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "rear.jpg").write_bytes(b"not a jpeg")
    with FolderSource(FolderSourceConfig(path=tmp_path)) as source:
        with pytest.raises(FrameUnavailableError, match="no left"):
            source.grab("left")
        with pytest.raises(FrameUnavailableError, match=r"rear\.jpg"):
            source.grab("rear")


def test_folder_that_does_not_exist(tmp_path: Path) -> None:
    source = FolderSource(FolderSourceConfig(path=tmp_path / "nope"))
    with pytest.raises(SourceUnavailableError, match="no such folder"):
        source.open()


# --- fake -------------------------------------------------------------------------------------


def test_fake_records_grabs_and_can_fail_to_open() -> None:
    dark, bright = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 200, np.uint8)
    with FakeSource({"front": [dark, bright]}) as fake:
        assert fake.grab("front").max() == 0
        assert fake.grab("front").max() == 200
        assert fake.grab("front").max() == 200
        with pytest.raises(FrameUnavailableError):
            fake.grab("rear")
    assert fake.grabs == ["front", "front", "front"]
    with pytest.raises(SourceUnavailableError, match="simulated"):
        FakeSource({}, fail_open=True).open()


# --- V4L2 and RTSP through the capture adapter ------------------------------------------------


def test_v4l2_asks_for_format_size_and_discards_warmup_frames() -> None:
    factory = CaptureFactory()
    config = V4l2SourceConfig(device="/dev/video2", width=1280, height=720, warmup_frames=4)
    with OpenCvCaptureSource(config, capture_factory=factory) as source:
        assert source.name == "v4l2:/dev/video2"
        source.grab("front")
    capture = factory.made[0]
    assert (capture.target, capture.api) == ("/dev/video2", cv2.CAP_V4L2)
    assert capture.props[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter.fourcc(*"MJPG")
    assert capture.props[cv2.CAP_PROP_FRAME_WIDTH] == 1280
    assert capture.props[cv2.CAP_PROP_FRAME_HEIGHT] == 720
    assert capture.props[cv2.CAP_PROP_BUFFERSIZE] == 1
    assert capture.grabs == 4 + 1  # warm-up, then one stale buffered frame dropped per grab
    assert capture.released


def test_v4l2_that_cannot_open_is_unavailable_and_released() -> None:
    factory = CaptureFactory({"opened": False})
    source = OpenCvCaptureSource(V4l2SourceConfig(device=3), capture_factory=factory)
    with pytest.raises(SourceUnavailableError, match="v4l2:/dev/video3"):
        source.open()
    assert factory.made[0].released


def test_v4l2_without_a_frame_raises_frame_unavailable() -> None:
    factory = CaptureFactory({"frames": [None]})
    source = OpenCvCaptureSource(V4l2SourceConfig(), capture_factory=factory)
    with source, pytest.raises(FrameUnavailableError, match="'front'"):
        source.grab("front")
    assert len(factory.made) == 1  # a USB camera is not reopened behind the inspector's back


def test_rtsp_passes_timeouts_and_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", raising=False)
    factory = CaptureFactory()
    config = RtspSourceConfig(url="rtsp://192.0.2.7/s", open_timeout_s=2.5, read_timeout_s=1.0)
    with OpenCvCaptureSource(config, capture_factory=factory) as source:
        source.grab("rear")
    capture = factory.made[0]
    assert capture.api == cv2.CAP_FFMPEG
    assert capture.params == [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        2500,
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        1000,
    ]
    assert capture.grabs == config.drain_frames
    assert os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] == "rtsp_transport;tcp"


def test_rtsp_keeps_an_operators_ffmpeg_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;udp|stimeout;1000")
    config = RtspSourceConfig(url="rtsp://192.0.2.7/s", transport="tcp")
    with OpenCvCaptureSource(config, capture_factory=CaptureFactory()):
        pass
    assert os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] == "rtsp_transport;udp|stimeout;1000"


def test_rtsp_reconnects_once_when_the_stream_drops() -> None:
    factory = CaptureFactory({"frames": [None]}, {})
    config = RtspSourceConfig(url="rtsp://u:p@192.0.2.7/s")
    with OpenCvCaptureSource(config, capture_factory=factory) as source:
        assert source.grab("front").shape == FRAME.shape
    assert len(factory.made) == 2 and factory.made[0].released


def test_rtsp_gives_up_after_one_reconnect() -> None:
    factory = CaptureFactory({"frames": [None]}, {"frames": [None]})
    source = OpenCvCaptureSource(RtspSourceConfig(url="rtsp://h/s"), capture_factory=factory)
    with source, pytest.raises(FrameUnavailableError):
        source.grab("front")
    assert len(factory.made) == 2


def test_urls_are_redacted() -> None:
    assert redact_url("rtsp://admin:pa55@10.0.0.2:554/live") == "rtsp://***@10.0.0.2:554/live"
    assert redact_url("rtsp://10.0.0.2/live") == "rtsp://10.0.0.2/live"


def test_make_source_picks_the_adapter_by_type(tmp_path: Path) -> None:
    assert isinstance(make_source(FolderSourceConfig(path=tmp_path)), FolderSource)
    assert isinstance(make_source(V4l2SourceConfig()), OpenCvCaptureSource)
    assert isinstance(make_source(RtspSourceConfig(url="rtsp://h/s")), OpenCvCaptureSource)
