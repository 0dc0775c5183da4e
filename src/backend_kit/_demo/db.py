"""Demo part: a pooled engine reports a slow query with its parameters redacted.

Embedded default: in-memory SQLite with a ``sleep_ms()`` SQL function (a slow
query on demand). With ``DATABASE_URL`` set to PostgreSQL: the real server,
through the async engine and ``pg_sleep``.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from backend_kit._demo._report import Report
from backend_kit._redact import redact_url
from backend_kit.db import (
    PoolExhaustedError,
    SlowQuery,
    aping,
    create_async_pooled_engine,
    create_pooled_engine,
    ping,
    pool_status,
)

DEMO_PASSWORD = "correct horse battery staple"


def _describe(query: SlowQuery) -> str:
    return (
        f"slow query reported ({query.duration_ms:.0f} ms > {query.threshold * 1000:.0f} ms): "
        f"{query.statement}  parameters={dict(query.parameters)}"
    )


def _sqlite_sleep(dbapi_connection: sqlite3.Connection, record: Any) -> None:
    def sleep_ms(ms: int) -> int:
        time.sleep(ms / 1000)
        return ms

    dbapi_connection.create_function("sleep_ms", 1, sleep_ms)


def _run_sqlite(report: Report) -> None:
    from sqlalchemy import event, text

    seen: list[SlowQuery] = []
    engine = create_pooled_engine("sqlite://", name="demo-sqlite", on_slow_query=seen.append)
    event.listen(engine, "connect", _sqlite_sleep)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE users (email TEXT, password TEXT)"))
            conn.execute(
                text("INSERT INTO users VALUES (:email, :password)"),
                {"email": "ada@example.com", "password": DEMO_PASSWORD},
            )
            conn.execute(text("SELECT count(*) FROM users"))
            report.step("fast queries (INSERT, SELECT count) run without a report")
            conn.execute(
                text(
                    "SELECT sleep_ms(120), email FROM users "
                    "WHERE email = :email AND password = :password"
                ),
                {"email": "ada@example.com", "password": DEMO_PASSWORD},
            )
        for query in seen:
            report.step(_describe(query))
        leaked = any(DEMO_PASSWORD in repr(query) for query in seen)
        report.step(f"the bound password appears in the report: {leaked}")
        status = pool_status(engine)
        report.step(
            f"pool: {status.pool_class} (one shared in-memory connection), "
            f"{status.checkouts} checkouts, median wait {(status.wait_p50 or 0) * 1e6:.0f} µs"
        )
        result = ping(engine, timeout=2)
        report.step(f"ping: ok={result.ok} in {result.latency * 1000:.1f} ms")
    finally:
        engine.dispose()

    with tempfile.TemporaryDirectory() as directory:
        small = create_pooled_engine(
            f"sqlite:///{Path(directory) / 'demo.db'}",
            pool_size=1,
            max_overflow=0,
            pool_timeout=0.1,
            name="demo-small-pool",
        )
        try:
            with small.connect():
                try:
                    small.connect()
                except PoolExhaustedError as exc:
                    report.step(f"a second checkout from a 1-connection pool -> {exc}")
        finally:
            small.dispose()


async def _run_server(report: Report, url: str) -> None:
    from sqlalchemy import text

    seen: list[SlowQuery] = []
    engine = create_async_pooled_engine(
        url, pool_size=2, max_overflow=0, pool_timeout=5, on_slow_query=seen.append
    )
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            report.step("a fast query runs without a report")
            await conn.execute(
                text("SELECT pg_sleep(0.15), length(:password)"), {"password": DEMO_PASSWORD}
            )
        for query in seen:
            report.step(_describe(query))
        leaked = any(DEMO_PASSWORD in repr(query) for query in seen)
        report.step(f"the bound password appears in the report: {leaked}")
        result = await aping(engine, timeout=2)
        report.step(f"aping: ok={result.ok} in {result.latency * 1000:.1f} ms")
        status = pool_status(engine)
        limit = status.server_max_connections
        report.step(
            f"pool: {status.pool_class} size {status.size} + overflow {status.max_overflow}; "
            f"server accepts {limit if limit is not None else 'an unknown number of'} connections"
        )
    finally:
        await engine.dispose()


async def run(report: Report) -> None:
    url = os.environ.get("DATABASE_URL")
    if url and url.startswith(("postgresql", "postgres:")):
        report.part("db", f"PostgreSQL at {redact_url(url)} (DATABASE_URL)")
        await _run_server(report, url)
        return
    report.part("db", "SQLite in memory (set DATABASE_URL=postgresql://... for a real server)")
    _run_sqlite(report)
