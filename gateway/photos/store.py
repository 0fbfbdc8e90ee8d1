"""Content-addressed photo storage: the port (:class:`PhotoStore`), the filesystem adapter and an
in-memory fake.

A photo's key is the lowercase hex sha256 of its bytes, so storing is idempotent and a key names
exactly one content. Uploads are resumable (the kiosk's outbox retries after power or network
loss): ``open_upload(key)`` attaches to the upload in progress (or starts one), ``offset`` says
how many bytes the store holds, ``append(offset, chunk)`` only accepts a chunk that starts there,
and ``complete()`` verifies the sha256 before the photo becomes visible. A photo is never visible
half-written.

The filesystem layout under ``root``::

    objects/ab/cd/abcd…  the photos (read-only once written)
    uploads/abcd….part   uploads in progress (one per key, shared by every process)
    tmp/                 staging for put(); same filesystem, so rename is atomic

An S3-compatible adapter implements the same protocol (put → PutObject with a SHA-256 checksum;
an upload stages its bytes, then PutObject/CompleteMultipartUpload on complete); see
docs/photos.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from gateway.photos.errors import (
    InvalidPhotoKeyError,
    PhotoNotFoundError,
    PhotoTooLargeError,
    UploadIntegrityError,
    UploadNotFoundError,
    UploadOffsetError,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FilesystemPhotoStore",
    "InMemoryPhotoStore",
    "PhotoStore",
    "PhotoUpload",
    "check_key",
    "is_valid_key",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 25 * 1024 * 1024
"""A 1080p JPEG is well under 2 MiB; the limit only stops abuse."""

_KEY = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1024 * 1024


def is_valid_key(key: str) -> bool:
    """True for 64 lowercase hex digits."""
    return bool(_KEY.match(key))


def check_key(key: str) -> str:
    """Return ``key`` or raise :class:`InvalidPhotoKeyError` (keys become file names: this is
    what keeps ``../`` out)."""
    if not isinstance(key, str) or not is_valid_key(key):
        raise InvalidPhotoKeyError(str(key))
    return key


@runtime_checkable
class PhotoUpload(Protocol):
    """A resumable upload of one photo. Every method may be called from a new process (the
    state lives in the store), so an HTTP handler opens one per request."""

    @property
    def key(self) -> str:
        """The sha256 the bytes must hash to."""
        ...

    @property
    def offset(self) -> int:
        """Bytes received so far (the stored size once the photo is stored)."""
        ...

    @property
    def stored(self) -> bool:
        """True once the photo is stored (by this upload or another)."""
        ...

    def append(self, offset: int, chunk: bytes) -> int:
        """Add ``chunk`` at ``offset`` and return the new offset. Raises
        :class:`UploadOffsetError` when ``offset`` is not :attr:`offset`, and
        :class:`PhotoTooLargeError` past the store's limit."""
        ...

    def complete(self) -> str:
        """Verify the sha256 and store the photo; return the key. Idempotent once stored.
        Raises :class:`UploadIntegrityError` (upload discarded) or :class:`UploadNotFoundError`."""
        ...

    def abort(self) -> None:
        """Discard the bytes received (a stored photo is not touched)."""
        ...


