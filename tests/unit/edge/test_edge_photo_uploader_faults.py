"""The photo uploader's thread outlives a failing outbox and uploads once it works again."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import httpx

from edge.outbox import SqliteOutbox
from edge.uplink import PhotoUploader


class _DamagedConnection:
    def __init__(self, real: sqlite3.Connection) -> None:
        self.real = real
        self.damaged = threading.Event()

    def execute(self, *args: object) -> sqlite3.Cursor:
        if self.damaged.is_set():
            raise sqlite3.DatabaseError("database disk image is malformed")
        return self.real.execute(*args)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


def test_uploads_pause_while_the_outbox_fails_and_resume(tmp_path: Path) -> None:
    outbox = SqliteOutbox(tmp_path / "o.db", kiosk_id="dlr-001-k1")
    connection = _DamagedConnection(outbox._db)
    outbox._db = connection  # type: ignore[assignment]
    asked: list[str] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        return httpx.Response(200, json={"stored": True})  # it has the photo already

    uploader = PhotoUploader(
        outbox,
        base_url="http://gateway.test",
        api_key="k",
        client=httpx.Client(transport=httpx.MockTransport(gateway)),
    )
    connection.damaged.set()
    uploader.start()
    try:
        deadline = time.monotonic() + 5
        while outbox.fault is None:
            assert time.monotonic() < deadline, "the uploader never read the outbox"
            time.sleep(0.02)
        time.sleep(0.2)
        assert uploader._thread is not None and uploader._thread.is_alive()

        connection.damaged.clear()
        photo = tmp_path / "p.jpg"
        photo.write_bytes(b"jpeg")
        outbox.enqueue_upload("ab" * 32, photo, 4)
        uploader.kick()
        deadline = time.monotonic() + 10
        while outbox.upload_depth():
            assert time.monotonic() < deadline, "the upload did not resume"
            time.sleep(0.05)
        assert asked == [f"/v1/photos/{'ab' * 32}/upload"]
    finally:
        uploader.stop()
        outbox.close()
