"""The GraphQL schema: ``User``, ``Query.users`` and the ``createUser`` / ``login`` mutations.

The same :class:`~backend_kit.users.UserService` and the same bearer tokens
as the REST example: a token from either works on both. ``users`` needs a
valid access token in the ``Authorization`` header; ``createUser`` and
``login`` are public and rate limited per client address.

Errors a client can act on come back as GraphQL errors with a machine-readable
``extensions.code`` (``UNAUTHENTICATED``, ``BAD_USER_INPUT``,
``EMAIL_TAKEN``, ``RATE_LIMITED``); anything unexpected is masked as
"Unexpected error." (the details go to the server log only).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import strawberry
from graphql import GraphQLError
from strawberry.extensions import MaskErrors
from strawberry.types import ExecutionContext, Info

from backend_kit.errors import (
    BackendKitError,
    DuplicateEmailError,
    EventBusError,
    TokenError,
    UserValidationError,
)
from backend_kit.users import NewUser
from backend_kit.users import User as StoredUser
from examples.common import Components

__all__ = ["Context", "build_schema"]

logger = logging.getLogger("examples.graphql_api")


@dataclass(slots=True)
class Context:
    """What every resolver gets: the components, the caller's address and bearer token."""

    components: Components
    client: str
    bearer_token: str | None

    async def require_user_id(self) -> str:
        """The ``sub`` of the caller's access token, or an ``UNAUTHENTICATED`` error."""
        if self.bearer_token is None:
            raise _error("A bearer token is required.", "UNAUTHENTICATED")
        try:
            claims = await self.components.security.adecode_access_token(self.bearer_token)
        except TokenError as exc:
            # TokenError messages are written to be shown to clients.
            raise _error(str(exc), "UNAUTHENTICATED") from None
        return str(claims["sub"])

    async def check_rate_limit(self, operation: str) -> None:
        """Count a call of a public ``operation``; a ``RATE_LIMITED`` error when over the limit."""
        components = self.components
        result = await components.rate_limiter.ahit(
            f"graphql:{operation}:{self.client}", components.public_rate_limit
        )
        if not result.allowed:
            retry_after = int(result.headers()["Retry-After"])
            raise _error(
                f"Too many requests from this client; retry in {retry_after} s.",
                "RATE_LIMITED",
                retryAfter=retry_after,
            )


def _error(message: str, code: str, **extensions: object) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code, **extensions})


@strawberry.type
class User:
    """A user as clients see it (never a password hash)."""

    id: strawberry.ID
    email: str
    name: str
    created_at: datetime

    @classmethod
    def from_user(cls, user: StoredUser) -> User:
        return cls(
            id=strawberry.ID(user.id), email=user.email, name=user.name, created_at=user.created_at
        )


@strawberry.type
class UserPage:
    """One page of users; pass ``nextCursor`` as ``after`` for the next one."""

    users: list[User]
    next_cursor: str | None


@strawberry.type
class TokenPair:
    """Tokens for the ``Authorization: Bearer`` header (and to refresh it over REST)."""

    access_token: str
    refresh_token: str
    expires_in: int


@strawberry.input
class CreateUserInput:
    email: str
    name: str
    password: str


async def resolve_users(
    info: Info[Context, None], limit: int = 20, after: str | None = None
) -> UserPage:
    """``Query.users``: a page of users, for a caller with a valid access token."""
    context = info.context
    await context.require_user_id()
    if not 1 <= limit <= 100:
        raise _error("limit must be between 1 and 100", "BAD_USER_INPUT", field="limit")
    try:
        page = await context.components.users.list_users(limit, after=after)
    except UserValidationError as exc:  # a cursor that is not one of ours
        raise _error(str(exc), "BAD_USER_INPUT", field=exc.field) from None
    return UserPage(
        users=[User.from_user(user) for user in page.users], next_cursor=page.next_cursor
    )


async def resolve_create_user(info: Info[Context, None], input: CreateUserInput) -> User:
    """``Mutation.createUser``: sign up (public, rate limited); publishes ``user.created``."""
    context = info.context
    await context.check_rate_limit("createUser")
    try:
        new_user = NewUser(email=input.email, name=input.name, password=input.password)
    except UserValidationError as exc:
        # The message names the field and the rule, never the password.
        raise _error(str(exc), "BAD_USER_INPUT", field=exc.field) from None
    users = context.components.users
    try:
        user = await users.create_user(new_user)
    except DuplicateEmailError:
        raise _error("A user with this email already exists.", "EMAIL_TAKEN") from None
    except EventBusError:
        # Stored, but the event is missing: the client's sign-up succeeded.
        user = await users.get_user_by_email(new_user.email)
        logger.exception("user %s stored but user.created was not published", user.id)
    return User.from_user(user)


async def resolve_login(info: Info[Context, None], email: str, password: str) -> TokenPair:
    """``Mutation.login``: email and password for tokens (public, rate limited)."""
    context = info.context
    await context.check_rate_limit("login")
    components = context.components
    user = await components.users.authenticate(email, password)
    if user is None:
        raise _error("The email or password is not correct.", "UNAUTHENTICATED")
    pair = components.security.create_token_pair({"sub": user.id})
    return TokenPair(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=int(components.security.access_token_expires.total_seconds()),
    )


# Resolvers attached with strawberry.field(resolver=...) keep their types for
# mypy (the decorator form erases them).
@strawberry.type
class Query:
    users: UserPage = strawberry.field(
        resolver=resolve_users, description="Users in sign-up order (needs a bearer token)."
    )


@strawberry.type
class Mutation:
    create_user: User = strawberry.mutation(
        resolver=resolve_create_user,
        description="Sign up (public, rate limited); publishes user.created.",
    )
    login: TokenPair = strawberry.mutation(
        resolver=resolve_login, description="Email and password for tokens (public, rate limited)."
    )


def _should_mask(error: GraphQLError) -> bool:
    """Mask errors raised by code (not ours), keep GraphQL's own and the coded ones above."""
    original = error.original_error
    if original is None or isinstance(original, GraphQLError):
        return False  # a syntax or validation error, or one we raised on purpose
    if isinstance(original, BackendKitError):
        logger.error("dependency failure in %s: %r", error.path, original)
    return True


class _Schema(strawberry.Schema):
    """Logs only the errors a client cannot act on.

    Strawberry logs every error with its stack trace; a coded error (a taken
    email, a missing token, a rate limit) is an answer to the client, not a
    server failure, so it stays out of the error log.
    """

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        unexpected = [
            error
            for error in errors
            if not (isinstance(error.original_error, GraphQLError) and error.extensions)
        ]
        super().process_errors(unexpected, execution_context)


def build_schema() -> strawberry.Schema:
    """The schema, with unexpected errors masked."""
    return _Schema(
        query=Query,
        mutation=Mutation,
        extensions=[lambda: MaskErrors(should_mask_error=_should_mask)],
    )
