"""backend_kit.db on SQLite: slow-query reports, redaction, pools, ping (no server needed)."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from backend_kit.db import (
    PoolExhaustedError,
    SlowQuery,
    SlowQueryListener,
    create_async_pooled_engine,
    create_pooled_engine,
    ping,
    pool_status,
)
from backend_kit.db._listener import EventStyle
from backend_kit.errors import ConfigurationError

SECRET = "hunter2-very-secret-value"


def _add_sleep_function(engine: Engine) -> None:
    """``sleep_ms(n)``: a SQL function that blocks for n milliseconds (a slow query on demand)."""

    @event.listens_for(engine, "connect")
    def _register(dbapi_connection: sqlite3.Connection, record: Any) -> None:
        def sleep_ms(ms: int) -> int:
            time.sleep(ms / 1000)
            return ms

        dbapi_connection.create_function("sleep_ms", 1, sleep_ms)


@pytest.fixture
def reports() -> list[SlowQuery]:
    return []


@pytest.fixture(params=["execute", "cursor"])
def events(request: pytest.FixtureRequest) -> EventStyle:
    """Both ways of timing statements obey the same tests."""
    style: EventStyle = request.param
    return style


@pytest.fixture
def engine(reports: list[SlowQuery], events: EventStyle) -> Iterator[Engine]:
    engine = create_pooled_engine(
        "sqlite://",
        slow_query_threshold=0.05,
        on_slow_query=reports.append,
        name="test-sqlite",
        slow_query_events=events,
    )
    _add_sleep_function(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, password TEXT)"))
    yield engine
    engine.dispose()


def test_slow_query_is_logged_once_and_passed_to_the_hook(
    engine: Engine, reports: list[SlowQuery], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="backend_kit.db"), engine.connect() as conn:
        conn.execute(text("SELECT sleep_ms(80), 'literal', 42"))
    assert len(reports) == 1
    query = reports[0]
    assert 0.075 < query.duration < 2
    assert query.threshold == 0.05
    assert query.statement == "SELECT sleep_ms(?), ?, ?"
    assert query.engine_name == "test-sqlite"
    assert query.executemany is False
    assert query.error is None
    warnings = [r for r in caplog.records if r.name == "backend_kit.db"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "SELECT sleep_ms(?), ?, ?" in warnings[0].getMessage()
    assert warnings[0].slow_query is query  # type: ignore[attr-defined]


def test_fast_queries_are_not_reported(
    engine: Engine, reports: list[SlowQuery], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="backend_kit.db"), engine.connect() as conn:
        for _ in range(50):
            conn.execute(text("SELECT 1"))
    assert reports == []
    assert not [r for r in caplog.records if r.name == "backend_kit.db"]


def test_bound_secret_never_reaches_logs_or_the_record(
    engine: Engine, reports: list[SlowQuery], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="backend_kit"), engine.connect() as conn:
        conn.execute(
            text("SELECT sleep_ms(60) WHERE :email IS NOT NULL AND :password IS NOT NULL"),
            {"email": "bob@example.com", "password": SECRET},
        )
        conn.execute(text(f"SELECT sleep_ms(60), '{SECRET}'"))  # an inline literal, too
    assert len(reports) == 2
    assert reports[0].parameters == {"email": "***", "password": "***"}
    assert SECRET not in caplog.text
    assert "bob@example.com" not in caplog.text
    assert all(SECRET not in repr(query) for query in reports)


def test_revealed_values_still_mask_secret_names(
    reports: list[SlowQuery], events: EventStyle
) -> None:
    engine = create_pooled_engine(
        "sqlite://",
        slow_query_threshold=0.0,
        on_slow_query=reports.append,
        reveal_parameters=True,
        slow_query_events=events,
    )
    with engine.connect() as conn:
        conn.execute(
            text("SELECT :email, :password, :api_token"),
            {"email": "bob@example.com", "password": SECRET, "api_token": SECRET},
        )
    engine.dispose()
    assert reports[-1].parameters == {
        "email": "'bob@example.com'",
        "password": "***",
        "api_token": "***",
    }


def test_a_slow_statement_that_fails_is_still_reported(
    engine: Engine, reports: list[SlowQuery]
) -> None:
    # sleep_ms runs, then abs() of the smallest int64 overflows: a failure after 60 ms.
    with engine.connect() as conn, pytest.raises(sa.exc.OperationalError):
        conn.execute(
            text("SELECT sleep_ms(60), abs(-9223372036854775808) WHERE :pw IS NOT NULL"),
            {"pw": SECRET},
        )
    assert len(reports) == 1
    assert reports[0].error == "OperationalError"
    assert reports[0].duration > 0.05
    assert SECRET not in repr(reports[0])


def test_a_fast_failure_is_not_reported(engine: Engine, reports: list[SlowQuery]) -> None:
    with engine.connect() as conn, pytest.raises(sa.exc.OperationalError):
        conn.execute(text("SELECT * FROM no_such_table"))
    assert reports == []


def test_executemany_is_flagged(reports: list[SlowQuery], events: EventStyle) -> None:
    engine = create_pooled_engine(
        "sqlite://", slow_query_threshold=0.0, on_slow_query=reports.append
    )
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
        reports.clear()
        conn.execute(
            text("INSERT INTO t (id, v) VALUES (:id, :v)"), [{"id": i, "v": "x"} for i in range(5)]
        )
    engine.dispose()
    assert len(reports) == 1
    assert reports[0].executemany is True
    assert reports[0].execute_style == "executemany"
    assert reports[0].parameter_sets == 5
    assert reports[0].parameters == {"id": "***", "v": "***"}


def test_insertmanyvalues_batches_are_flagged(reports: list[SlowQuery], events: EventStyle) -> None:
    engine = create_pooled_engine(
        "sqlite://", slow_query_threshold=0.0, on_slow_query=reports.append
    )
    table = sa.Table(
        "items",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("v", sa.Text),
    )
    with engine.begin() as conn:
        table.create(conn)
        reports.clear()
        rows = conn.execute(table.insert().returning(table.c.id), [{"v": str(i)} for i in range(4)])
        assert len(rows.all()) == 4
    engine.dispose()
    assert reports, "insertmanyvalues batch not reported"
    assert all(q.execute_style == "insertmanyvalues" and q.executemany for q in reports)
    assert reports[0].parameter_sets == 4
    assert "/* +3 more */" in reports[0].statement


def _listener_counts(engine: Engine) -> tuple[int, ...]:
    dialect = engine.dialect.dispatch
    return (
        len(engine.dispatch.before_cursor_execute),
        len(engine.dispatch.after_cursor_execute),
        len(dialect.do_execute),
        len(dialect.do_execute_no_params),
        len(dialect.do_executemany),
    )


def test_one_set_of_listeners_however_many_hooks(engine: Engine, events: EventStyle) -> None:
    expected = (1, 1, 0, 0, 0) if events == "cursor" else (0, 0, 1, 1, 1)
    listener = SlowQueryListener.attached_to(engine)
    assert listener is not None
    assert _listener_counts(engine) == expected
    listener.add_hook(lambda query: None)
    listener.add_hook(lambda query: None)
    assert _listener_counts(engine) == expected
    listener.attach(engine)  # attaching again is a no-op
    assert _listener_counts(engine) == expected
    with pytest.raises(ConfigurationError, match="already has a SlowQueryListener"):
        SlowQueryListener(0.5).attach(engine)


def test_execute_events_leave_the_connection_fast_path_on() -> None:
    """Why "execute" is the default: the engine itself carries no events at all."""
    engine = create_pooled_engine("sqlite://")
    assert engine._has_events is False
    cursor_engine = create_pooled_engine("sqlite://", slow_query_events="cursor")
    assert cursor_engine._has_events is True
    engine.dispose()
    cursor_engine.dispose()


def test_detach_removes_the_pair(engine: Engine, reports: list[SlowQuery]) -> None:
    listener = SlowQueryListener.attached_to(engine)
    assert listener is not None
    listener.detach(engine)
    assert _listener_counts(engine) == (0, 0, 0, 0, 0)
    assert SlowQueryListener.attached_to(engine) is None
    with engine.connect() as conn:
        conn.execute(text("SELECT sleep_ms(60)"))
    assert reports == []


def test_a_hook_that_raises_does_not_fail_the_query(
    engine: Engine, reports: list[SlowQuery], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(query: SlowQuery) -> None:
        raise RuntimeError("hook bug")

    listener = SlowQueryListener.attached_to(engine)
    assert listener is not None
    listener.add_hook(broken)
    with caplog.at_level(logging.WARNING, logger="backend_kit.db"), engine.connect() as conn:
        assert conn.execute(text("SELECT sleep_ms(60)")).scalar_one() == 60
    assert len(reports) == 1  # the hook before the broken one still ran
    assert any("hook" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    listener.remove_hook(broken)
    assert broken not in listener.hooks


def test_nested_execution_inside_a_statement_is_timed_separately(
    reports: list[SlowQuery], events: EventStyle, tmp_path: Path
) -> None:
    """A SQL function that runs another statement through the same engine mid-statement."""
    engine = create_pooled_engine(
        f"sqlite:///{tmp_path / 'nested.db'}",
        slow_query_threshold=0.05,
        on_slow_query=reports.append,
        slow_query_events=events,
    )
    _add_sleep_function(engine)

    @event.listens_for(engine, "connect")
    def _register(dbapi_connection: sqlite3.Connection, record: Any) -> None:
        def run_inner(ms: int) -> int:
            with engine.connect() as inner:  # a second pooled connection, same engine
                inner.execute(text("SELECT sleep_ms(:ms) AS inner_query"), {"ms": ms})
            time.sleep(ms / 1000)
            return ms

        dbapi_connection.create_function("run_inner", 1, run_inner)

    with engine.connect() as outer_connection:
        outer_connection.execute(text("SELECT run_inner(60) AS outer_query"))
    engine.dispose()
    # The inner statement finishes (and is reported) first, with its own time;
    # the outer one spans both sleeps.
    assert [q.statement for q in reports] == [
        "SELECT sleep_ms(?) AS inner_query",
        "SELECT run_inner(?) AS outer_query",
    ]
    inner_query, outer_query = reports
    assert 0.055 < inner_query.duration < outer_query.duration
    assert outer_query.duration > 0.115


def test_threshold_none_installs_no_listener() -> None:
    engine = create_pooled_engine("sqlite://", slow_query_threshold=None)
    assert _listener_counts(engine) == (0, 0, 0, 0, 0)
    assert SlowQueryListener.attached_to(engine) is None
    engine.dispose()


def test_bad_settings_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="slow_query_threshold"):
        create_pooled_engine("sqlite://", slow_query_threshold=-1)
    with pytest.raises(ConfigurationError, match="slow_query_events"):
        create_pooled_engine("sqlite://", slow_query_events="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="pool_size"):
        create_pooled_engine("sqlite:///x.db", pool_size=-1)
    with pytest.raises(ConfigurationError, match="events"):
        SlowQueryListener(events="sometimes")  # type: ignore[arg-type]


# ------------------------------------------------------------------- pools
def test_memory_sqlite_gets_one_shared_connection_across_threads() -> None:
    import threading

    engine = create_pooled_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE shared (v INTEGER)"))
    seen: list[int] = []

    def other_thread() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO shared VALUES (1)"))
            seen.append(conn.execute(text("SELECT count(*) FROM shared")).scalar_one())

    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join(5)
    assert seen == [1]
    status = pool_status(engine)
    assert status.pool_class == "StaticPool"
    assert status.checkouts >= 2
    engine.dispose()


def test_file_sqlite_gets_a_queue_pool_with_the_given_sizes(tmp_path: Path) -> None:
    engine = create_pooled_engine(
        f"sqlite:///{tmp_path / 'app.db'}", pool_size=3, max_overflow=2, pool_timeout=7
    )
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        status = pool_status(engine)
        assert status.checked_out == 1
    status = pool_status(engine)
    assert (status.pool_class, status.size, status.max_overflow, status.timeout) == (
        "QueuePool",
        3,
        2,
        7,
    )
    assert status.limit == 5
    assert status.checked_out == 0
    assert status.idle == 1
    assert status.connects == 1
    assert status.checkouts == 1
    assert status.wait_p50 is not None
    assert status.wait_max is not None
    assert status.wait_max >= status.wait_p50 >= 0
    engine.dispose()


def test_pool_exhaustion_raises_backend_kit_error_within_pool_timeout(tmp_path: Path) -> None:
    engine = create_pooled_engine(
        f"sqlite:///{tmp_path / 'app.db'}", pool_size=1, max_overflow=0, pool_timeout=0.2
    )
    with engine.connect():
        started = time.perf_counter()
        with pytest.raises(PoolExhaustedError) as caught:
            engine.connect()
        waited = time.perf_counter() - started
    assert 0.15 < waited < 2.0
    assert isinstance(caught.value.__cause__, sa.exc.TimeoutError)
    assert isinstance(caught.value, TimeoutError)
    message = str(caught.value)
    assert "pool_timeout=0.2" in message
    assert "pool_size=1 + max_overflow=0" in message
    assert "raise pool_size" in message
    assert pool_status(engine).exhausted == 1
    engine.dispose()


def test_stats_survive_dispose(tmp_path: Path) -> None:
    engine = create_pooled_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    engine.dispose()
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert pool_status(engine).checkouts == 2
    engine.dispose()


def test_pool_status_of_a_plain_engine() -> None:
    engine = sa.create_engine("sqlite://")
    status = pool_status(engine)
    assert status.wait_p50 is None
    assert status.checkouts == 0
    engine.dispose()


def test_user_poolclass_is_respected() -> None:
    engine = create_pooled_engine("sqlite:///:memory:", poolclass=sa.pool.NullPool)
    assert isinstance(engine.pool, sa.pool.NullPool)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
    engine.dispose()


# -------------------------------------------------------------------- ping
def test_ping_succeeds_on_a_live_engine() -> None:
    engine = create_pooled_engine("sqlite://", name="pingable")
    result = ping(engine, timeout=2)
    assert result
    assert result.ok
    assert result.error is None
    assert result.engine_name == "pingable"
    assert 0 <= result.latency < 2
    engine.dispose()


def test_ping_times_out_when_no_connection_is_free(tmp_path: Path) -> None:
    engine = create_pooled_engine(
        f"sqlite:///{tmp_path / 'app.db'}", pool_size=1, max_overflow=0, pool_timeout=5
    )
    with engine.connect():
        result = ping(engine, timeout=0.2)
    assert not result
    assert result.error == "no answer within 0.2 s"
    assert 0.15 < result.latency < 2
    engine.dispose()


def test_ping_reports_an_exhausted_pool_as_unhealthy(tmp_path: Path) -> None:
    engine = create_pooled_engine(
        f"sqlite:///{tmp_path / 'app.db'}", pool_size=1, max_overflow=0, pool_timeout=0.1
    )
    with engine.connect():
        result = ping(engine, timeout=3)
    assert result.ok is False
    assert result.error is not None
    assert result.error.startswith("PoolExhaustedError")
    engine.dispose()


def test_ping_reports_a_database_that_cannot_open(tmp_path: Path) -> None:
    engine = create_pooled_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'app.db'}")
    result = ping(engine, timeout=3)
    assert result.ok is False
    assert result.error is not None
    assert result.error.startswith("OperationalError: unable to open database file")
    engine.dispose()


# -------------------------------------------------------------------- URLs
def test_database_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite://")
    engine = create_pooled_engine()
    assert engine.url.get_backend_name() == "sqlite"
    engine.dispose()


def test_no_url_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        create_pooled_engine()


def test_an_unparseable_url_does_not_echo_its_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        create_pooled_engine("not a url://user:s3cret@host/db")
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    "url", ["postgresql+psycopg://u:s3cret@h:abc/db", "postgresql+psycopg://u:s3cret@[::1/db"]
)
def test_a_bad_port_or_host_is_a_configuration_error(url: str) -> None:
    # SQLAlchemy's make_url raises a bare ValueError (int() of the port) for these.
    with pytest.raises(ConfigurationError) as caught:
        create_pooled_engine(url)
    assert "s3cret" not in str(caught.value)


def test_postgres_scheme_is_accepted_and_the_name_has_no_credentials() -> None:
    engine = create_pooled_engine("postgres://app:s3cret@db.internal:5433/shop")
    assert engine.url.drivername == "postgresql"
    assert engine.url.get_driver_name() == "psycopg"
    listener = SlowQueryListener.attached_to(engine)
    assert listener is not None
    from backend_kit.db._naming import engine_name

    assert engine_name(engine) == "postgresql://db.internal:5433/shop"
    engine.dispose()  # never connected: creating an engine touches no network


def test_a_reporting_bug_never_fails_or_masks_the_statement(
    engine: Engine,
    reports: list[SlowQuery],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken_normalizer(statement: str, max_length: int = 1000) -> str:
        raise RuntimeError("normalizer bug")

    monkeypatch.setattr("backend_kit.db._listener.normalize_statement", broken_normalizer)
    with caplog.at_level(logging.ERROR, logger="backend_kit.db"), engine.connect() as conn:
        assert conn.execute(text("SELECT sleep_ms(60)")).scalar_one() == 60
        with pytest.raises(sa.exc.OperationalError):  # the user's error, not the bug's
            conn.execute(text("SELECT sleep_ms(60), abs(-9223372036854775808)"))
    assert reports == []
    assert len([r for r in caplog.records if "could not report" in r.getMessage()]) == 2


def test_pool_logs_keep_sqlalchemys_logger_names(tmp_path: Path) -> None:
    engine = create_pooled_engine(f"sqlite:///{tmp_path / 'app.db'}")
    memory = create_pooled_engine("sqlite://")
    # (SQLAlchemy names the logger after _sqla_logger_namespace, else the class's module.)
    assert isinstance(engine.pool.logger, logging.Logger)
    assert isinstance(memory.pool.logger, logging.Logger)
    assert engine.pool.logger.name == "sqlalchemy.pool.impl.QueuePool"
    assert memory.pool.logger.name == "sqlalchemy.pool.impl.StaticPool"
    engine.dispose()
    memory.dispose()


def test_driver_errors_hide_bound_parameters_by_default() -> None:
    # SQLAlchemy puts "[parameters: ...]" in str() of a statement error unless
    # hide_parameters=True; the pooled engines turn it on (override: pass False).
    engine = create_pooled_engine("sqlite://", slow_query_threshold=None)
    try:
        with engine.connect() as connection, pytest.raises(sa.exc.OperationalError) as raised:
            connection.execute(
                text("SELECT * FROM missing WHERE token = :token"), {"token": "s3cr3t-value"}
            )
        assert "s3cr3t-value" not in str(raised.value)
    finally:
        engine.dispose()
    revealing = create_pooled_engine("sqlite://", slow_query_threshold=None, hide_parameters=False)
    try:
        with revealing.connect() as connection, pytest.raises(sa.exc.OperationalError) as raised:
            connection.execute(
                text("SELECT * FROM missing WHERE token = :token"), {"token": "s3cr3t-value"}
            )
        assert "s3cr3t-value" in str(raised.value)
    finally:
        revealing.dispose()


async def test_async_driver_errors_hide_bound_parameters_by_default() -> None:
    engine = create_async_pooled_engine("sqlite+aiosqlite://", slow_query_threshold=None)
    try:
        async with engine.connect() as connection:
            with pytest.raises(sa.exc.OperationalError) as raised:
                await connection.execute(
                    text("SELECT * FROM missing WHERE token = :token"), {"token": "s3cr3t-value"}
                )
        assert "s3cr3t-value" not in str(raised.value)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///{tmp}/recreate.db"])
def test_pool_stats_survive_a_pool_recreate(url: str, tmp_path: Path) -> None:
    """After an invalidation SQLAlchemy recreates the pool: same class, same stats."""
    engine = create_pooled_engine(url.format(tmp=tmp_path))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        pool = engine.pool
        before = pool_status(engine).checkouts
        recreated = pool.recreate()
        assert type(recreated) is type(pool)
        engine.pool = recreated
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert pool_status(engine).checkouts == before + 1
    finally:
        engine.dispose()
