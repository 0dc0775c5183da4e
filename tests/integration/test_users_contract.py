"""The UserRepository contract, run against every implementation.

Backends: memory, SQLite (aiosqlite, a file), the real PostgreSQL (its own
schema per test, dropped after), the MongoDB fake (``tests/fakes/mongo.py``:
no MongoDB server can run here) and, when ``BACKEND_KIT_TEST_MONGODB_URL``
names one, a real MongoDB server (the ``mongo-live`` parameter only exists then).
"""

from __future__ import annotations

import asyncio
import base64
import os
import traceback
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from backend_kit.db import create_async_pooled_engine
from backend_kit.users import (
    DuplicateEmailError,
    InMemoryUserRepository,
    NewUser,
    User,
    UserNotFoundError,
    UserRepository,
    UserService,
    UserValidationError,
)
from backend_kit.users.mongo import MongoUserRepository
from backend_kit.users.sql import SqlUserRepository
from tests.fakes.mongo import FakeAsyncMongoClient
from tests.fakes.passwords import CheapPasswords

MONGODB_URL = os.environ.get("BACKEND_KIT_TEST_MONGODB_URL", "")

BACKENDS = [
    "memory",
    "sqlite",
    pytest.param("postgres", id="postgres"),
    "mongo-fake",
    *([pytest.param("mongo-live", marks=pytest.mark.live)] if MONGODB_URL else []),
]

# One address in three spellings: they must all collide.
RACE_EMAILS = ["race@example.com", "RACE@example.com", " Race@Example.Com "]

HOSTILE_NAMES = [
    "'; DROP TABLE users; --",
    "Robert'); DROP TABLE students;--",
    '" OR "1"="1',
    "$where",
    '{"$gt": ""}',
    "{$ne: null}",
    "\\' OR 1=1 -- \\",
    "%_*?[]",
]


class StepClock:
    """Each call returns the previous time plus ``step`` (0 makes every user tie)."""

    def __init__(self, step: timedelta = timedelta(milliseconds=5)) -> None:
        self.now = datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
        self.step = step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


@dataclass
class Backend:
    name: str
    repository: UserRepository
    clock: StepClock


@pytest.fixture(params=BACKENDS)
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, unique_name: str
) -> AsyncIterator[Backend]:
    clock = StepClock()
    name: str = request.param
    if name == "memory":
        yield Backend(name, InMemoryUserRepository(clock=clock), clock)
    elif name == "sqlite":
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'users.db'}")
        sql_repository = SqlUserRepository(engine, clock=clock)
        await sql_repository.create_table()
        try:
            yield Backend(name, sql_repository, clock)
        finally:
            await engine.dispose()
    elif name == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        # What an application would use: backend_kit.db's pooled engine (a plain
        # AsyncEngine with the slow-query listener); SQLite above uses SQLAlchemy's own.
        engine = create_async_pooled_engine(url, pool_size=10, max_overflow=0)
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{unique_name}"'))
        try:
            sql_repository = SqlUserRepository(engine, schema=unique_name, clock=clock)
            await sql_repository.create_table()
            yield Backend(name, sql_repository, clock)
        finally:
            async with engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{unique_name}" CASCADE'))
            await engine.dispose()
    elif name == "mongo-fake":
        client = FakeAsyncMongoClient()
        try:
            yield Backend(name, MongoUserRepository(client[unique_name], clock=clock), clock)
        finally:
            await client.close()
    else:
        from pymongo import AsyncMongoClient

        live = AsyncMongoClient[dict[str, object]](MONGODB_URL, serverSelectionTimeoutMS=5000)
        try:
            yield Backend(name, MongoUserRepository(live[unique_name], clock=clock), clock)
        finally:
            await live.drop_database(unique_name)
            await live.close()


async def _add(repository: UserRepository, email: str, name: str = "Ada") -> User:
    return await repository.add(email=email, name=name, password_hash="$argon2id$fake-hash")


async def _all_pages(repository: UserRepository, limit: int) -> list[list[User]]:
    pages: list[list[User]] = []
    cursor: str | None = None
    while True:
        page = await repository.list(limit, after=cursor)
        pages.append(list(page.users))
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


