"""backend_kit.db against the real PostgreSQL (psycopg 3), sync and async.

Every test names its pooled connections with its own ``application_name`` and
works in its own schema or in temporary tables, so the shared server is only
touched where this test owns it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from backend_kit.db import (
    PoolExhaustedError,
    SlowQuery,
    aping,
    create_async_pooled_engine,
    create_pooled_engine,
    ping,
    pool_status,
)
from backend_kit.db._listener import EventStyle

SECRET = "s3cr3t-password-never-logged"


def _conninfo(postgres_url: str) -> str:
    return make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _terminate_backends(postgres_url: str, application_name: str) -> int:
    """Kill this test's own pooled backends (and only those)."""
    with psycopg.connect(_conninfo(postgres_url), autocommit=True, connect_timeout=5) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        ).fetchall()
    return sum(1 for (killed,) in rows if killed)


@pytest.fixture
def reports() -> list[SlowQuery]:
    return []


@pytest.fixture(params=["execute", "cursor"])
def events(request: pytest.FixtureRequest) -> EventStyle:
    """Both ways of timing statements obey the same tests."""
    style: EventStyle = request.param
    return style


@pytest.fixture
def engine(
    postgres_url: str, unique_name: str, reports: list[SlowQuery], events: EventStyle
) -> Iterator[Engine]:
    engine = create_pooled_engine(
        postgres_url,
        slow_query_events=events,
        pool_size=3,
        max_overflow=1,
        pool_timeout=5,
        on_slow_query=reports.append,
        connect_args={"application_name": unique_name, "connect_timeout": 5},
    )
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{unique_name}"'))
    yield engine
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{unique_name}" CASCADE'))
    engine.dispose()


@pytest.fixture
async def async_engine(
    postgres_url: str, unique_name: str, reports: list[SlowQuery], events: EventStyle
) -> AsyncIterator[AsyncEngine]:
    engine = create_async_pooled_engine(
        postgres_url,
        slow_query_events=events,
        pool_size=3,
        max_overflow=1,
        pool_timeout=5,
        on_slow_query=reports.append,
        connect_args={"application_name": unique_name, "connect_timeout": 5},
    )
    yield engine
    await engine.dispose()


# ------------------------------------------------------------- slow queries
def test_pg_sleep_is_reported_with_the_default_threshold(
    engine: Engine, reports: list[SlowQuery], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="backend_kit.db"), engine.connect() as conn:
        conn.execute(text("SELECT pg_sleep(0.15)"))
        conn.execute(text("SELECT 1"))
    assert len(reports) == 1
    query = reports[0]
    assert query.threshold == 0.1
    assert 0.14 < query.duration < 5
    assert query.statement == "SELECT pg_sleep(?)"
    assert query.engine_name == "postgresql://127.0.0.1:5432/test"
    lines = [r.getMessage() for r in caplog.records if r.name == "backend_kit.db"]
    assert len(lines) == 1
    assert "SELECT pg_sleep(?)" in lines[0]


def test_fast_queries_are_not_reported(engine: Engine, reports: list[SlowQuery]) -> None:
    with engine.connect() as conn:
        for _ in range(20):
            conn.execute(text("SELECT 1"))
    assert reports == []


def test_a_slow_query_that_fails_is_reported(engine: Engine, reports: list[SlowQuery]) -> None:
    with engine.connect() as conn:
        conn.execute(text("SET statement_timeout = '150ms'"))
        with pytest.raises(sa.exc.OperationalError) as caught:
            conn.execute(text("SELECT pg_sleep(2)"))
    assert isinstance(caught.value.orig, psycopg.errors.QueryCanceled)
    assert len(reports) == 1
    assert reports[0].error == "QueryCanceled"
    assert 0.14 < reports[0].duration < 2


def test_a_bound_secret_never_reaches_logs_or_the_record(
    engine: Engine, reports: list[SlowQuery], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG), engine.connect() as conn:
        conn.execute(
            text("SELECT pg_sleep(0.15), length(:password), :email"),
            {"password": SECRET, "email": "bob@example.com"},
        )
    assert len(reports) == 1
    assert reports[0].parameters == {"password": "***", "email": "***"}
    assert SECRET not in caplog.text
    assert SECRET not in repr(reports)
    assert "bob@example.com" not in caplog.text


