"""What only the SQL repository has: its table, schemas, and which IntegrityError is a duplicate."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from backend_kit.users import DuplicateEmailError
from backend_kit.users.sql import SqlUserRepository, UserModel


@pytest.fixture(params=["sqlite", "postgres"])
async def engine_and_schema(
    request: pytest.FixtureRequest, tmp_path: Path, unique_name: str
) -> AsyncIterator[tuple[AsyncEngine, str | None]]:
    if request.param == "sqlite":
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'users.db'}")
        try:
            yield engine, None
        finally:
            await engine.dispose()
        return
    engine = create_async_engine(request.getfixturevalue("postgres_url"))
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{unique_name}"'))
    try:
        yield engine, unique_name
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{unique_name}" CASCADE'))
        await engine.dispose()


async def test_table_indexes_and_constraint_names(
    engine_and_schema: tuple[AsyncEngine, str | None],
) -> None:
    engine, schema = engine_and_schema
    repository = SqlUserRepository(engine, schema=schema)
    await repository.create_table()
    await repository.create_table()  # idempotent

    def describe(sync_conn: object) -> tuple[set[str], list[str], set[str]]:
        inspector = inspect(sync_conn)
        columns = {column["name"] for column in inspector.get_columns("users", schema=schema)}
        uniques = [
            str(unique["name"])
            for unique in inspector.get_unique_constraints("users", schema=schema)
        ]
        indexes = {str(index["name"]) for index in inspector.get_indexes("users", schema=schema)}
        return columns, uniques, indexes

    async with engine.connect() as conn:
        columns, uniques, indexes = await conn.run_sync(describe)
    assert columns == {"id", "email", "name", "password_hash", "created_at"}
    assert uniques == ["uq_users_email"]
    assert "ix_users_created_at_id" in indexes


async def test_schema_option_puts_the_table_in_that_schema(
    postgres_url: str, unique_name: str
) -> None:
    engine = create_async_engine(postgres_url)
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{unique_name}"'))
    try:
        repository = SqlUserRepository(engine, schema=unique_name)
        await repository.create_table()
        await repository.add(email="ada@example.com", name="Ada", password_hash="h")
        async with engine.connect() as conn:
            # An identifier from unique_name (identifiers cannot be bound parameters).
            query = f'SELECT count(*) FROM "{unique_name}".users'  # noqa: S608
            count = await conn.scalar(text(query))
            tables = await conn.scalar(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema = :s"),
                {"s": unique_name},
            )
        assert count == 1
        assert tables == 1
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{unique_name}" CASCADE'))
        await engine.dispose()


async def test_another_integrity_error_is_not_called_a_duplicate_email(
    engine_and_schema: tuple[AsyncEngine, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, schema = engine_and_schema
    repository = SqlUserRepository(engine, schema=schema)
    await repository.create_table()
    fixed = uuid.UUID("12345678-1234-4234-8234-123456789abc")
    monkeypatch.setattr("backend_kit.users.sql.uuid.uuid4", lambda: fixed)
    await repository.add(email="ada@example.com", name="Ada", password_hash="h")
    with pytest.raises(IntegrityError) as raised:  # the primary key, not the email
        await repository.add(email="bob@example.com", name="Bob", password_hash="h")
    assert not isinstance(raised.value, DuplicateEmailError)


async def test_a_failed_insert_does_not_carry_the_password_hash(
    engine_and_schema: tuple[AsyncEngine, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLAlchemy's error text lists the bound parameters unless hidden: the
    # hash must not reach a log line through str() of an insert that failed.
    engine, schema = engine_and_schema
    repository = SqlUserRepository(engine, schema=schema)
    await repository.create_table()
    fixed = uuid.UUID("12345678-1234-4234-8234-123456789abc")
    monkeypatch.setattr("backend_kit.users.sql.uuid.uuid4", lambda: fixed)
    await repository.add(email="ada@example.com", name="Ada", password_hash="$argon2id$first")
    with pytest.raises(IntegrityError) as raised:
        await repository.add(email="bob@example.com", name="Bob", password_hash="$argon2id$second")
    assert "argon2id" not in str(raised.value)
    assert "argon2id" not in repr(raised.value)


async def test_a_failed_hash_update_does_not_carry_the_password_hash(
    engine_and_schema: tuple[AsyncEngine, str | None],
) -> None:
    engine, schema = engine_and_schema
    repository = SqlUserRepository(engine, schema=schema)
    await repository.create_table()
    user = await repository.add(email="ada@example.com", name="Ada", password_hash="h")
    await repository.drop_table()  # the UPDATE now fails in the database
    with pytest.raises(DBAPIError) as raised:
        await repository.set_password_hash(user.id, "$argon2id$rehashed")
    assert "argon2id" not in str(raised.value)


async def test_model_repr_has_no_hash() -> None:
    model = UserModel(id="u", email="ada@example.com", name="Ada", password_hash="$argon2id$x")
    assert "argon2id" not in repr(model)
    assert "ada@example.com" in repr(model)
