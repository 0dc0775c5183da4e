"""Users in a SQL database through SQLAlchemy's asyncio API (extra ``db``).

The table (``users``)::

    id             UUID primary key (CHAR(32) on databases without a uuid type)
    email          VARCHAR(254) NOT NULL, UNIQUE (constraint uq_users_email), stored lower-case
    name           VARCHAR(200) NOT NULL
    password_hash  VARCHAR(512) NOT NULL
    created_at     TIMESTAMP WITH TIME ZONE NOT NULL, index ix_users_created_at_id (created_at, id)

Case-insensitive emails: the email is normalized to lower case before it is
stored or looked up, so the plain unique constraint on ``email`` is a
case-insensitive one. That works the same on PostgreSQL, SQLite, MySQL and
MongoDB, needs no ``citext`` extension, collation or expression index, and
lets every lookup use the index as is.

:class:`SqlUserRepository` takes any :class:`~sqlalchemy.ext.asyncio.AsyncEngine`:
``backend_kit.db.create_async_pooled_engine(...)``, or
``sqlalchemy.ext.asyncio.create_async_engine("sqlite+aiosqlite:///app.db")``.
"""

# The imports below come after the extra check on purpose, so a missing extra
# names its install line instead of failing inside SQLAlchemy's import.
# ruff: noqa: E402

from __future__ import annotations

from backend_kit._optional import import_optional

import_optional("sqlalchemy", extra="db")

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    Index,
    MetaData,
    String,
    Uuid,
    delete,
    insert,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backend_kit.errors import DuplicateEmailError, UserNotFoundError
from backend_kit.users._cursor import decode_cursor, invalid_cursor, make_page
from backend_kit.users._model import (
    DEFAULT_PAGE_SIZE,
    User,
    UserCredentials,
    UserPage,
    as_text,
    as_utc,
    check_page_size,
    normalize_email,
    utc_now,
    validate_email,
    validate_name,
)

__all__ = ["EMAIL_UNIQUE_CONSTRAINT", "SqlUserRepository", "UserModel", "UsersBase"]

#: Name of the unique constraint on ``users.email`` (how a violation is recognized).
EMAIL_UNIQUE_CONSTRAINT = "uq_users_email"

_NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UsersBase(DeclarativeBase):
    """Declarative base of the users table; ``UsersBase.metadata`` is what migrations need.

    Its own :class:`~sqlalchemy.MetaData` (with a naming convention, so
    constraint names are stable for Alembic) keeps the users table out of
    your application's metadata unless you add it.
    """

    metadata = MetaData(naming_convention=_NAMING_CONVENTION)