def test_revealed_parameters_still_mask_the_password(
    postgres_url: str, unique_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    found: list[SlowQuery] = []
    engine = create_pooled_engine(
        postgres_url,
        pool_size=1,
        reveal_parameters=True,
        on_slow_query=found.append,
        connect_args={"application_name": unique_name},
    )
    try:
        with caplog.at_level(logging.WARNING, logger="backend_kit.db"), engine.connect() as conn:
            conn.execute(
                text("SELECT pg_sleep(0.15), length(:password), :email"),
                {"password": SECRET, "email": "bob@example.com"},
            )
    finally:
        engine.dispose()
    assert found[0].parameters == {"password": "***", "email": "'bob@example.com'"}
    assert SECRET not in caplog.text
    assert "bob@example.com" in caplog.text


def test_executemany_and_insertmanyvalues_are_flagged(
    postgres_url: str, unique_name: str, events: EventStyle
) -> None:
    found: list[SlowQuery] = []
    engine = create_pooled_engine(
        postgres_url,
        pool_size=1,
        slow_query_threshold=0.0,  # report everything: the flag is what is under test
        on_slow_query=found.append,
        slow_query_events=events,
        connect_args={"application_name": unique_name},
    )
    table = sa.Table(
        "items",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("secret", sa.Text),
        prefixes=["TEMPORARY"],
    )
    try:
        with engine.begin() as conn:
            table.create(conn)
            found.clear()
            # psycopg: a plain INSERT goes through cursor.executemany() (SQLAlchemy
            # uses insertmanyvalues only with RETURNING on this dialect: pinned here).
            conn.execute(table.insert(), [{"id": i, "secret": SECRET} for i in range(10)])
            plain_inserts = list(found)
            found.clear()
            returned = conn.execute(
                table.insert().returning(table.c.id),
                [{"id": i, "secret": SECRET} for i in range(10, 20)],
            ).all()
            assert len(returned) == 10
            inserts = list(found)
            found.clear()
            conn.execute(
                table.update().where(table.c.id == sa.bindparam("b_id")),
                [{"b_id": i, "secret": SECRET} for i in range(3)],
            )
            updates = list(found)
    finally:
        engine.dispose()
    assert len(plain_inserts) == 1
    assert plain_inserts[0].execute_style == "executemany"
    assert plain_inserts[0].parameter_sets == 10
    assert inserts
    assert all(q.executemany and q.execute_style == "insertmanyvalues" for q in inserts)
    assert inserts[0].parameter_sets == 10
    assert inserts[0].parameters == {"id": "***", "secret": "***"}
    assert len(updates) == 1
    assert updates[0].executemany is True
    assert updates[0].execute_style == "executemany"
    assert updates[0].parameter_sets == 3
    assert SECRET not in repr(plain_inserts + inserts + updates)


async def test_async_pg_sleep_is_reported_and_fast_is_not(
    async_engine: AsyncEngine, reports: list[SlowQuery], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="backend_kit.db"):
        async with async_engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            await conn.execute(
                text("SELECT pg_sleep(0.15), length(:password)"), {"password": SECRET}
            )
    assert len(reports) == 1
    assert reports[0].statement == "SELECT pg_sleep(?), length(%(password)s)"
    assert reports[0].parameters == {"password": "***"}
    assert SECRET not in caplog.text


async def test_async_failing_slow_query_is_reported(
    async_engine: AsyncEngine, reports: list[SlowQuery]
) -> None:
    async with async_engine.connect() as conn:
        await conn.execute(text("SET statement_timeout = '150ms'"))
        with pytest.raises(sa.exc.OperationalError):
            await conn.execute(text("SELECT pg_sleep(2)"))
    assert [q.error for q in reports] == ["QueryCanceled"]


def test_async_engine_uses_the_async_pool_and_one_set_of_listeners(
    async_engine: AsyncEngine, events: EventStyle
) -> None:
    sync = async_engine.sync_engine
    assert isinstance(sync.pool, sa.pool.AsyncAdaptedQueuePool)
    counts = (
        len(sync.dispatch.before_cursor_execute),
        len(sync.dispatch.after_cursor_execute),
        len(sync.dialect.dispatch.do_execute),
    )
    assert counts == ((1, 1, 0) if events == "cursor" else (0, 0, 1))


# --------------------------------------------------------------------- pool
def test_pre_ping_recovers_after_every_pooled_backend_is_killed(
    engine: Engine, postgres_url: str, unique_name: str
) -> None:
    held = [engine.connect() for _ in range(3)]  # three live pooled backends
    for conn in held:
        conn.execute(text("SELECT 1"))
    for conn in held:
        conn.close()
    assert pool_status(engine).idle == 3
    assert _terminate_backends(postgres_url, unique_name) >= 3

    for _ in range(5):  # the pre-ping finds each dead connection and replaces it
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    errors: list[BaseException] = []

    def concurrent_query() -> None:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_sleep(0.01)"))
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=concurrent_query) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    assert errors == []
    assert pool_status(engine).invalidations >= 1


async def test_async_pre_ping_recovers_after_backends_are_killed(
    async_engine: AsyncEngine, postgres_url: str, unique_name: str
) -> None:
    async def touch() -> None:
        async with async_engine.connect() as conn:
            await conn.execute(text("SELECT pg_sleep(0.05)"))

    await asyncio.gather(touch(), touch(), touch())
    killed = await asyncio.to_thread(_terminate_backends, postgres_url, unique_name)
    assert killed >= 3
    for _ in range(4):
        async with async_engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    await asyncio.gather(touch(), touch(), touch())
    assert pool_status(async_engine).invalidations >= 1