# ------------------------------------------------------------------ basics
async def test_add_then_read_back_by_id_and_email_in_any_case(backend: Backend) -> None:
    repo = backend.repository
    user = await repo.add(
        email="  Ada.Lovelace@Example.COM ", name=" Ada Lovelace ", password_hash="$argon2id$h1"
    )
    assert user.email == "ada.lovelace@example.com"
    assert user.name == "Ada Lovelace"
    assert user.created_at.tzinfo is not None
    assert user.created_at.utcoffset() == timedelta(0)
    assert user.created_at == backend.clock.now
    assert await repo.get(user.id) == user
    assert await repo.get_by_email("ADA.LOVELACE@example.com") == user
    assert await repo.get_by_email("ada.lovelace@example.com ") == user
    credentials = await repo.get_credentials("Ada.Lovelace@example.com")
    assert credentials is not None
    assert credentials.user == user
    assert credentials.password_hash == "$argon2id$h1"
    assert "$argon2id$h1" not in repr(credentials)
    assert "h1" not in repr(user)


async def test_unknown_and_malformed_ids_match_nothing(backend: Backend) -> None:
    repo = backend.repository
    await _add(repo, "ada@example.com")
    for user_id in [
        "",
        "nope",
        "'; DROP TABLE users; --",
        "0" * 24,  # a well-formed ObjectId nobody has
        "00000000-0000-4000-8000-000000000000",  # a well-formed UUID nobody has
        "x" * 10_000,
    ]:
        assert await repo.get(user_id) is None, user_id
    assert await repo.get_by_email("nobody@example.com") is None
    assert await repo.get_credentials("nobody@example.com") is None


async def test_ids_are_unique_strings(backend: Backend) -> None:
    users = [await _add(backend.repository, f"user{i}@example.com") for i in range(5)]
    assert all(user.id for user in users)
    assert len({user.id for user in users}) == 5


# -------------------------------------------------------------- duplicates
async def test_duplicate_email_in_another_case_is_refused(backend: Backend) -> None:
    repo = backend.repository
    first = await _add(repo, "ada@example.com", "First")
    secret = uuid.uuid4().hex  # made at run time, so no source line in the traceback shows it
    with pytest.raises(DuplicateEmailError) as raised:
        await repo.add(email="ADA@Example.com", name="Second", password_hash=f"$argon2id${secret}")
    # Neither the message nor the printed traceback (causes included) shows the hash:
    # the SQL driver's IntegrityError holds every bound parameter.
    assert secret not in "".join(traceback.format_exception(raised.value))
    assert await repo.get_by_email("ada@example.com") == first
    page = await repo.list(10)
    assert [user.name for user in page.users] == ["First"]


async def test_fifty_concurrent_adds_with_one_email_store_one_user(backend: Backend) -> None:
    repo = backend.repository
    results = await asyncio.gather(
        *(_add(repo, RACE_EMAILS[i % 3], f"n{i}") for i in range(50)),
        return_exceptions=True,
    )
    users = [result for result in results if isinstance(result, User)]
    duplicates = [result for result in results if isinstance(result, DuplicateEmailError)]
    assert len(users) == 1, [r for r in results if not isinstance(r, (User, DuplicateEmailError))]
    assert len(duplicates) == 49
    assert (await repo.list(100)).users == (users[0],)


async def test_fifty_concurrent_create_user_calls_give_one_user_and_49_duplicates(
    backend: Backend,
) -> None:
    """The issue's acceptance test, through UserService with real (cheap) Argon2id hashing."""
    service = UserService(backend.repository, CheapPasswords())
    results = await asyncio.gather(
        *(
            service.create_user(NewUser(RACE_EMAILS[i % 3], f"n{i}", "password-123"))
            for i in range(50)
        ),
        return_exceptions=True,
    )
    created = [result for result in results if isinstance(result, User)]
    duplicates = [result for result in results if isinstance(result, DuplicateEmailError)]
    assert len(created) == 1
    assert len(duplicates) == 49
    assert await service.authenticate("race@example.com", "password-123") == created[0]


