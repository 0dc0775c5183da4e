"""The user payloads and the input rules every repository and the service share.

Nothing here imports an extra: the SQL and MongoDB repositories build on these
types, and ``import backend_kit.users`` stays free of drivers.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime

from backend_kit.errors import UserValidationError

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_EMAIL_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_PAGE_SIZE",
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "NewUser",
    "User",
    "UserCredentials",
    "UserPage",
    "as_text",
    "as_utc",
    "check_page_size",
    "normalize_email",
    "utc_now",
    "validate_email",
    "validate_name",
    "validate_password",
]

#: RFC 5321 caps a forward path at 256 octets, i.e. 254 for the address itself.
MAX_EMAIL_LENGTH = 254
_MAX_LOCAL_PART_LENGTH = 64
MAX_NAME_LENGTH = 200
#: OWASP Password Storage / NIST SP 800-63B: at least 8 characters.
MIN_PASSWORD_LENGTH = 8
#: Long enough for any passphrase or password manager, short enough that a
#: megabyte "password" cannot be used to burn CPU in the hash.
MAX_PASSWORD_LENGTH = 1024
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

# Characters that have no place in a mail domain label (IDN letters are fine:
# ``str.isalnum`` accepts them).
_DOMAIN_EXTRA_CHARS = frozenset("-")


def utc_now() -> datetime:
    """The default clock of every repository: the current time, timezone-aware UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A timestamp read back from a store, as timezone-aware UTC.

    Stores hand timestamps back naive (SQLite; BSON dates unless the Mongo client
    was made with ``tz_aware=True``; both were written as UTC) or in the session
    time zone (PostgreSQL).
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def as_text(value: object) -> str | None:
    """``value`` if it is a string, else ``None``.

    Lookups take ``str`` by type, but values often arrive from decoded JSON at
    run time: a dict such as ``{"$gt": ""}`` must match nothing rather than be
    handed to a store that could interpret it.
    """
    return value if isinstance(value, str) else None


def _invalid(field_name: str, rule: str) -> UserValidationError:
    # The message names the field and the rule, never the value: the value
    # may be a password, or personal data that should not reach a log line.
    return UserValidationError(f"{field_name}: {rule}", field=field_name)


def _has_control_or_space(text: str) -> bool:
    return any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in text)


def normalize_email(email: str) -> str:
    """The form an email is stored and compared in: NFC, trimmed, lower case.

    Lower-casing the whole address (not only the domain) is what makes email
    comparison case-insensitive in every store with one plain unique index:
    ``Alice@Example.com`` and ``alice@example.com`` are one account. No real
    mail provider treats local parts case-sensitively, so nothing is lost that
    users rely on. Does not validate; see :func:`validate_email`.
    """
    return unicodedata.normalize("NFC", email).strip().lower()


def validate_email(email: object) -> str:
    """Return the normalized email, or raise :class:`UserValidationError` (field ``email``).

    Pragmatic rules, not the full RFC 5322 grammar: one ``@``, a local part of
    1-64 characters without spaces or control characters, a domain of at least
    two dot-separated labels of letters, digits and hyphens, 254 characters in
    all. Quotes, ``$`` and ``;`` are allowed in the local part (they are legal
    there) and are stored verbatim; no store ever interprets them.
    """
    if not isinstance(email, str):
        raise _invalid("email", "must be a string")
    normalized = normalize_email(email)
    if not normalized:
        raise _invalid("email", "is required")
    if len(normalized) > MAX_EMAIL_LENGTH:
        raise _invalid("email", f"must be at most {MAX_EMAIL_LENGTH} characters")
    if _has_control_or_space(normalized):
        raise _invalid("email", "must not contain spaces or control characters")
    local, at, domain = normalized.rpartition("@")
    if not at or not local or "@" in local:
        raise _invalid("email", "must be one address of the form name@example.com")
    if len(local) > _MAX_LOCAL_PART_LENGTH:
        raise _invalid(
            "email", f"the part before '@' must be at most {_MAX_LOCAL_PART_LENGTH} characters"
        )
    labels = domain.split(".")
    if len(labels) < 2 or not all(labels):
        raise _invalid("email", "the domain must look like example.com")
    for label in labels:
        if label.startswith("-") or label.endswith("-"):
            raise _invalid("email", "a domain label must not start or end with '-'")
        if not all(ch.isalnum() or ch in _DOMAIN_EXTRA_CHARS for ch in label):
            raise _invalid("email", "the domain may hold only letters, digits, '-' and '.'")
    return normalized


