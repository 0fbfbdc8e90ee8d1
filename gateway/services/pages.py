"""Opaque cursors for ``?limit=&cursor=`` pagination over a monotonically increasing key."""

from __future__ import annotations

import base64

from gateway.errors import InvalidRequestError

MAX_LIMIT = 200


def encode_cursor(after: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{after}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The key to continue after; 0 for the first page."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, value = text.split(":", 1)
        if version != "v1":
            raise ValueError(version)
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequestError(
            "cursor is not valid: pass the next_cursor of the previous page unchanged"
        ) from None


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequestError(f"limit must be between 1 and {MAX_LIMIT}")
    return limit
