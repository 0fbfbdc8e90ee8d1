"""Encryption of personal data at rest (Fernet: AES-128-CBC + HMAC-SHA256) and masking."""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken


class Sealer:
    """Seals and opens JSON documents with the gateway's secret key."""

    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError:
            raise ValueError(
                "KIOSKMATCH_SECRET_KEY must be 32 bytes in urlsafe base64 (44 characters)"
            ) from None

    def seal(self, document: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(document, sort_keys=True).encode())

    def open(self, token: bytes) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._fernet.decrypt(token))
        except InvalidToken:
            raise ValueError(
                "personal data cannot be decrypted with this KIOSKMATCH_SECRET_KEY"
            ) from None
        return data


def income_band(minor: int) -> tuple[int, int]:
    """The band :func:`mask_money` shows for ``minor``, in cents: ``(low, high)`` (low 0: <$1k)."""
    dollars = minor // 100
    if dollars < 1000:
        return 0, 1000 * 100
    low = dollars // 1000 * 1000
    return low * 100, (low + 1000) * 100


def mask_money(minor: int) -> str:
    """A range instead of a figure, e.g. for income in logs and responses."""
    low, high = income_band(minor)
    if low == 0:
        return "<$1k"
    return f"${low // 100_000}k-${high // 100_000}k"


def mask_score(score: int) -> str:
    """A credit score as the 50-point band it falls in, e.g. ``"700-749"``."""
    low = score // 50 * 50
    return f"{low}-{low + 49}"
