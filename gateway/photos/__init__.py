"""Gateway photo storage and near-duplicate detection.

- :class:`PhotoStore` — content-addressed storage (key = sha256 of the bytes) with resumable,
  verified uploads; :class:`FilesystemPhotoStore` is the default adapter,
  :class:`InMemoryPhotoStore` the fake;
- :func:`near_duplicates` — which known photos are within a perceptual-hash distance.

Errors: :mod:`gateway.photos.errors` (``PhotoStoreError`` and its subclasses).
"""

from gateway.photos.errors import (
    InvalidPhotoKeyError,
    PhotoNotFoundError,
    PhotoStoreError,
    PhotoTooLargeError,
    UploadIntegrityError,
    UploadNotFoundError,
    UploadOffsetError,
)
from gateway.photos.similarity import (
    DEFAULT_THRESHOLD,
    NearDuplicate,
    hamming,
    near_duplicates,
    parse_phash,
)
from gateway.photos.store import (
    DEFAULT_MAX_BYTES,
    FilesystemPhotoStore,
    InMemoryPhotoStore,
    PhotoStore,
    PhotoUpload,
    check_key,
    is_valid_key,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_THRESHOLD",
    "FilesystemPhotoStore",
    "InMemoryPhotoStore",
    "InvalidPhotoKeyError",
    "NearDuplicate",
    "PhotoNotFoundError",
    "PhotoStore",
    "PhotoStoreError",
    "PhotoTooLargeError",
    "PhotoUpload",
    "UploadIntegrityError",
    "UploadNotFoundError",
    "UploadOffsetError",
    "check_key",
    "hamming",
    "is_valid_key",
    "near_duplicates",
    "parse_phash",
]
