"""Opaque pagination cursors: the ``(created_at, id)`` of the last user on a page.

Keyset ("seek") pagination instead of OFFSET: a page never repeats or skips a
user when others are added or deleted meanwhile, and a deep page costs the same
as the first (one index range scan). The cursor is base64url JSON; it is opaque
to clients but not secret: a forged cursor only moves the starting position.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime

from backend_kit.errors import UserValidationError
from backend_kit.users._model import User, UserPage

__all__ = ["decode_cursor", "encode_cursor", "invalid_cursor", "make_page"]

# A real cursor is about 90 characters; refuse to decode anything much larger.
_MAX_CURSOR_LENGTH = 512
_VERSION = 1


def encode_cursor(created_at: datetime, user_id: str) -> str:
    """The cursor that resumes listing right after the user ``(created_at, user_id)``."""
    payload = [_VERSION, created_at.astimezone(UTC).isoformat(timespec="microseconds"), user_id]
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def invalid_cursor() -> UserValidationError:
    """The error for a cursor this library did not issue (field ``after``)."""
    return UserValidationError(
        "after: not a cursor returned by a previous page (use next_cursor as given)",
        field="after",
    )


def decode_cursor(cursor: object) -> tuple[datetime, str]:
    """Return the ``(created_at, user_id)`` a cursor points after.

    Raises:
        UserValidationError: (field ``after``) for anything :func:`encode_cursor` did not make.
    """
    if not isinstance(cursor, str) or not cursor or len(cursor) > _MAX_CURSOR_LENGTH:
        raise invalid_cursor()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError too
        raise invalid_cursor() from exc
    if (
        not isinstance(payload, list)
        or len(payload) != 3  # version, timestamp, id
        or payload[0] != _VERSION
        or not isinstance(payload[1], str)
        or not isinstance(payload[2], str)
        or not payload[2]
    ):
        raise invalid_cursor()
    try:
        created_at = datetime.fromisoformat(payload[1])
    except ValueError as exc:
        raise invalid_cursor() from exc
    if created_at.tzinfo is None:
        raise invalid_cursor()
    return created_at.astimezone(UTC), payload[2]


def make_page(users: list[User], limit: int) -> UserPage:
    """Build a page from up to ``limit + 1`` users in listing order.

    Repositories fetch one user more than asked: its presence is how the page
    knows there is a next one, without a COUNT query.
    """
    if len(users) > limit:
        last = users[limit - 1]
        return UserPage(tuple(users[:limit]), encode_cursor(last.created_at, last.id))
    return UserPage(tuple(users), None)
