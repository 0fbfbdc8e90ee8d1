"""Errors raised by photo storage.

    PhotoStoreError                 anything the store cannot do; carries ``key`` when one applies
     +-- InvalidPhotoKeyError       a key that is not 64 lowercase hex digits (never touches disk)
     +-- PhotoNotFoundError         no stored photo with that key
     +-- PhotoTooLargeError         over the store's size limit; carries ``limit``
     +-- UploadNotFoundError        complete() on an upload that was never opened or was aborted
     +-- UploadOffsetError          a chunk that does not start where the upload stands; carries
     |                              ``expected`` (resume from there) and ``got``
     +-- UploadIntegrityError       the bytes received do not hash to the key; the partial upload
                                    is discarded; carries ``actual``

Suggested HTTP statuses (the API maps them in one place): 400, 404, 413, 404, 409, 422.
"""

from __future__ import annotations


class PhotoStoreError(Exception):
    """Base class of every photo-storage error."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class InvalidPhotoKeyError(PhotoStoreError):
    """The key is not a lowercase hex sha256."""

    def __init__(self, key: str) -> None:
        super().__init__(f"{key[:80]!r} is not a photo key (64 lowercase hex digits)", key=key)


class PhotoNotFoundError(PhotoStoreError):
    """No photo is stored under ``key``."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no photo {key}", key=key)


class PhotoTooLargeError(PhotoStoreError):
    """The photo (or the upload so far) is larger than ``limit`` bytes."""

    def __init__(self, key: str, limit: int) -> None:
        super().__init__(f"photo {key} is larger than the {limit}-byte limit", key=key)
        self.limit = limit


class UploadNotFoundError(PhotoStoreError):
    """There is no upload in progress for ``key`` (and no stored photo)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no upload in progress for photo {key}; open one first", key=key)


class UploadOffsetError(PhotoStoreError):
    """A chunk was sent for offset ``got`` but the upload stands at ``expected``."""

    def __init__(self, key: str, *, expected: int, got: int) -> None:
        super().__init__(
            f"upload of {key} is at byte {expected}, not {got}; resume from {expected}", key=key
        )
        self.expected = expected
        self.got = got


class UploadIntegrityError(PhotoStoreError):
    """The uploaded bytes hash to ``actual``, not to the key; the partial upload was discarded."""

    def __init__(self, key: str, actual: str) -> None:
        super().__init__(
            f"uploaded bytes hash to {actual}, not {key}; the upload was discarded, start again",
            key=key,
        )
        self.actual = actual
