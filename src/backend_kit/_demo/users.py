"""Demo part: create, list and authenticate users, a legacy hash upgraded on login.

Runs on an in-memory SQLite database; with ``DATABASE_URL`` naming PostgreSQL
it uses that server, in a schema of its own that it drops afterwards (it never
touches an existing ``users`` table).
"""

from __future__ import annotations

import os
import uuid

from backend_kit._demo._report import Report
from backend_kit._redact import redact_url
from backend_kit.users import DuplicateEmailError, NewUser, UserService

_DEMO_SECRET = "demo-only-secret-key-0123456789abcdef"  # throwaway: signs nothing here


async def run(report: Report) -> None:
    import bcrypt
    from sqlalchemy import text

    from backend_kit.db import create_async_pooled_engine
    from backend_kit.security import SecurityManager
    from backend_kit.users.sql import SqlUserRepository

    database_url = os.environ.get("DATABASE_URL", "")
    schema: str | None = None
    if database_url.startswith(("postgresql", "postgres:")):
        engine = create_async_pooled_engine(database_url, pool_size=2, max_overflow=0)
        schema = f"backend_kit_demo_{uuid.uuid4().hex[:8]}"
        report.part("users", f"PostgreSQL at {redact_url(database_url)}, schema {schema}")
    else:
        engine = create_async_pooled_engine("sqlite+aiosqlite:///:memory:")
        why = " (DATABASE_URL is not PostgreSQL)" if database_url else ""
        report.part("users", f"SQLite in memory{why}")
    security = SecurityManager(secret_key=_DEMO_SECRET, argon2="owasp_minimum")
    try:
        if schema is not None:
            async with engine.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        repository = SqlUserRepository(engine, schema=schema)
        await repository.create_table()
        service = UserService(repository, security)

        ada = await service.create_user(
            NewUser("Ada@Example.com", "Ada Lovelace", "analytical engine")
        )
        grace = await service.create_user(
            NewUser("grace@example.com", "Grace Hopper", "cobol-forever-1959")
        )
        report.step(
            f"created {ada.name} as {ada.email} (typed Ada@Example.com) and {grace.name}; "
            f"passwords hashed with Argon2id off the event loop"
        )
        report.step(f"what a client sees: {ada.to_dict()} (a User holds no hash)")
        try:
            await service.create_user(NewUser("ADA@example.com", "Impostor", "another password"))
        except DuplicateEmailError as exc:
            report.step(f"ADA@example.com again -> DuplicateEmailError: {exc}")
        else:
            raise RuntimeError("a second account with the same email was accepted")

        legacy = bcrypt.hashpw(b"punch cards 1843", bcrypt.gensalt(rounds=10)).decode()
        await repository.add(
            email="babbage@example.com", name="Charles Babbage", password_hash=legacy
        )
        report.step(
            "stored a legacy bcrypt hash for babbage@example.com (as a passlib-era app would)"
        )

        first = await service.list_users(limit=2)
        second = await service.list_users(limit=2, after=first.next_cursor)
        report.step(
            f"listed 2 a page: {[user.name for user in first.users]}, then with the "
            f"page's opaque cursor {[user.name for user in second.users]} "
            f"(last page: next_cursor={second.next_cursor})"
        )

        right = await service.authenticate("ada@example.com", "analytical engine")
        wrong = await service.authenticate("ada@example.com", "difference engine")
        unknown = await service.authenticate("nobody@example.com", "analytical engine")
        report.step(
            f"authenticate: right password -> {right.name if right else None}, "
            f"wrong password -> {wrong}, unknown email -> {unknown} (after a dummy verify)"
        )
        babbage = await service.authenticate("babbage@example.com", "punch cards 1843")
        credentials = await repository.get_credentials("babbage@example.com")
        scheme = credentials.password_hash.split("$")[1] if credentials else "?"
        report.step(
            f"babbage logged in: {babbage is not None}; stored hash is now {scheme} (upgraded from bcrypt)"
        )
    finally:
        await security.aclose()
        if schema is not None:
            async with engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()
