"""Users in MongoDB through PyMongo's asyncio API (extra ``mongo``).

One document per user in the ``users`` collection::

    {"_id": ObjectId, "email": "ada@example.com", "name": "Ada",
     "password_hash": "$argon2id$...", "created_at": ISODate}

with a unique index on ``email`` (stored lower-case, so it is a
case-insensitive unique index without a collation) and a ``(created_at, _id)``
index for listing. :meth:`MongoUserRepository.ensure_indexes` creates both;
the repository also calls it once before its first write, because without the
unique index nothing would stop a duplicate email.

Works with a PyMongo :class:`~pymongo.asynchronous.database.AsyncDatabase`
(``AsyncMongoClient(url)["app"]``) and, unchanged, with a Motor
``AsyncIOMotorDatabase``: the repository only calls methods that both drivers
have with the same awaitables (``insert_one``, ``find_one``, ``update_one``,
``delete_one``, ``create_index`` are coroutines; ``find`` returns a cursor that
is sorted, limited and iterated with ``async for``). It never calls
``aggregate``, which is a coroutine in PyMongo but returns a cursor in Motor.
"""

# The imports below come after the extra check on purpose, so a missing extra
# names its install line instead of failing inside PyMongo's import.
# ruff: noqa: E402

from __future__ import annotations

from backend_kit._optional import import_optional

import_optional("pymongo", extra="mongo")

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

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

__all__ = ["MongoCollection", "MongoCursor", "MongoDatabase", "MongoUserRepository"]

Document = Mapping[str, Any]


class MongoCursor(Protocol):
    """The part of ``AsyncCursor`` (PyMongo) / ``AsyncIOMotorCursor`` (Motor) used here."""

    def sort(self, key_or_list: list[tuple[str, int]], /) -> MongoCursor: ...

    def limit(self, limit: int, /) -> MongoCursor: ...

    def __aiter__(self) -> AsyncIterator[Document]: ...


class _UpdateResult(Protocol):
    @property
    def matched_count(self) -> int: ...


class _DeleteResult(Protocol):
    @property
    def deleted_count(self) -> int: ...


class MongoCollection(Protocol):
    """The part of ``AsyncCollection`` / ``AsyncIOMotorCollection`` used here."""

    async def insert_one(self, document: dict[str, Any], /) -> object: ...

    async def find_one(self, filter: Document, /) -> Document | None: ...

    def find(self, filter: Document, /) -> MongoCursor: ...

    async def update_one(self, filter: Document, update: Document, /) -> _UpdateResult: ...

    async def delete_one(self, filter: Document, /) -> _DeleteResult: ...

    async def create_index(self, keys: list[tuple[str, int]], /, *, unique: bool = ...) -> str: ...


class MongoDatabase(Protocol):
    """A database: ``database[name]`` is a collection."""

    def __getitem__(self, name: str, /) -> MongoCollection: ...


def _to_milliseconds(value: datetime) -> datetime:
    # What MongoDB stores: returning the same precision keeps the User this
    # repository hands back equal to the one it later reads.
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _to_user(document: Document) -> User:
    return User(
        id=str(document["_id"]),
        email=document["email"],
        name=document["name"],
        created_at=as_utc(document["created_at"]),
    )


def _object_id(user_id: object) -> ObjectId | None:
    """The ObjectId for a 24-hex-digit id string, else None (matches nothing)."""
    text = as_text(user_id)
    if text is None:
        return None
    try:
        return ObjectId(text)
    except InvalidId:
        return None


def _is_duplicate_email(exc: DuplicateKeyError) -> bool:
    details = exc.details or {}
    key_pattern = details.get("keyPattern")
    if isinstance(key_pattern, Mapping):
        return "email" in key_pattern
    return "email" in str(exc)  # servers before 4.4 only name the index in the message


