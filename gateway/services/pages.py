"""Opaque cursors for ``?limit=&cursor=`` pagination: after an increasing integer key (matches,
programs) or after a text key (kiosk ids, or a timestamp and id for newest-first lists)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import and_, or_
from sqlmodel import Session
from sqlmodel.sql.expression import SelectOfScalar

from gateway.errors import BadRequestError, InvalidRequestError

MAX_LIMIT = 200
RowT = TypeVar("RowT")
_MAX_KEY = 2**63 - 1  # the keys are BIGINT: a larger one cannot even be compared


def encode_cursor(after: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{after}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The key to continue after; 0 for the first page."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, value = text.split(":", 1)
        after = int(value)
        if version != "v1" or not 0 <= after <= _MAX_KEY:
            raise ValueError(text)
        return after
    except (ValueError, UnicodeDecodeError):
        raise BadRequestError(
            "cursor is not valid: pass the next_cursor of the previous page unchanged"
        ) from None


def encode_text_cursor(after: str) -> str:
    return base64.urlsafe_b64encode(f"t1:{after}".encode()).decode().rstrip("=")


def decode_text_cursor(cursor: str | None) -> str | None:
    """The text key to continue after; ``None`` for the first page."""
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, value = text.split(":", 1)
        if version != "t1" or not value or len(value) > 512:
            raise ValueError(text)
        return value
    except (ValueError, UnicodeDecodeError):
        raise BadRequestError(
            "cursor is not valid: pass the next_cursor of the previous page unchanged"
        ) from None


def encode_newest_cursor(at: datetime, key: str) -> str:
    """The cursor after (``at``, ``key``) in a list newest first."""
    return encode_text_cursor(f"{at.isoformat()}|{key}")


def decode_newest_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """(time, key) to continue after in a list newest first; ``None`` for the first page."""
    after = decode_text_cursor(cursor)
    if after is None:
        return None
    stamp, _, key = after.partition("|")
    try:
        return datetime.fromisoformat(stamp), key
    except ValueError:
        raise BadRequestError(
            "cursor is not valid: pass the next_cursor of the previous page unchanged"
        ) from None


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequestError(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def split_page(
    rows: Sequence[RowT], limit: int, cursor_of: Callable[[RowT], str]
) -> tuple[list[RowT], str | None]:
    """Rows read with ``.limit(limit + 1)``: the page, and the next page's cursor (the extra row
    shows there is one), made by ``cursor_of`` from the page's last row."""
    if len(rows) <= limit:
        return list(rows), None
    return list(rows[:limit]), cursor_of(rows[limit - 1])


def page_by_text_key(
    session: Session,
    query: SelectOfScalar[RowT],
    key: Any,
    limit: int,
    cursor: str | None,
) -> tuple[list[RowT], str | None]:
    """A page of ``query``'s rows in the order of ``key`` (a unique text column, e.g.
    ``col(Kiosk.kiosk_id)``) after ``cursor``, and the next page's cursor."""
    after = decode_text_cursor(cursor)
    if after is not None:
        query = query.where(key > after)
    rows = session.exec(query.order_by(key).limit(limit + 1)).all()
    return split_page(rows, limit, lambda row: encode_text_cursor(getattr(row, key.key)))


def newest_after(cursor: str | None, at: Any, key: Any) -> Any | None:
    """For a list newest first by (``at``, ``key``) columns: the condition for rows after the
    cursor's, or ``None`` on the first page."""
    after = decode_newest_cursor(cursor)
    if after is None:
        return None
    stamp, last_key = after
    return or_(at < stamp, and_(at == stamp, key < last_key))
