"""Users benchmark: SqlUserRepository against raw SQLAlchemy Core and the ORM, one run.

Per database (SQLite file, and PostgreSQL when reachable) with 10,000 users:

- lookup by email: raw Core ``select`` on the same engine (the floor), the ORM
  pattern of the seed app (``AsyncSession`` + ``select(Model)``, the usual peer),
  and ``SqlUserRepository.get_by_email``;
- a deep page (users 9,001-9,050): the same keyset query in raw Core (the
  floor), ``OFFSET 9000 LIMIT 50`` (what most apps do) and the repository's
  ``list(50, after=cursor)``.

Rounds are interleaved (every variant once per round, in rotating order) so
drift on a shared machine hits all variants alike; medians and ratios are
printed. Runs in well under two minutes.

    python benchmarks/users_bench.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

from sqlalchemy import insert, literal, select, text, tuple_
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from backend_kit.users._cursor import encode_cursor
from backend_kit.users.sql import SqlUserRepository, UserModel

USERS = 10_000
ROUNDS = 15
OPS_PER_ROUND = 150
PAGE_OPS_PER_ROUND = 30
POSTGRES_URL = os.environ.get(
    "BACKEND_KIT_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

Variant = Callable[[int], Awaitable[object]]


async def _seed(engine: AsyncEngine) -> list[tuple[datetime, str]]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "id": str(uuid.uuid4()),
            "email": f"user{i}@example.com",
            "name": f"User {i}",
            "password_hash": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            "created_at": start + timedelta(milliseconds=i),
        }
        for i in range(USERS)
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(UserModel), rows)
    return sorted((row["created_at"], row["id"]) for row in rows)  # type: ignore[misc]


async def _measure(variants: dict[str, Variant], ops: int) -> dict[str, float]:
    """Median seconds per operation of each variant over interleaved rounds."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for name in names:  # warm-up: connections, statement caches
        for i in range(20):
            await variants[name](i)
    for round_number in range(ROUNDS):
        order = names[round_number % len(names) :] + names[: round_number % len(names)]
        for name in order:
            started = time.perf_counter()
            for i in range(ops):
                await variants[name](round_number * ops + i)
            samples[name].append((time.perf_counter() - started) / ops)
    return {name: statistics.median(values) for name, values in samples.items()}


def _print_table(title: str, medians: dict[str, float], floor: str) -> None:
    print(f"\n{title}")
    print(f"  {'variant':<44} {'median µs/op':>13} {'x floor':>8}")
    for name, seconds in medians.items():
        print(f"  {name:<44} {seconds * 1e6:>13.1f} {seconds / medians[floor]:>8.2f}")


async def bench_database(label: str, engine: AsyncEngine, schema: str | None) -> None:
    repository = SqlUserRepository(engine, schema=schema)
    await repository.create_table()
    order = await _seed(repository.engine)
    run_engine = repository.engine
    columns = (UserModel.id, UserModel.email, UserModel.name, UserModel.created_at)

    def email(i: int) -> str:
        return f"user{(i * 7919) % USERS}@example.com"

    async def raw_core(i: int) -> object:
        async with run_engine.connect() as conn:
            result = await conn.execute(
                select(*columns, UserModel.password_hash).where(UserModel.email == email(i))
            )
            return result.first()

    async def orm_session(i: int) -> object:
        async with AsyncSession(run_engine) as orm:
            return await orm.scalar(select(UserModel).where(UserModel.email == email(i)))

    async def repo_lookup(i: int) -> object:
        return await repository.get_by_email(email(i))

    lookups = await _measure(
        {
            "raw Core select (floor)": raw_core,
            "ORM AsyncSession + select(Model) (peer)": orm_session,
            "SqlUserRepository.get_by_email": repo_lookup,
        },
        OPS_PER_ROUND,
    )
    _print_table(
        f"{label}: one user by email ({USERS:,} users)", lookups, "raw Core select (floor)"
    )

    anchor_created_at, anchor_id = order[8999]
    cursor = encode_cursor(anchor_created_at, anchor_id)

    async def raw_keyset_page(_: int) -> object:
        async with run_engine.connect() as conn:
            result = await conn.execute(
                select(*columns)
                .where(
                    tuple_(UserModel.created_at, UserModel.id)
                    > tuple_(
                        literal(anchor_created_at, UserModel.created_at.type),
                        literal(anchor_id, UserModel.id.type),
                    )
                )
                .order_by(UserModel.created_at, UserModel.id)
                .limit(51)
            )
            return result.all()

    async def offset_page(_: int) -> object:
        async with run_engine.connect() as conn:
            result = await conn.execute(
                select(*columns).order_by(UserModel.created_at, UserModel.id).offset(9000).limit(50)
            )
            return result.all()

    async def keyset_page(_: int) -> object:
        return await repository.list(50, after=cursor)

    floor = "raw Core keyset, same query (floor)"
    pages = await _measure(
        {
            floor: raw_keyset_page,
            "raw Core OFFSET 9000 LIMIT 50 (usual peer)": offset_page,
            "SqlUserRepository.list(50, after=cursor)": keyset_page,
        },
        PAGE_OPS_PER_ROUND,
    )
    _print_table(f"{label}: page of 50 after user 9,000", pages, floor)


async def main() -> None:
    print(f"Python {sys.version.split()[0]}; {ROUNDS} interleaved rounds; medians per operation")
    with TemporaryDirectory() as directory:
        sqlite = create_async_engine(f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}")
        try:
            await bench_database("SQLite (aiosqlite, file)", sqlite, None)
        finally:
            await sqlite.dispose()
    schema = f"bk_bench_users_{uuid.uuid4().hex[:8]}"
    postgres = create_async_engine(POSTGRES_URL)
    try:
        async with postgres.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        print(f"\nPostgreSQL not reachable ({exc}); skipped")
        await postgres.dispose()
        return
    try:
        await bench_database("PostgreSQL (psycopg 3)", postgres, schema)
    finally:
        async with postgres.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await postgres.dispose()


if __name__ == "__main__":
    asyncio.run(main())
