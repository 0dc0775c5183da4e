"""The three seams of the users component: where users live, how passwords are
hashed, and where ``user.created`` goes.

Each is a small :class:`typing.Protocol`, so :class:`~backend_kit.users.UserService`
depends on behaviour, not on a class: ``SecurityManager`` fits
:class:`PasswordService`, ``EventBus`` fits :class:`EventPublisher`, and a test
double or another library fits as well.
"""

from __future__ import annotations

from typing import Any, Protocol

from backend_kit.users._model import DEFAULT_PAGE_SIZE, User, UserCredentials, UserPage

__all__ = ["EventPublisher", "PasswordService", "UserRepository"]


class UserRepository(Protocol):
    """Where users are stored. Every implementation obeys the same contract.

    - Emails are normalized (trimmed, lower case) before they are stored or
      looked up, so they compare case-insensitively.
    - The store's own unique constraint decides duplicates: two concurrent
      ``add`` calls with one email give one user and one
      :class:`~backend_kit.errors.DuplicateEmailError`, never two users.
    - Values are only ever bound as data (SQL parameters, BSON values); a
      lookup with a non-string (``{"$gt": ""}``) or an id of the wrong shape
      matches nothing.
    """

    async def add(self, *, email: str, name: str, password_hash: str) -> User:
        """Store a new user; the repository assigns ``id`` and ``created_at``.

        Raises:
            DuplicateEmailError: a user with that email (in any case) exists.
            UserValidationError: the email or name breaks a rule.
        """
        ...

    async def get(self, user_id: str) -> User | None:
        """The user with that id, or ``None``."""
        ...

    async def get_by_email(self, email: str) -> User | None:
        """The user with that email (case-insensitive), or ``None``."""
        ...

    async def get_credentials(self, email: str) -> UserCredentials | None:
        """The user with that email and their password hash, or ``None``."""
        ...

    async def list(self, limit: int = DEFAULT_PAGE_SIZE, after: str | None = None) -> UserPage:
        """Up to ``limit`` (1-1000) users in ``(created_at, id)`` order, after the cursor ``after``.

        Raises:
            UserValidationError: ``limit`` out of range or ``after`` not a cursor.
        """
        ...

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        """Replace the user's password hash.

        Raises:
            UserNotFoundError: no user has that id.
        """
        ...

    async def delete(self, user_id: str) -> None:
        """Delete the user.

        Raises:
            UserNotFoundError: no user has that id.
        """
        ...


class PasswordService(Protocol):
    """What :class:`~backend_kit.users.UserService` needs from password hashing.

    :class:`backend_kit.security.SecurityManager` provides it; each method must
    keep the event loop free (hash on a worker thread).
    """

    async def ahash_password(self, password: str, /) -> str:
        """A new hash of ``password`` with the current scheme and parameters."""
        ...

    async def averify_and_update(
        self, password: str, password_hash: str, /
    ) -> tuple[bool, str | None]:
        """``(matches, new_hash)``; ``new_hash`` is set when ``password_hash`` is deprecated."""
        ...

    async def adummy_verify(self) -> object:
        """Spend about as long as a real verify, so an unknown email is not faster."""
        ...


class EventPublisher(Protocol):
    """The one method of an event bus that :class:`~backend_kit.users.UserService` uses."""

    async def publish_event(self, event_type: str, data: dict[str, Any], /) -> object:
        """Publish ``data`` as an event of type ``event_type`` (for example ``user.created``)."""
        ...
