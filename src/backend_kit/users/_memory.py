"""InMemoryUserRepository: the contract in a dict, for tests and prototypes."""

from __future__ import annotations

import bisect
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from backend_kit.errors import DuplicateEmailError, UserNotFoundError
from backend_kit.users._cursor import decode_cursor, make_page
from backend_kit.users._model import (
    DEFAULT_PAGE_SIZE,
    User,
    UserCredentials,
    UserPage,
    as_text,
    check_page_size,
    normalize_email,
    utc_now,
    validate_email,
    validate_name,
)

__all__ = ["InMemoryUserRepository"]


class InMemoryUserRepository:
    """A :class:`~backend_kit.users.UserRepository` held in process memory.

    Obeys the whole contract (case-insensitive unique emails, cursor
    pagination, the same errors) so it can stand in for a database in tests.
    Safe to share between tasks and threads: every change happens under one
    lock with no ``await`` inside, which is what makes the email check and the
    insert one atomic step. Nothing is persisted.

    Args:
        clock: Returns the ``created_at`` for new users (aware datetime);
            defaults to the current UTC time. Tests pass a fixed clock.
    """

    def __init__(self, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._by_id: dict[str, UserCredentials] = {}
        self._id_by_email: dict[str, str] = {}
        # (created_at, id) of every user, kept sorted: the listing order.
        self._order: list[tuple[datetime, str]] = []

    def __len__(self) -> int:
        return len(self._by_id)

    async def add(self, *, email: str, name: str, password_hash: str) -> User:
        """Store a new user. Raises DuplicateEmailError or UserValidationError."""
        user = User(
            id=str(uuid.uuid4()),
            email=validate_email(email),
            name=validate_name(name),
            created_at=self._clock().astimezone(UTC),
        )
        with self._lock:
            if user.email in self._id_by_email:
                raise DuplicateEmailError("a user with this email already exists")
            self._id_by_email[user.email] = user.id
            self._by_id[user.id] = UserCredentials(user, password_hash)
            bisect.insort(self._order, (user.created_at, user.id))
        return user

    async def get(self, user_id: str) -> User | None:
        """The user with that id, or ``None``."""
        key = as_text(user_id)
        credentials = self._by_id.get(key) if key is not None else None
        return credentials.user if credentials is not None else None

    async def get_by_email(self, email: str) -> User | None:
        """The user with that email (case-insensitive), or ``None``."""
        credentials = await self.get_credentials(email)
        return credentials.user if credentials is not None else None

    async def get_credentials(self, email: str) -> UserCredentials | None:
        """The user with that email and their password hash, or ``None``."""
        text = as_text(email)
        if text is None:
            return None
        with self._lock:
            user_id = self._id_by_email.get(normalize_email(text))
            return self._by_id.get(user_id) if user_id is not None else None

    async def list(self, limit: int = DEFAULT_PAGE_SIZE, after: str | None = None) -> UserPage:
        """Up to ``limit`` users in ``(created_at, id)`` order after the cursor ``after``."""
        limit = check_page_size(limit)
        with self._lock:
            start = 0
            if after is not None:
                start = bisect.bisect_right(self._order, decode_cursor(after))
            keys = self._order[start : start + limit + 1]
            users = [self._by_id[user_id].user for _, user_id in keys]
        return make_page(users, limit)

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        """Replace the user's password hash. Raises UserNotFoundError."""
        with self._lock:
            key = as_text(user_id)
            credentials = self._by_id.get(key) if key is not None else None
            if credentials is None:
                raise UserNotFoundError("no user has this id")
            self._by_id[credentials.user.id] = UserCredentials(credentials.user, password_hash)

    async def delete(self, user_id: str) -> None:
        """Delete the user. Raises UserNotFoundError."""
        with self._lock:
            key = as_text(user_id)
            credentials = self._by_id.pop(key, None) if key is not None else None
            if credentials is None:
                raise UserNotFoundError("no user has this id")
            user = credentials.user
            del self._id_by_email[user.email]
            self._order.remove((user.created_at, user.id))