# -------------------------------------------------------- hostile strings
@pytest.mark.parametrize("hostile", HOSTILE_NAMES)
async def test_hostile_names_are_stored_verbatim(backend: Backend, hostile: str) -> None:
    repo = backend.repository
    user = await _add(repo, "victim@example.com", hostile)
    assert user.name == hostile
    assert await repo.get(user.id) == user
    # The table/collection is intact and still enforces uniqueness.
    await _add(repo, "other@example.com")
    with pytest.raises(DuplicateEmailError):
        await _add(repo, "victim@example.com")
    assert len((await repo.list(10)).users) == 2


@pytest.mark.parametrize(
    "email", ["o'hara';--@example.com", "$where@example.com", 'a"b@example.com', "x%_@example.com"]
)
async def test_hostile_but_legal_emails_are_stored_verbatim(backend: Backend, email: str) -> None:
    repo = backend.repository
    await _add(repo, "bystander@example.com")
    user = await _add(repo, email)
    assert user.email == email
    assert await repo.get_by_email(email.upper()) == user
    # LIKE wildcards are not wildcards: "x%_" matches only itself.
    assert await repo.get_by_email("x%%@example.com") is None
    assert len((await repo.list(10)).users) == 2


@pytest.mark.parametrize(
    "operator",
    [{"$gt": ""}, {"$ne": None}, {"$regex": ".*"}, {"$exists": True}, {"$in": ["ada@example.com"]}],
)
async def test_operator_documents_as_lookup_values_match_nothing(
    backend: Backend, operator: dict[str, object]
) -> None:
    repo = backend.repository
    await _add(repo, "ada@example.com")
    assert await repo.get_by_email(operator) is None  # type: ignore[arg-type]  # JSON at run time
    assert await repo.get_credentials(operator) is None  # type: ignore[arg-type]
    assert await repo.get(operator) is None  # type: ignore[arg-type]
    with pytest.raises(UserNotFoundError):
        await repo.set_password_hash(operator, "x")  # type: ignore[arg-type]
    with pytest.raises(UserNotFoundError):
        await repo.delete(operator)  # type: ignore[arg-type]
    # The operator as text is just an odd string.
    assert await repo.get_by_email('{"$gt": ""}') is None
    assert len((await repo.list(10)).users) == 1


async def test_invalid_email_or_name_is_refused_by_add(backend: Backend) -> None:
    repo = backend.repository
    with pytest.raises(UserValidationError) as raised:
        await _add(repo, '{"$gt": ""}')
    assert raised.value.field == "email"
    with pytest.raises(UserValidationError) as raised:
        await _add(repo, "ada@example.com", "bad\x00name")
    assert raised.value.field == "name"
    assert (await repo.list(10)).users == ()


# -------------------------------------------------------------- pagination
async def test_pages_cover_every_user_once_in_creation_order(backend: Backend) -> None:
    repo = backend.repository
    users = [await _add(repo, f"user{i}@example.com") for i in range(7)]
    pages = await _all_pages(repo, 3)
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [user for page in pages for user in page] == users


async def test_last_full_page_has_no_next_cursor(backend: Backend) -> None:
    repo = backend.repository
    for i in range(4):
        await _add(repo, f"user{i}@example.com")
    first = await repo.list(2)
    second = await repo.list(2, after=first.next_cursor)
    assert len(second.users) == 2
    assert second.next_cursor is None
    assert (await repo.list(10)).next_cursor is None


async def test_pagination_breaks_created_at_ties_by_id(backend: Backend) -> None:
    repo = backend.repository
    backend.clock.step = timedelta(0)
    users = [await _add(repo, f"tie{i}@example.com") for i in range(5)]
    assert len({user.created_at for user in users}) == 1
    listed = [user for page in await _all_pages(repo, 2) for user in page]
    assert sorted(listed, key=lambda user: user.email) == sorted(users, key=lambda u: u.email)
    assert len(listed) == 5
    # The same order every time.
    assert [user for page in await _all_pages(repo, 2) for user in page] == listed
    assert [user for page in await _all_pages(repo, 5) for user in page] == listed