class MongoUserRepository:
    """A :class:`~backend_kit.users.UserRepository` on MongoDB.

    Every filter is built here from validated strings and ObjectIds, so a
    value can never become a query operator: ``get_by_email({"$gt": ""})``
    matches nothing. Duplicate emails are decided by the unique index: the
    driver's ``DuplicateKeyError`` (code 11000) becomes
    :class:`DuplicateEmailError`.

    Args:
        database: A PyMongo ``AsyncDatabase`` or a Motor ``AsyncIOMotorDatabase``.
            The repository does not own the client: close it yourself.
        collection: Collection name (default ``users``).
        clock: Returns ``created_at`` for new users (aware datetime), stored
            at MongoDB's millisecond precision; defaults to the current UTC time.
    """

    def __init__(
        self,
        database: MongoDatabase,
        *,
        collection: str = "users",
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._collection = database[collection]
        self._clock = clock
        self._indexes_ready = False
        self._index_lock = asyncio.Lock()

    @property
    def collection(self) -> MongoCollection:
        """The collection users are stored in."""
        return self._collection

    async def ensure_indexes(self) -> None:
        """Create the unique ``email`` index and the ``(created_at, _id)`` listing index.

        Idempotent (MongoDB ignores an index that already exists with the
        same keys and options); safe to call at every start.
        """
        await self._collection.create_index([("email", ASCENDING)], unique=True)
        await self._collection.create_index([("created_at", ASCENDING), ("_id", ASCENDING)])
        self._indexes_ready = True

    async def _ensure_indexes_once(self) -> None:
        if self._indexes_ready:
            return
        async with self._index_lock:
            if not self._indexes_ready:
                await self.ensure_indexes()

    async def add(self, *, email: str, name: str, password_hash: str) -> User:
        """Store a new user. Raises DuplicateEmailError or UserValidationError."""
        normalized_email = validate_email(email)
        normalized_name = validate_name(name)
        await self._ensure_indexes_once()
        object_id = ObjectId()
        created_at = _to_milliseconds(self._clock().astimezone(UTC))
        document: dict[str, Any] = {
            "_id": object_id,
            "email": normalized_email,
            "name": normalized_name,
            "password_hash": password_hash,
            "created_at": created_at,
        }
        try:
            await self._collection.insert_one(document)
        except DuplicateKeyError as exc:
            if _is_duplicate_email(exc):
                raise DuplicateEmailError("a user with this email already exists") from exc
            raise
        return User(
            id=str(object_id), email=normalized_email, name=normalized_name, created_at=created_at
        )

    async def get(self, user_id: str) -> User | None:
        """The user with that id, or ``None``."""
        object_id = _object_id(user_id)
        if object_id is None:
            return None
        document = await self._collection.find_one({"_id": object_id})
        return _to_user(document) if document is not None else None

    async def get_by_email(self, email: str) -> User | None:
        """The user with that email (case-insensitive), or ``None``."""
        credentials = await self.get_credentials(email)
        return credentials.user if credentials is not None else None

    async def get_credentials(self, email: str) -> UserCredentials | None:
        """The user with that email and their password hash, or ``None``."""
        text = as_text(email)
        if text is None:
            return None
        document = await self._collection.find_one({"email": normalize_email(text)})
        if document is None:
            return None
        return UserCredentials(_to_user(document), document["password_hash"])

    async def list(self, limit: int = DEFAULT_PAGE_SIZE, after: str | None = None) -> UserPage:
        """Up to ``limit`` users in ``(created_at, id)`` order after the cursor ``after``."""
        limit = check_page_size(limit)
        query: dict[str, Any] = {}
        if after is not None:
            created_at, last_id = decode_cursor(after)
            object_id = _object_id(last_id)
            if object_id is None:
                raise invalid_cursor()
            query = {
                "$or": [
                    {"created_at": {"$gt": created_at}},
                    {"created_at": created_at, "_id": {"$gt": object_id}},
                ]
            }
        cursor = (
            self._collection.find(query)
            .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
            .limit(limit + 1)
        )
        users = [_to_user(document) async for document in cursor]
        return make_page(users, limit)

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        """Replace the user's password hash. Raises UserNotFoundError."""
        object_id = _object_id(user_id)
        if object_id is not None:
            result = await self._collection.update_one(
                {"_id": object_id}, {"$set": {"password_hash": password_hash}}
            )
            if result.matched_count == 1:
                return
        raise UserNotFoundError("no user has this id")

    async def delete(self, user_id: str) -> None:
        """Delete the user. Raises UserNotFoundError."""
        object_id = _object_id(user_id)
        if object_id is not None:
            result = await self._collection.delete_one({"_id": object_id})
            if result.deleted_count == 1:
                return
        raise UserNotFoundError("no user has this id")
