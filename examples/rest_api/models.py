"""Request and response bodies of the REST API (Pydantic, so FastAPI validates and documents them).

The limits here mirror :class:`backend_kit.users.NewUser`'s rules so most bad
input is refused before it reaches the service; ``NewUser`` stays the
authority (its :class:`~backend_kit.errors.UserValidationError` becomes a 422
too). Passwords are ``SecretStr``: they never appear in a ``repr``, a log line
or a validation error.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from backend_kit.users import User

__all__ = [
    "RefreshRequest",
    "TokenRequest",
    "TokenResponse",
    "UserCreate",
    "UserPageResponse",
    "UserResponse",
]

# One '@', something on each side, a dot in the domain, no spaces. NewUser checks the rest.
_EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class UserCreate(BaseModel):
    """Sign-up: who the new user is and the password they chose."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(
        min_length=3, max_length=254, pattern=_EMAIL_PATTERN, examples=["ada@example.com"]
    )
    name: str = Field(min_length=1, max_length=200, examples=["Ada Lovelace"])
    password: SecretStr = Field(
        min_length=8, max_length=1024, examples=["correct horse battery staple"]
    )


class UserResponse(BaseModel):
    """A user as clients see it: never a password hash."""

    id: str
    email: str
    name: str
    created_at: datetime

    @classmethod
    def from_user(cls, user: User) -> UserResponse:
        return cls(id=user.id, email=user.email, name=user.name, created_at=user.created_at)


class UserPageResponse(BaseModel):
    """One page of users; pass ``next_cursor`` as ``after`` for the next one."""

    users: list[UserResponse]
    next_cursor: str | None = Field(description="Cursor of the next page; null on the last page.")


class TokenRequest(BaseModel):
    """Login: email and password."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=1, max_length=254)
    password: SecretStr = Field(min_length=1, max_length=1024)


class RefreshRequest(BaseModel):
    """A refresh token to exchange (it is single-use)."""

    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=8192)


class TokenResponse(BaseModel):
    """Tokens issued by login or refresh (RFC 6749 section 5.1 field names)."""

    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds the access token is valid for.")
