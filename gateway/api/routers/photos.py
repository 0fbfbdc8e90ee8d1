"""Photos: kiosks upload them (content-addressed, resumable); people fetch what they may see.

Upload protocol (kiosk key):

- ``GET /v1/photos/{sha256}/upload`` → ``{"offset": n, "stored": bool}``
- ``PATCH /v1/photos/{sha256}/upload`` with ``Upload-Offset: n`` and the next bytes →
  ``{"offset": m}``; 409 with the offset to resume from when ``n`` is not where the upload stands
- ``POST /v1/photos/{sha256}/upload/complete`` → 201 once the bytes hash to the key (422 and the
  upload is discarded when they do not)

Reading: ``GET /v1/photos/{sha256}`` returns the JPEG to ops, to the dealer whose appraisal it
belongs to, and to a lender with a match on that appraisal.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response, status
from pydantic import BaseModel
from sqlmodel import col, select

from gateway.api.deps import ContextDep, SessionDep, get_principal
from gateway.db.models import AppraisalPhoto, AppraisalRequest, MatchRow
from gateway.errors import NotFoundError
from gateway.photos import (
    InvalidPhotoKeyError,
    PhotoNotFoundError,
    PhotoStore,
    PhotoStoreError,
    PhotoTooLargeError,
    UploadIntegrityError,
    UploadNotFoundError,
    UploadOffsetError,
)
from gateway.services.keys import Principal, Role

router = APIRouter(prefix="/photos", tags=["photos"])

PrincipalDep = Annotated[Principal, Depends(get_principal)]


class UploadState(BaseModel):
    offset: int
    stored: bool


def _store(context: ContextDep) -> PhotoStore:
    if context.photos is None:
        raise HTTPException(503, "this gateway has no photo store configured")
    return context.photos


StoreDep = Annotated[PhotoStore, Depends(_store)]


def _kiosk(principal: PrincipalDep) -> Principal:
    if principal.role is not Role.KIOSK:
        raise HTTPException(403, "uploading photos needs a kiosk key")
    return principal


KioskDep = Annotated[Principal, Depends(_kiosk)]


def _problem(exc: PhotoStoreError) -> HTTPException:
    status_code = {
        InvalidPhotoKeyError: 400,
        PhotoNotFoundError: 404,
        UploadNotFoundError: 404,
        PhotoTooLargeError: 413,
        UploadOffsetError: 409,
        UploadIntegrityError: 422,
    }.get(type(exc), 400)
    return HTTPException(status_code, str(exc))


@router.get("/{sha256}/upload", response_model=UploadState)
def upload_state(sha256: str, store: StoreDep, _kiosk: KioskDep) -> UploadState:
    """How much of this photo the gateway has (0 for a new one)."""
    try:
        upload = store.open_upload(sha256)
    except PhotoStoreError as exc:
        raise _problem(exc) from None
    return UploadState(offset=upload.offset, stored=upload.stored)


@router.patch("/{sha256}/upload", response_model=UploadState)
async def append_chunk(
    sha256: str,
    request: Request,
    store: StoreDep,
    _kiosk: KioskDep,
    upload_offset: Annotated[int, Header(ge=0, description="Where this chunk starts")],
) -> Response:
    """Append the request body at ``Upload-Offset``."""
    # Read no further than the photo may go: a body of any size must not fill the memory.
    room = store.max_bytes - upload_offset
    chunk = bytearray()
    async for part in request.stream():
        chunk += part
        if len(chunk) > room:
            raise _problem(PhotoTooLargeError(sha256, store.max_bytes))
    try:
        upload = store.open_upload(sha256)
        offset = upload.append(upload_offset, bytes(chunk))
    except UploadOffsetError as exc:
        return Response(
            UploadState(offset=exc.expected, stored=False).model_dump_json(),
            status_code=409,
            media_type="application/json",
        )
    except PhotoStoreError as exc:
        raise _problem(exc) from None
    return Response(
        UploadState(offset=offset, stored=False).model_dump_json(), media_type="application/json"
    )


@router.post(
    "/{sha256}/upload/complete", status_code=status.HTTP_201_CREATED, response_model=UploadState
)
def complete_upload(sha256: str, store: StoreDep, _kiosk: KioskDep) -> UploadState:
    """Verify the bytes hash to ``sha256`` and make the photo visible."""
    try:
        upload = store.open_upload(sha256)
        upload.complete()
    except PhotoStoreError as exc:
        raise _problem(exc) from None
    return UploadState(offset=store.size(sha256), stored=True)


@router.get(
    "/{sha256}",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "The masked JPEG"}},
)
def get_photo(
    sha256: str, context: ContextDep, session: SessionDep, store: StoreDep, principal: PrincipalDep
) -> Response:
    """The photo, to those allowed to see the appraisals it belongs to."""
    appraisal_ids = set(
        session.exec(
            select(AppraisalPhoto.appraisal_id).where(AppraisalPhoto.sha256 == sha256)
        ).all()
    )
    allowed = False
    if principal.role is Role.OPS:
        allowed = bool(appraisal_ids)
    elif principal.role is Role.DEALER and appraisal_ids:
        allowed = (
            session.exec(
                select(AppraisalRequest.appraisal_id).where(
                    col(AppraisalRequest.appraisal_id).in_(appraisal_ids),
                    AppraisalRequest.dealer_org == principal.org,
                )
            ).first()
            is not None
        )
    elif principal.role is Role.LENDER and appraisal_ids:
        allowed = (
            session.exec(
                select(MatchRow.id).where(
                    col(MatchRow.appraisal_id).in_(appraisal_ids),
                    MatchRow.lender_org == principal.org,
                )
            ).first()
            is not None
        )
    if not allowed:
        # The same answer whether the photo is missing or not yours: nothing leaks.
        raise NotFoundError(f"photo {sha256} does not exist or is not yours to see")
    try:
        data = store.get(sha256)
    except PhotoStoreError as exc:
        raise _problem(exc) from None
    return Response(
        data,
        media_type="image/jpeg",
        # Bytes from a kiosk: never let a browser guess them to be anything but an image.
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