@runtime_checkable
class PhotoStore(Protocol):
    """Content-addressed photo storage."""

    max_bytes: int

    def put(self, data: bytes) -> str:
        """Store ``data`` (atomically) and return its sha256 key; storing twice is a no-op."""
        ...

    def get(self, key: str) -> bytes:
        """The photo's bytes. Raises :class:`PhotoNotFoundError`."""
        ...

    def open_read(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """A binary stream of the photo, for streaming HTTP responses."""
        ...

    def exists(self, key: str) -> bool:
        """True when the photo is stored."""
        ...

    def size(self, key: str) -> int:
        """The photo's size in bytes. Raises :class:`PhotoNotFoundError`."""
        ...

    def delete(self, key: str) -> bool:
        """Remove the photo (retention, erasure requests); True if it existed."""
        ...

    def open_upload(self, key: str) -> PhotoUpload:
        """Attach to the upload of ``key`` in progress, or start one."""
        ...

    def purge_stale_uploads(self, older_than_s: float) -> int:
        """Drop uploads untouched for ``older_than_s`` seconds; return how many."""
        ...


# --- filesystem ------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    # A rename is durable only once the directory entry is on disk.
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256_file(handle: BinaryIO) -> str:
    digest = hashlib.sha256()
    handle.seek(0)
    while block := handle.read(_CHUNK):
        digest.update(block)
    return digest.hexdigest()


class FilesystemPhotoStore:
    """Photos as files under ``root``. Safe for several threads and several processes on one
    host (uploads are serialised with ``flock``); not for NFS, whose locking is unreliable."""

    def __init__(self, root: Path | str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._objects = self.root / "objects"
        self._uploads = self.root / "uploads"
        self._tmp = self.root / "tmp"
        for folder in (self._objects, self._uploads, self._tmp):
            folder.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"FilesystemPhotoStore({str(self.root)!r})"

    def object_path(self, key: str) -> Path:
        """Where the photo ``key`` lives (whether or not it exists)."""
        check_key(key)
        return self._objects / key[:2] / key[2:4] / key

    def part_path(self, key: str) -> Path:
        """Where an upload of ``key`` in progress lives."""
        check_key(key)
        return self._uploads / f"{key}.part"

    def _publish(self, source: Path, key: str) -> None:
        target = self.object_path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        _fsync_dir(target.parent)

    def put(self, data: bytes) -> str:
        """Write to a temporary file, fsync, rename into place."""
        key = hashlib.sha256(data).hexdigest()
        if len(data) > self.max_bytes:
            raise PhotoTooLargeError(key, self.max_bytes)
        if self.exists(key):
            return key
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix=key[:16], suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            self._publish(tmp, key)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        logger.debug("stored photo %s (%d bytes)", key, len(data))
        return key

    def get(self, key: str) -> bytes:
        """Read the photo."""
        try:
            return self.object_path(key).read_bytes()
        except FileNotFoundError:
            raise PhotoNotFoundError(key) from None

    @contextlib.contextmanager
    def _reader(self, key: str) -> Iterator[BinaryIO]:
        try:
            handle = self.object_path(key).open("rb")
        except FileNotFoundError:
            raise PhotoNotFoundError(key) from None
        with handle:
            yield handle

    def open_read(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """Stream the photo (checks the key and existence when entered)."""
        check_key(key)
        return self._reader(key)

    def exists(self, key: str) -> bool:
        """True when the photo file exists."""
        return self.object_path(key).is_file()

    def size(self, key: str) -> int:
        """Size from the file system."""
        try:
            return self.object_path(key).stat().st_size
        except FileNotFoundError:
            raise PhotoNotFoundError(key) from None

    def delete(self, key: str) -> bool:
        """Unlink the photo file."""
        path = self.object_path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(path.parent)
        return True

    def verify(self, key: str) -> bool:
        """Re-hash the stored photo (for a scrubbing job): True when it still matches its key."""
        with self.open_read(key) as handle:
            return _sha256_file(handle) == key

    def open_upload(self, key: str) -> _FilesystemUpload:
        """Attach to (or create) ``uploads/<key>.part``."""
        check_key(key)
        if not self.exists(key):
            # Opening in append mode creates the part file without truncating someone else's.
            with self.part_path(key).open("ab"):
                pass
        return _FilesystemUpload(self, key)

    def purge_stale_uploads(self, older_than_s: float, *, now: float | None = None) -> int:
        """Remove part files (and abandoned put() temporaries) not modified for
        ``older_than_s`` seconds."""
        cutoff = (time.time() if now is None else now) - older_than_s
        removed = 0
        for folder, pattern in ((self._uploads, "*.part"), (self._tmp, "*.tmp")):
            for path in folder.glob(pattern):
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
        if removed:
            logger.info("purged %d stale photo upload(s) from %s", removed, self.root)
        return removed


class _FilesystemUpload:
    def __init__(self, store: FilesystemPhotoStore, key: str) -> None:
        self._store = store
        self._key = key
        self._part = store.part_path(key)

    @property
    def key(self) -> str:
        return self._key

    @property
    def stored(self) -> bool:
        return self._store.exists(self._key)

    @property
    def offset(self) -> int:
        try:
            return self._part.stat().st_size
        except FileNotFoundError:
            if self.stored:
                return self._store.size(self._key)
            return 0

    @contextlib.contextmanager
    def _locked_part(self) -> Iterator[BinaryIO | None]:
        """The part file opened and exclusively locked, or None when there is none.

        After taking the lock, check the path still names the file we locked: a concurrent
        complete() may have renamed it into objects/, and writing to it then would corrupt a
        stored photo.
        """
        while True:
            try:
                handle = self._part.open("r+b")
            except FileNotFoundError:
                yield None
                return
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                current = os.stat(self._part)
            except FileNotFoundError:
                current = None
            if current is not None and current.st_ino == os.fstat(handle.fileno()).st_ino:
                try:
                    yield handle
                finally:
                    handle.close()  # closing releases the lock
                return
            handle.close()
            if current is None:
                yield None
                return
            # The part was replaced by a fresh upload meanwhile: lock that one instead.

    def append(self, offset: int, chunk: bytes) -> int:
        with self._locked_part() as handle:
            if handle is None:
                if self.stored:
                    stored_size = self._store.size(self._key)
                    raise UploadOffsetError(self._key, expected=stored_size, got=offset)
                raise UploadNotFoundError(self._key)
            current = os.fstat(handle.fileno()).st_size
            if offset != current:
                raise UploadOffsetError(self._key, expected=current, got=offset)
            if current + len(chunk) > self._store.max_bytes:
                raise PhotoTooLargeError(self._key, self._store.max_bytes)
            handle.seek(current)
            handle.write(chunk)
            handle.flush()
            return current + len(chunk)

    def complete(self) -> str:
        with self._locked_part() as handle:
            if handle is None:
                if self.stored:
                    return self._key
                raise UploadNotFoundError(self._key)
            os.fsync(handle.fileno())
            actual = _sha256_file(handle)
            if actual != self._key:
                self._part.unlink(missing_ok=True)
                raise UploadIntegrityError(self._key, actual)
            # Renamed while still locked, so no append can slip in between hash and rename.
            self._store._publish(self._part, self._key)
        logger.debug("upload of photo %s completed", self._key)
        return self._key

    def abort(self) -> None:
        with self._locked_part() as handle:
            if handle is not None:
                self._part.unlink(missing_ok=True)


# --- in memory (fake) ------------------------------------------------------------------------


class InMemoryPhotoStore:
    """The same semantics in dictionaries, for tests of code that uses a store."""

    def __init__(self, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self._objects: dict[str, bytes] = {}
        self._uploads: dict[str, bytearray] = {}
        self._touched: dict[str, float] = {}
        self._lock = threading.RLock()

    def put(self, data: bytes) -> str:
        """Store a copy of ``data``."""
        key = hashlib.sha256(data).hexdigest()
        if len(data) > self.max_bytes:
            raise PhotoTooLargeError(key, self.max_bytes)
        with self._lock:
            self._objects.setdefault(key, bytes(data))
        return key

    def get(self, key: str) -> bytes:
        """The stored bytes."""
        check_key(key)
        with self._lock:
            try:
                return self._objects[key]
            except KeyError:
                raise PhotoNotFoundError(key) from None

    @contextlib.contextmanager
    def _reader(self, key: str) -> Iterator[BinaryIO]:
        yield io.BytesIO(self.get(key))

    def open_read(self, key: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """A BytesIO over the photo."""
        check_key(key)
        return self._reader(key)

    def exists(self, key: str) -> bool:
        """True when stored."""
        check_key(key)
        with self._lock:
            return key in self._objects

    def size(self, key: str) -> int:
        """Stored size."""
        return len(self.get(key))

    def delete(self, key: str) -> bool:
        """Forget the photo."""
        check_key(key)
        with self._lock:
            return self._objects.pop(key, None) is not None

    def open_upload(self, key: str) -> _MemoryUpload:
        """Attach to or start the upload of ``key``."""
        check_key(key)
        with self._lock:
            if key not in self._objects:
                self._uploads.setdefault(key, bytearray())
                self._touched[key] = time.time()
        return _MemoryUpload(self, key)

    def purge_stale_uploads(self, older_than_s: float, *, now: float | None = None) -> int:
        """Drop uploads untouched for ``older_than_s`` seconds."""
        cutoff = (time.time() if now is None else now) - older_than_s
        with self._lock:
            stale = [k for k, t in self._touched.items() if t < cutoff and k in self._uploads]
            for key in stale:
                del self._uploads[key]
                del self._touched[key]
        return len(stale)


class _MemoryUpload:
    def __init__(self, store: InMemoryPhotoStore, key: str) -> None:
        self._store = store
        self._key = key

    @property
    def key(self) -> str:
        return self._key

    @property
    def stored(self) -> bool:
        return self._store.exists(self._key)

    @property
    def offset(self) -> int:
        with self._store._lock:
            if self._key in self._store._uploads:
                return len(self._store._uploads[self._key])
            return len(self._store._objects.get(self._key, b""))

    def append(self, offset: int, chunk: bytes) -> int:
        store = self._store
        with store._lock:
            buffer = store._uploads.get(self._key)
            if buffer is None:
                if self._key in store._objects:
                    stored_size = len(store._objects[self._key])
                    raise UploadOffsetError(self._key, expected=stored_size, got=offset)
                raise UploadNotFoundError(self._key)
            if offset != len(buffer):
                raise UploadOffsetError(self._key, expected=len(buffer), got=offset)
            if len(buffer) + len(chunk) > store.max_bytes:
                raise PhotoTooLargeError(self._key, store.max_bytes)
            buffer.extend(chunk)
            store._touched[self._key] = time.time()
            return len(buffer)

    def complete(self) -> str:
        store = self._store
        with store._lock:
            buffer = store._uploads.get(self._key)
            if buffer is None:
                if self._key in store._objects:
                    return self._key
                raise UploadNotFoundError(self._key)
            actual = hashlib.sha256(buffer).hexdigest()
            del store._uploads[self._key]
            store._touched.pop(self._key, None)
            if actual != self._key:
                raise UploadIntegrityError(self._key, actual)
            store._objects[self._key] = bytes(buffer)
            return self._key

    def abort(self) -> None:
        with self._store._lock:
            self._store._uploads.pop(self._key, None)
            self._store._touched.pop(self._key, None)
