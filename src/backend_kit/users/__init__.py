"""User storage and login: one :class:`UserService` over SQL, MongoDB or memory.

- :class:`UserService` creates users (hashing passwords off the event loop),
  authenticates them (no user enumeration by timing, hashes upgraded on
  login) and publishes ``user.created`` when given an event bus.
- :class:`UserRepository` is the storage contract; :class:`InMemoryUserRepository`
  is public for tests. ``backend_kit.users.sql`` (extra ``db``) and
  ``backend_kit.users.mongo`` (extra ``mongo``) hold the database ones and
  are imported only by you.
- :class:`User` never carries the password hash; :class:`NewUser` validates input.

Importing this package imports no database driver and no hashing library.
"""

from __future__ import annotations

from backend_kit.errors import (
    DuplicateEmailError,
    UserError,
    UserNotFoundError,
    UserValidationError,
)
from backend_kit.users._memory import InMemoryUserRepository
from backend_kit.users._model import (
    NewUser,
    User,
    UserCredentials,
    UserPage,
    normalize_email,
)
from backend_kit.users._protocols import EventPublisher, PasswordService, UserRepository
from backend_kit.users._service import UserService

__all__ = [
    "DuplicateEmailError",
    "EventPublisher",
    "InMemoryUserRepository",
    "NewUser",
    "PasswordService",
    "User",
    "UserCredentials",
    "UserError",
    "UserNotFoundError",
    "UserPage",
    "UserRepository",
    "UserService",
    "UserValidationError",
    "normalize_email",
]
