"""One contract suite over every PhotoStore (filesystem and in-memory), then what only the
filesystem adapter promises (layout, atomicity, concurrent appends)."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.photos import (
    FilesystemPhotoStore,
    InMemoryPhotoStore,
    InvalidPhotoKeyError,
    PhotoNotFoundError,
    PhotoStore,
    PhotoTooLargeError,
    PhotoUpload,
    UploadIntegrityError,
    UploadNotFoundError,
    UploadOffsetError,
)

PHOTO = bytes(range(256)) * 40  # 10 KiB
KEY = hashlib.sha256(PHOTO).hexdigest()
MISSING = "0" * 64

STORES: dict[str, Callable[[Path, int], PhotoStore]] = {
    "filesystem": lambda root, limit: FilesystemPhotoStore(root, max_bytes=limit),
    "memory": lambda root, limit: InMemoryPhotoStore(max_bytes=limit),
}


@pytest.fixture(params=sorted(STORES))
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., PhotoStore]:
    def make(limit: int = 1024 * 1024) -> PhotoStore:
        return STORES[request.param](tmp_path / "photos", limit)

    return make


@pytest.fixture
def store(make_store: Callable[..., PhotoStore]) -> PhotoStore:
    return make_store()


def upload_in_chunks(upload: PhotoUpload, data: bytes, size: int) -> None:
    for start in range(upload.offset, len(data), size):
        upload.append(start, data[start : start + size])


# --- put / get --------------------------------------------------------------------------------


def test_is_a_photo_store(store: PhotoStore) -> None:
    assert isinstance(store, PhotoStore)


def test_put_returns_the_sha256_and_is_idempotent(store: PhotoStore) -> None:
    assert store.put(PHOTO) == KEY
    assert store.put(PHOTO) == KEY
    assert store.exists(KEY)
    assert store.get(KEY) == PHOTO
    assert store.size(KEY) == len(PHOTO)
    with store.open_read(KEY) as stream:
        assert stream.read() == PHOTO


def test_missing_photo(store: PhotoStore) -> None:
    assert not store.exists(MISSING)
    with pytest.raises(PhotoNotFoundError):
        store.get(MISSING)
    with pytest.raises(PhotoNotFoundError):
        store.size(MISSING)
    with pytest.raises(PhotoNotFoundError), store.open_read(MISSING):
        pass


@pytest.mark.parametrize(
    "key", ["../../etc/passwd", KEY.upper(), KEY[:-1], KEY + "0", "", "g" * 64, f"{KEY[:62]}/x"]
)
def test_keys_that_are_not_sha256_hex_are_refused(store: PhotoStore, key: str) -> None:
    for call in (store.get, store.exists, store.size, store.delete, store.open_upload):
        with pytest.raises(InvalidPhotoKeyError):
            call(key)


def test_delete(store: PhotoStore) -> None:
    store.put(PHOTO)
    assert store.delete(KEY) is True
    assert store.delete(KEY) is False
    assert not store.exists(KEY)


def test_size_limit_on_put(make_store: Callable[..., PhotoStore]) -> None:
    store = make_store(limit=1000)
    with pytest.raises(PhotoTooLargeError) as info:
        store.put(PHOTO)
    assert info.value.limit == 1000
    assert not store.exists(KEY)


# --- resumable uploads ------------------------------------------------------------------------


def test_upload_in_chunks_then_complete(store: PhotoStore) -> None:
    upload = store.open_upload(KEY)
    assert (upload.key, upload.offset, upload.stored) == (KEY, 0, False)
    assert not store.exists(KEY)
    upload_in_chunks(upload, PHOTO, 3000)
    assert upload.offset == len(PHOTO)
    assert not store.exists(KEY)  # never visible before it is verified
    assert upload.complete() == KEY
    assert store.get(KEY) == PHOTO
    assert upload.stored
    assert upload.complete() == KEY  # idempotent


def test_an_interrupted_upload_resumes_from_the_stores_offset(store: PhotoStore) -> None:
    first = store.open_upload(KEY)
    first.append(0, PHOTO[:4000])
    # The kiosk lost power; later a new request asks where to resume.
    resumed = store.open_upload(KEY)
    assert resumed.offset == 4000
    upload_in_chunks(resumed, PHOTO, 2500)
    assert resumed.complete() == KEY
    assert store.get(KEY) == PHOTO


def test_a_chunk_at_the_wrong_offset_says_where_to_resume(store: PhotoStore) -> None:
    upload = store.open_upload(KEY)
    upload.append(0, PHOTO[:100])
    for wrong in (0, 50, 101, 5000):
        with pytest.raises(UploadOffsetError) as info:
            upload.append(wrong, PHOTO[wrong : wrong + 10])
        assert (info.value.expected, info.value.got) == (100, wrong)
    assert upload.offset == 100  # nothing was written by the refused chunks


def test_bytes_that_do_not_hash_to_the_key_are_discarded(store: PhotoStore) -> None:
    upload = store.open_upload(KEY)
    tampered = PHOTO[:-1] + b"\x00"
    upload.append(0, tampered)
    with pytest.raises(UploadIntegrityError) as info:
        upload.complete()
    assert info.value.actual == hashlib.sha256(tampered).hexdigest()
    assert not store.exists(KEY)
    with pytest.raises(UploadNotFoundError):
        upload.complete()
    retry = store.open_upload(KEY)
    assert retry.offset == 0
    retry.append(0, PHOTO)
    assert retry.complete() == KEY


def test_uploading_a_photo_already_stored(store: PhotoStore) -> None:
    store.put(PHOTO)
    upload = store.open_upload(KEY)
    assert upload.stored and upload.offset == len(PHOTO)
    with pytest.raises(UploadOffsetError) as info:
        upload.append(0, PHOTO[:10])
    assert info.value.expected == len(PHOTO)
    assert upload.complete() == KEY
    assert store.get(KEY) == PHOTO


def test_size_limit_on_upload(make_store: Callable[..., PhotoStore]) -> None:
    store = make_store(limit=5000)
    upload = store.open_upload(KEY)
    upload.append(0, PHOTO[:4000])
    with pytest.raises(PhotoTooLargeError):
        upload.append(4000, PHOTO[4000:8000])
    assert upload.offset == 4000


def test_abort_discards_the_partial_upload(store: PhotoStore) -> None:
    upload = store.open_upload(KEY)
    upload.append(0, PHOTO[:10])
    upload.abort()
    with pytest.raises(UploadNotFoundError):
        upload.append(10, PHOTO[10:20])
    assert store.open_upload(KEY).offset == 0


def test_empty_photo(store: PhotoStore) -> None:
    empty_key = hashlib.sha256(b"").hexdigest()
    upload = store.open_upload(empty_key)
    assert upload.complete() == empty_key
    assert store.get(empty_key) == b""


def test_stale_uploads_are_purged(store: PhotoStore) -> None:
    store.open_upload(KEY).append(0, PHOTO[:10])
    assert store.purge_stale_uploads(3600) == 0
    assert store.purge_stale_uploads(-1) == 1  # everything is older than "one second ahead"
    assert store.open_upload(KEY).offset == 0


# --- filesystem only --------------------------------------------------------------------------


def test_filesystem_layout_and_no_leftovers(tmp_path: Path) -> None:
    store = FilesystemPhotoStore(tmp_path)
    store.put(PHOTO)
    upload = store.open_upload(hashlib.sha256(b"other").hexdigest())
    upload.append(0, b"other")
    upload.complete()
    assert store.object_path(KEY) == tmp_path / "objects" / KEY[:2] / KEY[2:4] / KEY
    assert store.object_path(KEY).read_bytes() == PHOTO
    assert list((tmp_path / "tmp").iterdir()) == []
    assert list((tmp_path / "uploads").iterdir()) == []
    assert store.verify(KEY)


def test_a_crashed_put_leaves_nothing_visible(tmp_path: Path) -> None:
    store = FilesystemPhotoStore(tmp_path)
    # What a power cut during put() leaves behind: a temporary file, never an object.
    (tmp_path / "tmp" / f"{KEY[:16]}crash.tmp").write_bytes(PHOTO[:100])
    assert not store.exists(KEY)
    assert store.purge_stale_uploads(3600, now=os.path.getmtime(tmp_path / "tmp") + 7200) == 1
    assert list((tmp_path / "tmp").iterdir()) == []


def test_verify_detects_bit_rot(tmp_path: Path) -> None:
    store = FilesystemPhotoStore(tmp_path)
    store.put(PHOTO)
    path = store.object_path(KEY)
    path.write_bytes(PHOTO[:-1] + b"\x01")
    assert not store.verify(KEY)


def test_a_second_process_sees_the_same_upload(tmp_path: Path) -> None:
    # Two store objects on one root stand for two gateway workers.
    a, b = FilesystemPhotoStore(tmp_path), FilesystemPhotoStore(tmp_path)
    a.open_upload(KEY).append(0, PHOTO[:5000])
    upload = b.open_upload(KEY)
    assert upload.offset == 5000
    upload.append(5000, PHOTO[5000:])
    upload.complete()
    assert a.get(KEY) == PHOTO


def test_concurrent_appends_at_the_same_offset_let_exactly_one_through(tmp_path: Path) -> None:
    store = FilesystemPhotoStore(tmp_path)
    store.open_upload(KEY)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt() -> None:
        upload = store.open_upload(KEY)
        barrier.wait()
        try:
            upload.append(0, PHOTO[:1000])
            result = "ok"
        except UploadOffsetError:
            result = "conflict"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 7 + ["ok"]
    assert store.open_upload(KEY).offset == 1000


def test_max_bytes_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        FilesystemPhotoStore(tmp_path, max_bytes=0)
    with pytest.raises(ValueError):
        InMemoryPhotoStore(max_bytes=-1)
