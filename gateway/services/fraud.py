"""Fraud checks across appraisals, which no single kiosk can make.

- the same or a near-identical photo (perceptual hash within a few bits) on another VIN;
- an odometer lower than a previous appraisal of the same VIN.

Both become gateway flags on the appraisal (``duplicate_photo``, ``odometer_rollback``), which
lenders see and programs may exclude.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import numpy.typing as npt
from sqlalchemy import DateTime, Table, bindparam, func
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from gateway.db.bulk import AnyOf
from gateway.db.models import Appraisal, AppraisalPhoto
from gateway.photos import DEFAULT_THRESHOLD, parse_phash
from gateway.services.wire import AppraisalView

logger = logging.getLogger(__name__)

#: Odometers read within this many km of each other are the same reading (rounding, units).
ODOMETER_TOLERANCE_KM = 5.0


@dataclass
class PhotoIndex:
    """Every stored photo hash in memory (8 bytes each), refreshed from the database by id.

    A million photos take 8 MB and one comparison pass takes milliseconds; several gateway
    workers each keep their own, catching up on what the others stored.
    """

    threshold: int = DEFAULT_THRESHOLD
    _hashes: npt.NDArray[np.uint64] = field(default_factory=lambda: np.zeros(0, np.uint64))
    _rows: list[tuple[str, str, str | None, str]] = field(default_factory=list)
    _last_id: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self, session: Session) -> None:
        rows = session.exec(
            select(AppraisalPhoto)
            .where(col(AppraisalPhoto.id) > self._last_id, col(AppraisalPhoto.phash).is_not(None))
            .order_by(col(AppraisalPhoto.id))
        ).all()
        if not rows:
            return
        self.add(
            (row.phash or "", (row.appraisal_id, row.sha256, row.vin, row.view)) for row in rows
        )
        self._last_id = max(r.id or 0 for r in rows)

    def add(self, photos: Iterable[tuple[str, tuple[str, str, str | None, str]]]) -> None:
        """Index each ``(phash, (appraisal_id, sha256, vin, view))``; unreadable hashes are
        left out."""
        new = []
        for phash, row in photos:
            try:
                new.append(parse_phash(phash))
            except ValueError:
                continue
            self._rows.append(row)
        if new:
            self._hashes = np.concatenate([self._hashes, np.array(new, dtype=np.uint64)])

    def matches(self, phash: str) -> list[tuple[int, tuple[str, str, str | None, str]]]:
        """(distance, (appraisal_id, sha256, vin, view)) of stored photos within the threshold."""
        if self._hashes.size == 0:
            return []
        x = np.bitwise_xor(self._hashes, np.uint64(parse_phash(phash)))
        distances = np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
        hits = np.nonzero(distances <= self.threshold)[0]
        return sorted((int(distances[i]), self._rows[i]) for i in hits)


def check_appraisals(
    session: Session, appraisals: Sequence[AppraisalView], index: PhotoIndex | None
) -> dict[str, list[dict[str, Any]]]:
    """Gateway flags for newly stored appraisals (call inside the ingest transaction)."""
    flags: dict[str, list[dict[str, Any]]] = {}
    if index is not None and any(b.photos for b in appraisals):
        # The batch's own appraisals are not stored yet: each is also compared with those
        # before it in the batch.
        batch = PhotoIndex(threshold=index.threshold)
        with index._lock:
            index.refresh(session)
            for body in appraisals:
                found = _photo_reuse(body, (index, batch))
                if found:
                    flags.setdefault(body.appraisal_id, []).extend(found)
                batch.add(
                    (p.phash, (body.appraisal_id, p.sha256, body.vehicle.vin, p.view))
                    for p in body.photos
                    if p.phash
                )
    for appraisal_id, rollback in _odometer_rollbacks(session, appraisals).items():
        flags.setdefault(appraisal_id, []).append(rollback)
    for appraisal_id, items in flags.items():
        logger.warning(
            "appraisal %s flagged: %s", appraisal_id, ", ".join(f["code"] for f in items)
        )
    return flags


def _photo_reuse(body: AppraisalView, indexes: Sequence[PhotoIndex]) -> list[dict[str, Any]]:
    out = []
    for photo in body.photos:
        if not photo.phash:
            continue
        try:
            hits = sorted(hit for index in indexes for hit in index.matches(photo.phash))
        except ValueError:
            continue
        for distance, (other_id, other_sha, other_vin, other_view) in hits:
            if other_id == body.appraisal_id or (other_vin and other_vin == body.vehicle.vin):
                continue  # the same car photographed again is not fraud
            out.append(
                {
                    "code": "duplicate_photo",
                    "severity": "critical",
                    "message": f"The {photo.view} photo matches a photo of another vehicle "
                    f"(VIN {other_vin or 'unknown'}); check it was taken of this car.",
                    "evidence": {
                        "view": photo.view,
                        "sha256": photo.sha256,
                        "other_appraisal_id": other_id,
                        "other_view": other_view,
                        "other_sha256": other_sha,
                        "distance_bits": distance,
                    },
                }
            )
            break  # one match per photo is enough evidence
    return out


_APPRAISALS: Table = cast(Any, Appraisal).__table__
# Built once: ingest runs it for every batch, and building it cost as much as running it.
_HIGHEST_ODOMETER = AnyOf(
    lambda in_ids: (
        core_select(_APPRAISALS.c.vin, func.max(_APPRAISALS.c.odometer_km))
        .where(
            in_ids(_APPRAISALS.c.vin),
            _APPRAISALS.c.created_at < bindparam("before", type_=DateTime(timezone=True)),
        )
        .group_by(_APPRAISALS.c.vin)
    )
)


def _odometer_rollbacks(
    session: Session, appraisals: Sequence[AppraisalView]
) -> dict[str, dict[str, Any]]:
    """Appraisals whose odometer is lower than an earlier appraisal of the same VIN (one query)."""
    candidates = [
        b
        for b in appraisals
        if b.vehicle.vin and b.vehicle.vin_valid and b.vehicle.odometer_km is not None
    ]
    if not candidates:
        return {}
    latest_start = max(b.started_at for b in candidates)
    # The highest earlier reading per VIN, aggregated in the database: a VIN appraised a
    # thousand times costs the same as one appraised once.
    highest = {
        vin: km
        for vin, km in _HIGHEST_ODOMETER.execute(
            session.connection(),
            sorted({b.vehicle.vin for b in candidates if b.vehicle.vin}),
            {"before": latest_start},
        )
        if vin is not None and km is not None and math.isfinite(km)  # none since 29 November
    }
    out: dict[str, dict[str, Any]] = {}
    # The batch's own appraisals are not stored yet: each also counts as an earlier reading for
    # those of its VIN that started after it. VIN -> (km, appraisal id) of the highest so far.
    in_batch: dict[str, tuple[float, str]] = {}
    for body in sorted(candidates, key=lambda b: b.started_at):
        km = body.vehicle.odometer_km
        vin = body.vehicle.vin
        assert km is not None and vin is not None
        stored_km = highest.get(vin)
        batch_km, batch_id = in_batch.get(vin, (None, None))
        if batch_km is None or km > batch_km:
            in_batch[vin] = (km, body.appraisal_id)
        if batch_km is not None and (stored_km is None or batch_km > stored_km):
            previous_km, previous_id = batch_km, batch_id
        elif stored_km is not None:
            previous_km, previous_id = stored_km, None
        else:
            continue
        if previous_km <= km + ODOMETER_TOLERANCE_KM:
            continue
        if previous_id is None:
            previous_id = session.exec(
                select(Appraisal.appraisal_id).where(
                    Appraisal.vin == vin, Appraisal.odometer_km == previous_km
                )
            ).first()
        out[body.appraisal_id] = {
            "code": "odometer_rollback",
            "severity": "critical",
            "message": f"The odometer reads {km:,.0f} km but an earlier appraisal of this VIN "
            f"read {previous_km:,.0f} km.",
            "evidence": {
                "odometer_km": km,
                "previous_odometer_km": previous_km,
                "previous_appraisal_id": previous_id,
            },
        }
    return out