async def test_cursor_survives_deleting_its_user_and_new_inserts(backend: Backend) -> None:
    repo = backend.repository
    users = [await _add(repo, f"user{i}@example.com") for i in range(6)]
    first = await repo.list(3)
    assert list(first.users) == users[:3]
    await repo.delete(users[2].id)  # the user the cursor points after
    await repo.delete(users[3].id)  # and the next one
    late = await _add(repo, "late@example.com")
    second = await repo.list(3, after=first.next_cursor)
    assert list(second.users) == [users[4], users[5], late]
    assert second.next_cursor is None


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "garbage",
        "!!!!",
        base64.urlsafe_b64encode(b"[1,2,3]").decode(),
        base64.urlsafe_b64encode(b'[1,"2026-01-01T00:00:00+00:00",""]').decode(),
        base64.urlsafe_b64encode(b'[1,"2026-01-01T00:00:00",  "x"]').decode(),  # naive
        base64.urlsafe_b64encode(b'[9,"2026-01-01T00:00:00+00:00","x"]').decode(),
        base64.urlsafe_b64encode(b'[1,"not a date","x"]').decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        "A" * 5000,
    ],
)
async def test_foreign_cursors_are_refused(backend: Backend, cursor: str) -> None:
    with pytest.raises(UserValidationError) as raised:
        await backend.repository.list(10, after=cursor)
    assert raised.value.field == "after"


async def test_cursor_with_an_id_of_the_wrong_shape_is_refused(backend: Backend) -> None:
    raw = b'[1,"2026-01-01T00:00:00.000000+00:00","\'; DROP TABLE users; --"]'
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    if backend.name == "memory":
        # Memory ids are compared as strings: the cursor is valid, it just seeks.
        assert (await backend.repository.list(10, after=cursor)).users == ()
        return
    with pytest.raises(UserValidationError) as raised:
        await backend.repository.list(10, after=cursor)
    assert raised.value.field == "after"


@pytest.mark.parametrize("limit", [0, -1, 1001, True, 2.5, "10"])
async def test_page_size_out_of_range_is_refused(backend: Backend, limit: object) -> None:
    with pytest.raises(UserValidationError) as raised:
        await backend.repository.list(limit)  # type: ignore[arg-type]
    assert raised.value.field == "limit"


# ------------------------------------------------------ updates and deletes
async def test_set_password_hash_replaces_only_that_users_hash(backend: Backend) -> None:
    repo = backend.repository
    ada = await _add(repo, "ada@example.com")
    bob = await _add(repo, "bob@example.com")
    await repo.set_password_hash(ada.id, "$argon2id$new")
    ada_credentials = await repo.get_credentials("ada@example.com")
    bob_credentials = await repo.get_credentials("bob@example.com")
    assert ada_credentials is not None
    assert bob_credentials is not None
    assert ada_credentials.password_hash == "$argon2id$new"
    assert bob_credentials.password_hash == "$argon2id$fake-hash"
    assert await repo.get(ada.id) == ada  # nothing else changed
    assert bob_credentials.user == bob


@pytest.mark.parametrize("user_id", ["", "nope", "0" * 24, "00000000-0000-4000-8000-000000000000"])
async def test_set_password_hash_of_unknown_user_raises(backend: Backend, user_id: str) -> None:
    with pytest.raises(UserNotFoundError):
        await backend.repository.set_password_hash(user_id, "$argon2id$new")


async def test_delete_frees_the_email_and_a_second_delete_raises(backend: Backend) -> None:
    repo = backend.repository
    ada = await _add(repo, "ada@example.com")
    keep = await _add(repo, "keep@example.com")
    await repo.delete(ada.id)
    assert await repo.get(ada.id) is None
    assert await repo.get_by_email("ada@example.com") is None
    with pytest.raises(UserNotFoundError):
        await repo.delete(ada.id)
    again = await _add(repo, "ADA@example.com")
    assert again.id != ada.id
    assert list((await repo.list(10)).users) == [keep, again]
