"""API keys: random 32-byte tokens shown once and stored as SHA-256."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlmodel import Session, select

from gateway.db.models import ApiKey
from gateway.errors import InvalidRequestError

ORG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._&'-]{0,127}$")


class Role(StrEnum):
    DEALER = "dealer"
    LENDER = "lender"
    OPS = "ops"
    KIOSK = "kiosk"  # uploads photos; org is the kiosk id


@dataclass(frozen=True)
class Principal:
    key_id: int
    role: Role
    org: str


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_org(org: str) -> str:
    """``org`` if it is a valid organisation name; :class:`InvalidRequestError` otherwise."""
    if not ORG_PATTERN.fullmatch(org):
        raise InvalidRequestError(
            f"organisation {org!r} is not valid: use 1-128 letters, digits, spaces or . _ & ' -"
        )
    return org


def create_key(session: Session, *, role: Role, org: str) -> tuple[str, ApiKey]:
    """Make a key for ``org`` with ``role``; returns the token (shown once) and its row."""
    check_org(org)
    token = "km_" + secrets.token_urlsafe(32)
    row = ApiKey(
        key_hash=hash_key(token),
        prefix=token[:10],
        role=role.value,
        org=org,
        created_at=datetime.now(UTC),
    )
    session.add(row)
    session.commit()
    session.refresh(row)
    return token, row


def authenticate(session: Session, token: str) -> Principal | None:
    """The principal a bearer token stands for, or None for an unknown or revoked key."""
    row = session.exec(select(ApiKey).where(ApiKey.key_hash == hash_key(token))).first()
    if row is None or row.revoked_at is not None or row.id is None:
        return None
    return Principal(key_id=row.id, role=Role(row.role), org=row.org)


def revoke_key(session: Session, *, prefix: str) -> ApiKey:
    """Revoke the one key whose first characters are ``prefix`` (as printed at creation)."""
    rows = session.exec(select(ApiKey).where(ApiKey.prefix == prefix[:10])).all()
    matching = [r for r in rows if prefix.startswith(r.prefix) or r.prefix.startswith(prefix)]
    if len(matching) != 1:
        raise InvalidRequestError(
            f"{len(matching)} keys start with {prefix!r}; give the key's first 10 characters"
        )
    row = matching[0]
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        session.commit()
    return row