def validate_name(name: object) -> str:
    """Return the trimmed (NFC) name, or raise :class:`UserValidationError` (field ``name``).

    1 to 200 characters, no control characters (newlines, NUL: PostgreSQL
    refuses NUL in text, and newlines forge log lines). Anything else, quotes
    and ``'; DROP TABLE`` included, is stored verbatim.
    """
    if not isinstance(name, str):
        raise _invalid("name", "must be a string")
    normalized = unicodedata.normalize("NFC", name).strip()
    if not normalized:
        raise _invalid("name", "is required")
    if len(normalized) > MAX_NAME_LENGTH:
        raise _invalid("name", f"must be at most {MAX_NAME_LENGTH} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in normalized):
        raise _invalid("name", "must not contain control characters")
    return normalized


def validate_password(password: object) -> str:
    """Return ``password`` unchanged, or raise :class:`UserValidationError` (field ``password``).

    8 to 1024 characters. The password is never trimmed or normalized (what
    the user typed is what gets hashed) and never appears in the error.
    """
    if not isinstance(password, str):
        raise _invalid("password", "must be a string")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise _invalid("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise _invalid("password", f"must be at most {MAX_PASSWORD_LENGTH} characters")
    return password


def check_page_size(limit: object) -> int:
    """Return ``limit`` if it is an int in 1..1000, else raise :class:`UserValidationError`."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise _invalid("limit", "must be an integer")
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise _invalid("limit", f"must be between 1 and {MAX_PAGE_SIZE}")
    return limit


@dataclass(frozen=True, slots=True)
class User:
    """A stored user, as every repository returns it.

    It holds no password hash at all, so no serializer (``dataclasses.asdict``,
    FastAPI's response model, ``repr``, a log line) can leak one; the hash
    travels only inside :class:`UserCredentials`, for authentication.

    Attributes:
        id: Opaque string id (a UUID on SQL and memory, an ObjectId's hex on MongoDB).
        email: The normalized (lower-case) email.
        name: Display name.
        created_at: When the user was stored, timezone-aware UTC
            (millisecond precision on MongoDB, microsecond elsewhere).
    """

    id: str
    email: str
    name: str
    created_at: datetime

    def to_dict(self) -> dict[str, str]:
        """JSON-ready fields for a client: ``id``, ``email``, ``name``, ``created_at`` (ISO 8601)."""
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "created_at": self.created_at.astimezone(UTC).isoformat(),
        }


@dataclass(frozen=True, slots=True)
class UserCredentials:
    """A user with their password hash: what authentication needs, and nothing for clients.

    ``password_hash`` is left out of ``repr``.
    """

    user: User
    password_hash: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class UserPage:
    """One page of users in ``(created_at, id)`` order.

    Attributes:
        users: The users on this page (at most the requested ``limit``).
        next_cursor: Pass it as ``after=`` to get the next page; ``None`` on the last page.
    """

    users: tuple[User, ...]
    next_cursor: str | None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: ``{"users": [...], "next_cursor": ...}``."""
        return {"users": [user.to_dict() for user in self.users], "next_cursor": self.next_cursor}


@dataclass(frozen=True, slots=True)
class NewUser:
    """Validated input for :meth:`UserService.create_user`.

    Construction checks every rule and normalizes: the email is trimmed and
    lower-cased (see :func:`normalize_email`), the name trimmed; the password
    is kept exactly as given and left out of ``repr``.

    Raises:
        UserValidationError: naming the first field that breaks a rule
            (``email``, ``name`` or ``password``); never echoing the password.
    """

    email: str
    name: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        # Frozen dataclass: normalizing in place needs object.__setattr__.
        object.__setattr__(self, "email", validate_email(self.email))
        object.__setattr__(self, "name", validate_name(self.name))
        validate_password(self.password)
