"""Kiosk uploads through the real uploader into the real API; access per role; reuse flags."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from edge.outbox import SqliteOutbox
from edge.protocol import Channel, PhotoRecord, encode, make_envelope, new_id, topic_for
from edge.uplink import PhotoUploader
from gateway.api.app import create_app
from gateway.context import GatewayContext
from gateway.db import Appraisal, MatchRow, make_engine, migrate
from gateway.db.models import AppraisalRequest
from gateway.photos import FilesystemPhotoStore
from gateway.services.fraud import PhotoIndex
from gateway.services.ingest import Inbound, ingest_batch
from gateway.services.keys import Role, create_key
from gateway.services.sealing import Sealer
from tests.support.factories import appraisal_body

KIOSK = "dlr-001-k1"


@pytest.fixture
def context(tmp_path: Path) -> Iterator[GatewayContext]:
    engine = make_engine(f"sqlite:///{tmp_path / 'gw.db'}")
    migrate(engine)
    yield GatewayContext(
        engine=engine,
        sealer=Sealer(base64.urlsafe_b64encode(b"p" * 32)),
        photos=FilesystemPhotoStore(tmp_path / "photos"),
    )
    engine.dispose()


@pytest.fixture
def client(context: GatewayContext) -> TestClient:
    return TestClient(create_app(context))


def _key(context: GatewayContext, role: Role, org: str) -> str:
    with context.session() as s:
        return create_key(s, role=role, org=org)[0]


def _photo(tmp_path: Path, data: bytes) -> tuple[str, Path]:
    sha = hashlib.sha256(data).hexdigest()
    path = tmp_path / f"{sha}.jpg"
    path.write_bytes(data)
    return sha, path


def test_resumable_upload_through_the_uploader(
    tmp_path: Path, context: GatewayContext, client: TestClient
) -> None:
    data = bytes(range(256)) * 4000  # ~1 MB: several chunks
    sha, path = _photo(tmp_path, data)
    outbox = SqliteOutbox(tmp_path / "outbox.db", kiosk_id=KIOSK)
    try:
        outbox.enqueue_upload(sha, path, len(data))
        # A previous attempt got part of the way before the connection dropped.
        kiosk = {"Authorization": f"Bearer {_key(context, Role.KIOSK, KIOSK)}"}
        first = client.patch(
            f"/v1/photos/{sha}/upload",
            content=data[:100_000],
            headers={**kiosk, "Upload-Offset": "0"},
        )
        assert first.json() == {"offset": 100_000, "stored": False}
        wrong = client.patch(
            f"/v1/photos/{sha}/upload", content=b"x", headers={**kiosk, "Upload-Offset": "5"}
        )
        assert wrong.status_code == 409 and wrong.json()["offset"] == 100_000
        uploader = PhotoUploader(
            outbox,
            base_url=str(client.base_url),
            api_key=kiosk["Authorization"][7:],
            chunk_bytes=65_536,
            client=cast(httpx.Client, client),  # TestClient speaks httpx's API
        )
        assert uploader.upload_due() == 1
        assert outbox.upload_depth() == 0 and not path.exists()
        assert context.photos is not None and context.photos.get(sha) == data
        # Uploading what the gateway already has costs one request.
        sha2, path2 = _photo(tmp_path, data)
        outbox.enqueue_upload(sha2, path2, len(data))
        assert uploader.upload_due() == 1
    finally:
        outbox.close()


def test_corrupt_upload_is_refused_and_retried_later(
    tmp_path: Path, context: GatewayContext, client: TestClient
) -> None:
    sha, path = _photo(tmp_path, b"original bytes")
    path.write_bytes(b"flipped bytes!")  # the spooled file no longer matches its name
    outbox = SqliteOutbox(tmp_path / "outbox.db", kiosk_id=KIOSK, resend_after_s=60)
    try:
        outbox.enqueue_upload(sha, path, path.stat().st_size)
        key = _key(context, Role.KIOSK, KIOSK)
        uploader = PhotoUploader(
            outbox, base_url=str(client.base_url), api_key=key, client=cast(httpx.Client, client)
        )
        assert uploader.upload_due() == 0
        assert outbox.upload_depth() == 1 and outbox.due_uploads() == []  # waiting its backoff
        assert context.photos is not None and not context.photos.exists(sha)
    finally:
        outbox.close()


def test_only_kiosks_upload(context: GatewayContext, client: TestClient) -> None:
    dealer = {"Authorization": f"Bearer {_key(context, Role.DEALER, 'D')}"}
    response = client.get(f"/v1/photos/{'a' * 64}/upload", headers=dealer)
    assert response.status_code == 403


def _store_appraisal(
    context: GatewayContext, sha: str, phash: str, vin: str, index: PhotoIndex
) -> Appraisal:
    photo = PhotoRecord(view="front", sha256=sha, phash=phash, passed=True)
    body = appraisal_body(vin=vin).model_copy(update={"photos": [photo]})
    body = body.model_copy(update={"vehicle": body.vehicle.model_copy(update={"vin": vin})})
    env = make_envelope(KIOSK, body, seq=1)
    with context.session() as s:
        ingest_batch(
            s, [Inbound(topic_for(KIOSK, Channel.APPRAISALS), encode(env))], photo_index=index
        )
        row = s.get(Appraisal, body.appraisal_id)
        assert row is not None
        return row


def test_photo_access_per_role_and_reuse_on_another_vin(
    context: GatewayContext, client: TestClient
) -> None:
    assert context.photos is not None
    sha = context.photos.put(b"\xff\xd8 a jpeg")
    index = PhotoIndex()
    first = _store_appraisal(context, sha, "f0f0f0f0f0f0f0f0", "1G1ZB5ST7KF123456", index)
    again_same_car = _store_appraisal(context, sha, "f0f0f0f0f0f0f0f0", "1G1ZB5ST7KF123456", index)
    other_car = _store_appraisal(context, sha, "f0f0f0f0f0f0f0f1", "2T1BURHE0JC000001", index)
    assert first.gateway_flags == [] and again_same_car.gateway_flags == []
    assert [f["code"] for f in other_car.gateway_flags] == ["duplicate_photo"]
    assert other_car.gateway_flags[0]["evidence"]["distance_bits"] == 1

    with context.session() as s:
        s.add(
            AppraisalRequest(
                appraisal_id=first.appraisal_id,
                dealer_org="Dealer A",
                kiosk_id=KIOSK,
                command_id=new_id(),
                created_at=first.created_at,
            )
        )
        s.add(
            MatchRow(
                id=new_id(),
                appraisal_id=first.appraisal_id,
                loan_request_id=new_id(),
                lender_org="Lender A",
                program_id="p",
                program_version="1",
                eligible=True,
                result={},
                created_at=first.created_at,
            )
        )
        s.commit()
        assert s.exec(select(MatchRow)).one()
    url = f"/v1/photos/{sha}"
    for role, org, status in [
        (Role.OPS, "ops", 200),
        (Role.DEALER, "Dealer A", 200),
        (Role.DEALER, "Dealer B", 404),
        (Role.LENDER, "Lender A", 200),
        (Role.LENDER, "Lender B", 404),
    ]:
        response = client.get(url, headers={"Authorization": f"Bearer {_key(context, role, org)}"})
        assert response.status_code == status, (role, org)
        if status == 200:
            assert (
                response.content == b"\xff\xd8 a jpeg"
                and response.headers["content-type"] == "image/jpeg"
                and response.headers["x-content-type-options"] == "nosniff"
            )


def test_odometer_lower_than_before_is_flagged(context: GatewayContext) -> None:
    from datetime import timedelta

    older = appraisal_body()
    newer = appraisal_body().model_copy(
        update={"started_at": older.started_at + timedelta(days=30)}
    )
    newer = newer.model_copy(
        update={"vehicle": newer.vehicle.model_copy(update={"odometer_km": 30_000.0})}
    )
    with context.session() as s:
        for seq, body in enumerate((older, newer), 1):
            env = make_envelope(KIOSK, body, seq=seq, created_at=body.started_at)
            ingest_batch(s, [Inbound(topic_for(KIOSK, Channel.APPRAISALS), encode(env))])
        flagged = s.get(Appraisal, newer.appraisal_id)
        assert flagged is not None
        assert [f["code"] for f in flagged.gateway_flags] == ["odometer_rollback"]
        assert flagged.gateway_flags[0]["evidence"]["previous_odometer_km"] == 48_000.0


def test_a_chunk_past_the_size_limit_is_refused(context: GatewayContext, tmp_path: Path) -> None:
    context.photos = FilesystemPhotoStore(tmp_path / "small", max_bytes=64 * 1024)
    client = TestClient(create_app(context))
    kiosk = {"Authorization": f"Bearer {_key(context, Role.KIOSK, KIOSK)}"}
    response = client.patch(
        f"/v1/photos/{'b' * 64}/upload",
        content=b"\xff" * (64 * 1024 + 1),  # the route stops reading past the limit
        headers={**kiosk, "Upload-Offset": "0"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "65536-byte limit" in response.json()["detail"]
    assert client.get(f"/v1/photos/{'b' * 64}/upload", headers=kiosk).json()["offset"] == 0


def test_fraud_checks_see_earlier_appraisals_of_the_same_batch(context: GatewayContext) -> None:
    # The ingest worker commits up to hundreds of messages at once: a rolled-back odometer and a
    # photo reused on another car are caught within one batch as across batches.
    from datetime import timedelta

    def photo(phash: str) -> PhotoRecord:
        sha = hashlib.sha256(phash.encode()).hexdigest()
        return PhotoRecord(view="front", sha256=sha, phash=phash, passed=True)

    first = appraisal_body(photos=[photo("f0f0f0f0f0f0f0f0")])
    rolled_back = appraisal_body(photos=[photo("0123456789abcdef")])
    rolled_back = rolled_back.model_copy(
        update={
            "started_at": first.started_at + timedelta(days=30),
            "vehicle": rolled_back.vehicle.model_copy(update={"odometer_km": 10_000.0}),
        }
    )
    other_car = appraisal_body(vin="2T1BURHE0JC000001", photos=[photo("f0f0f0f0f0f0f0f1")])
    batch = [
        Inbound(
            topic_for(KIOSK, Channel.APPRAISALS),
            encode(make_envelope(KIOSK, body, seq=seq, created_at=body.started_at)),
        )
        for seq, body in enumerate((first, rolled_back, other_car), 1)
    ]
    with context.session() as s:
        assert ingest_batch(s, batch, photo_index=PhotoIndex()).stored == 3
        rows = [s.get(Appraisal, b.appraisal_id) for b in (first, rolled_back, other_car)]
        flags = {row.appraisal_id: [f["code"] for f in row.gateway_flags] for row in rows if row}
    assert flags == {
        first.appraisal_id: [],
        rolled_back.appraisal_id: ["odometer_rollback"],
        other_car.appraisal_id: ["duplicate_photo"],
    }