def test_pool_exhaustion_raises_within_pool_timeout(postgres_url: str, unique_name: str) -> None:
    engine = create_pooled_engine(
        postgres_url,
        pool_size=1,
        max_overflow=1,
        pool_timeout=0.3,
        connect_args={"application_name": unique_name},
    )
    try:
        with engine.connect(), engine.connect():
            started = time.perf_counter()
            with pytest.raises(PoolExhaustedError) as caught:
                engine.connect()
            waited = time.perf_counter() - started
        assert 0.25 < waited < 3
        assert isinstance(caught.value.__cause__, sa.exc.TimeoutError)
        assert "pool_size=1 + max_overflow=1" in str(caught.value)
        assert "all 2 connections" in str(caught.value)
        status = pool_status(engine)
        assert status.exhausted == 1
        assert status.checked_out == 0
        # The pool works again once connections come back.
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


async def test_async_pool_exhaustion_raises_within_pool_timeout(
    postgres_url: str, unique_name: str
) -> None:
    engine = create_async_pooled_engine(
        postgres_url,
        pool_size=1,
        max_overflow=0,
        pool_timeout=0.3,
        connect_args={"application_name": unique_name},
    )
    try:
        async with engine.connect():
            started = time.perf_counter()
            with pytest.raises(PoolExhaustedError) as caught:
                await engine.connect().start()
            waited = time.perf_counter() - started
        assert 0.25 < waited < 3
        assert isinstance(caught.value.__cause__, sa.exc.TimeoutError)
        assert pool_status(engine).exhausted == 1
    finally:
        await engine.dispose()


def test_pool_status_reports_waits_and_the_server_limit(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        busy = pool_status(engine)
    status = pool_status(engine)
    assert busy.checked_out == 1
    assert status.checked_out == 0
    assert (status.pool_class, status.size, status.max_overflow) == ("QueuePool", 3, 1)
    assert status.checkouts >= 2  # the fixture's schema setup, then this test
    assert status.wait_p50 is not None
    assert status.wait_p99 is not None
    assert 0 <= status.wait_p50 <= status.wait_p99 < 5
    assert status.server_max_connections is not None
    assert 0 < status.server_max_connections <= 100_000


def test_oversized_pool_warns_on_first_connect(
    postgres_url: str, unique_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_pooled_engine(
        postgres_url,
        pool_size=900,
        max_overflow=300,
        connect_args={"application_name": unique_name},
    )
    try:
        assert not [r for r in caplog.records if r.name == "backend_kit.db"]  # no I/O yet
        with caplog.at_level(logging.INFO, logger="backend_kit.db"), engine.connect() as conn:
            # The check ran on the raw connection and left no transaction behind.
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "pool_size + max_overflow = 1200" in warnings[0].getMessage()
        assert "exceeds" in warnings[0].getMessage()
    finally:
        engine.dispose()


def test_seed_pool_size_fits_one_process_and_says_how_many(
    postgres_url: str, unique_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_pooled_engine(postgres_url, connect_args={"application_name": unique_name})
    try:
        with caplog.at_level(logging.INFO, logger="backend_kit.db"), engine.connect():
            pass
        messages = [r.getMessage() for r in caplog.records if r.name == "backend_kit.db"]
        limit = pool_status(engine).server_max_connections
        assert limit is not None
        if limit >= 50:
            assert any(f"at most {limit // 50} processes" in m for m in messages), messages
        else:
            assert any("exceeds" in m for m in messages), messages
    finally:
        engine.dispose()


# --------------------------------------------------------------------- ping
def test_ping_and_aping_succeed(engine: Engine) -> None:
    result = ping(engine, timeout=5)
    assert result.ok
    assert result.engine_name == "postgresql://127.0.0.1:5432/test"


async def test_aping_succeeds_and_times_out_when_the_pool_is_held(
    postgres_url: str, unique_name: str
) -> None:
    engine = create_async_pooled_engine(
        postgres_url,
        pool_size=1,
        max_overflow=0,
        pool_timeout=10,
        connect_args={"application_name": unique_name},
    )
    try:
        healthy = await aping(engine, timeout=5)
        assert healthy.ok, healthy.error
        async with engine.connect():
            stuck = await aping(engine, timeout=0.2)
        assert not stuck.ok
        assert stuck.error == "no answer within 0.2 s"
        assert (await aping(engine, timeout=5)).ok  # the pool is usable afterwards
    finally:
        await engine.dispose()


def test_ping_reports_a_refused_connection_without_the_password() -> None:
    engine = create_pooled_engine(
        "postgresql+psycopg://app:pw-not-shown@127.0.0.1:1/none",
        connect_args={"connect_timeout": 2},
    )
    try:
        result = ping(engine, timeout=5)
    finally:
        engine.dispose()
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("OperationalError")
    assert "pw-not-shown" not in result.error


async def test_aping_reports_a_refused_connection() -> None:
    engine = create_async_pooled_engine(
        "postgresql+psycopg://app@127.0.0.1:1/none", connect_args={"connect_timeout": 2}
    )
    try:
        result = await aping(engine, timeout=5)
    finally:
        await engine.dispose()
    assert not result.ok
    assert result.error is not None
    assert result.error.startswith("OperationalError")