class UserModel(UsersBase):
    """The ``users`` table. Rows become :class:`~backend_kit.users.User` (without the hash)."""

    __tablename__ = "users"
    __table_args__ = (
        # Serves the listing order and the keyset seek in one index range scan.
        Index("ix_users_created_at_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(Uuid(as_uuid=False), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        # Never the password hash.
        return f"UserModel(id={self.id!r}, email={self.email!r})"


_USER_COLUMNS = (UserModel.id, UserModel.email, UserModel.name, UserModel.created_at)


def _to_user(row: Any) -> User:
    return User(id=row.id, email=row.email, name=row.name, created_at=as_utc(row.created_at))


def _canonical_id(user_id: object) -> str | None:
    """The canonical UUID string, or None when ``user_id`` cannot be an id here.

    Checked before querying: PostgreSQL would refuse a malformed uuid with an
    error, and a lookup by a bad id simply matches nothing.
    """
    if not isinstance(user_id, str):
        return None
    try:
        return str(uuid.UUID(user_id))
    except ValueError:
        return None


def _is_duplicate_email(exc: IntegrityError) -> bool:
    """Whether an IntegrityError is a unique violation on the email (not another constraint)."""
    orig = exc.orig
    # psycopg 3 names the violated constraint: ours is uq_users_email; a table
    # made by other migrations may call it users_email_key or ix_users_email.
    diag = getattr(orig, "diag", None)
    constraint = getattr(diag, "constraint_name", None)
    if isinstance(constraint, str):
        return "email" in constraint
    # SQLite: "UNIQUE constraint failed: users.email"; MySQL: "Duplicate entry
    # '...' for key 'uq_users_email'"; other drivers: at least the column name.
    message = str(orig).lower()
    return "users.email" in message or (
        "email" in message and ("unique" in message or "duplicate" in message)
    )


class SqlUserRepository:
    """A :class:`~backend_kit.users.UserRepository` on a SQL database.

    Every statement is a SQLAlchemy Core construct with bound parameters;
    nothing a user typed is ever part of SQL text. Duplicate emails are
    decided by the database's unique constraint: the ``IntegrityError`` is
    turned into :class:`DuplicateEmailError` (its driver cause is dropped on
    purpose, because it carries the bound parameters, password hash included).

    Args:
        engine: Any :class:`~sqlalchemy.ext.asyncio.AsyncEngine`. The
            repository does not own it: dispose of it yourself.
        schema: Database schema of the ``users`` table (PostgreSQL), applied
            with ``schema_translate_map``; ``None`` uses the default search path.
        clock: Returns ``created_at`` for new users (aware datetime); defaults
            to the current UTC time.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        schema: str | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._engine = (
            engine.execution_options(schema_translate_map={None: schema})
            if schema is not None
            else engine
        )
        self._clock = clock

    @property
    def engine(self) -> AsyncEngine:
        """The engine statements run on (with the schema translation applied)."""
        return self._engine

    async def create_table(self) -> None:
        """Create the ``users`` table and its indexes if they do not exist.

        Handy for tests and small apps; in production prefer your migrations
        (``UsersBase.metadata`` is what Alembic's autogenerate needs). The
        schema itself must exist.
        """
        async with self._engine.begin() as conn:
            await conn.run_sync(UsersBase.metadata.create_all)

    async def drop_table(self) -> None:
        """Drop the ``users`` table if it exists (every user is lost)."""
        async with self._engine.begin() as conn:
            await conn.run_sync(UsersBase.metadata.drop_all)

    async def add(self, *, email: str, name: str, password_hash: str) -> User:
        """Store a new user. Raises DuplicateEmailError or UserValidationError."""
        user = User(
            id=str(uuid.uuid4()),
            email=validate_email(email),
            name=validate_name(name),
            created_at=self._clock().astimezone(UTC),
        )
        statement = insert(UserModel).values(
            id=user.id,
            email=user.email,
            name=user.name,
            password_hash=password_hash,
            created_at=user.created_at,
        )
        try:
            async with self._engine.begin() as conn:
                await conn.execute(statement)
        except IntegrityError as exc:
            if _is_duplicate_email(exc):
                raise DuplicateEmailError("a user with this email already exists") from None
            exc.hide_parameters = True  # its text would list the password hash
            raise
        except StatementError as exc:
            # Any engine (not only backend_kit.db's, which hides them) may be
            # given: never let the bound password hash into the error's text.
            exc.hide_parameters = True
            raise
        return user

    async def get(self, user_id: str) -> User | None:
        """The user with that id, or ``None``."""
        canonical = _canonical_id(user_id)
        if canonical is None:
            return None
        async with self._engine.connect() as conn:
            result = await conn.execute(select(*_USER_COLUMNS).where(UserModel.id == canonical))
            row = result.first()
        return _to_user(row) if row is not None else None

    async def get_by_email(self, email: str) -> User | None:
        """The user with that email (case-insensitive), or ``None``."""
        credentials = await self.get_credentials(email)
        return credentials.user if credentials is not None else None

    async def get_credentials(self, email: str) -> UserCredentials | None:
        """The user with that email and their password hash, or ``None``."""
        text = as_text(email)
        if text is None:
            return None
        statement = select(*_USER_COLUMNS, UserModel.password_hash).where(
            UserModel.email == normalize_email(text)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(statement)).first()
        if row is None:
            return None
        return UserCredentials(_to_user(row), row.password_hash)

    async def list(self, limit: int = DEFAULT_PAGE_SIZE, after: str | None = None) -> UserPage:
        """Up to ``limit`` users in ``(created_at, id)`` order after the cursor ``after``."""
        limit = check_page_size(limit)
        statement = select(*_USER_COLUMNS).order_by(UserModel.created_at, UserModel.id)
        if after is not None:
            created_at, last_id = decode_cursor(after)
            canonical = _canonical_id(last_id)
            if canonical is None:
                raise invalid_cursor()
            # A row-value comparison: PostgreSQL and SQLite (3.15+) turn it into
            # one range scan of the (created_at, id) index; the equivalent
            # OR/AND form made SQLite scan (measured in benchmarks/users_bench.py).
            statement = statement.where(
                tuple_(UserModel.created_at, UserModel.id)
                > tuple_(
                    # Typed binds: a row value does not pass the columns' types on.
                    literal(created_at, UserModel.created_at.type),
                    literal(canonical, UserModel.id.type),
                )
            )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(statement.limit(limit + 1))).all()
        return make_page([_to_user(row) for row in rows], limit)

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        """Replace the user's password hash. Raises UserNotFoundError."""
        canonical = _canonical_id(user_id)
        if canonical is not None:
            statement = (
                update(UserModel)
                .where(UserModel.id == canonical)
                .values(password_hash=password_hash)
            )
            try:
                async with self._engine.begin() as conn:
                    if (await conn.execute(statement)).rowcount == 1:
                        return
            except StatementError as exc:
                exc.hide_parameters = True  # its text would list the new password hash
                raise
        raise UserNotFoundError("no user has this id")

    async def delete(self, user_id: str) -> None:
        """Delete the user. Raises UserNotFoundError."""
        canonical = _canonical_id(user_id)
        if canonical is not None:
            async with self._engine.begin() as conn:
                result = await conn.execute(delete(UserModel).where(UserModel.id == canonical))
                if result.rowcount == 1:
                    return
        raise UserNotFoundError("no user has this id")
