"""Photo uploads to the gateway over HTTP(S): content-addressed, resumable, retried.

The queue lives in the outbox database (``upload`` table); the JPEGs in a spool folder beside
it. For each due photo: ask the gateway how much it has (``GET /v1/photos/{sha256}/upload``),
send the rest in chunks (``PATCH`` with ``Upload-Offset``), then ``POST .../complete``, which the
gateway accepts only if the bytes hash to the key. A failure waits its backoff; nothing is lost.
An outbox that fails (disk full, damaged) pauses the uploads; the thread waits and tries again.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import httpx

from edge.outbox import OutboxStorageError, SqliteOutbox

logger = logging.getLogger(__name__)

FAIL_LOG_EVERY_S = 60.0  # a failure that persists is logged again this often
RETRY_MAX_S = 60.0  # the longest wait after a failed pass


class UploadRejectedError(RuntimeError):
    """The gateway refused the photo for a reason a retry cannot fix."""


class PhotoUploader:
    def __init__(
        self,
        outbox: SqliteOutbox,
        *,
        base_url: str,
        api_key: str,
        chunk_bytes: int = 262_144,
        client: httpx.Client | None = None,
        verify: str | bool = True,
    ) -> None:
        self._outbox = outbox
        self._chunk = chunk_bytes
        self._client = client or httpx.Client(timeout=30.0, verify=verify)
        self._client.base_url = base_url  # type: ignore[assignment,unused-ignore]
        self._client.headers["Authorization"] = f"Bearer {api_key}"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="photo-uploader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
        self._client.close()

    def kick(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        """Upload until stopped; nothing the outbox (or a bug) raises ends this thread."""
        failures = 0
        logged_at: float | None = None
        while not self._stop.is_set():
            wait = 2.0
            try:
                self.upload_due()
            except Exception as exc:
                failures += 1
                wait = min(RETRY_MAX_S, 2.0 * 2 ** (failures - 1))
                now = time.monotonic()
                if logged_at is None or now - logged_at >= FAIL_LOG_EVERY_S:
                    logged_at = now
                    expected = isinstance(exc, OutboxStorageError)
                    logger.log(
                        logging.WARNING if expected else logging.ERROR,
                        "photo uploads paused (%s); retrying in %.0f s",
                        exc,
                        wait,
                        exc_info=None if expected else exc,
                    )
            else:
                failures, logged_at = 0, None
            self._wake.wait(wait)
            self._wake.clear()

    def upload_due(self) -> int:
        """Try every due upload once; returns how many completed."""
        done = 0
        for sha256, path, size in self._outbox.due_uploads():
            if self._stop.is_set():
                break
            try:
                self.upload(sha256, path, size)
            except (httpx.HTTPError, OSError, UploadRejectedError) as exc:
                logger.warning("photo %s not uploaded yet (%s); will retry", sha256[:12], exc)
                self._outbox.upload_failed(sha256)
                continue
            self._outbox.upload_done(sha256)
            path.unlink(missing_ok=True)  # the gateway has it now; kiosk disks are small
            done += 1
        return done

    def upload(self, sha256: str, path: Path, size: int) -> None:
        status = self._client.get(f"/v1/photos/{sha256}/upload")
        _raise_for(status)
        state = status.json()
        if state.get("stored"):
            return
        offset = int(state.get("offset", 0))
        with path.open("rb") as handle:
            handle.seek(offset)
            while offset < size:
                chunk = handle.read(self._chunk)
                if not chunk:
                    raise OSError(f"{path} is shorter than the {size} bytes queued")
                response = self._client.patch(
                    f"/v1/photos/{sha256}/upload",
                    content=chunk,
                    headers={
                        "Upload-Offset": str(offset),
                        "Content-Type": "application/octet-stream",
                    },
                )
                if response.status_code == 409:  # the gateway has a different offset: resume there
                    offset = int(response.json().get("offset", 0))
                    handle.seek(offset)
                    continue
                _raise_for(response)
                offset = int(response.json()["offset"])
        _raise_for(self._client.post(f"/v1/photos/{sha256}/upload/complete"))
        logger.info("photo %s uploaded (%d bytes)", sha256[:12], size)


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    detail = response.text[:300]
    if response.status_code in (401, 403):
        raise UploadRejectedError(f"the gateway refused the kiosk's key: {detail}")
    raise UploadRejectedError(f"HTTP {response.status_code}: {detail}")
