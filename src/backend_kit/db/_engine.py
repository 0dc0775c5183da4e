"""``create_pooled_engine`` / ``create_async_pooled_engine``: production engine defaults.

SQLAlchemy is imported inside the functions (``import backend_kit.db`` must not
pay for it); annotations use ``TYPE_CHECKING`` imports.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from backend_kit._optional import import_optional
from backend_kit.db._listener import EventStyle, SlowQueryListener
from backend_kit.db._naming import default_engine_name, remember_engine_name
from backend_kit.db._records import SlowQueryHook
from backend_kit.errors import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["create_async_pooled_engine", "create_pooled_engine", "resolve_database_url"]

DATABASE_URL_VARIABLE = "DATABASE_URL"


def resolve_database_url(url: str | URL | None) -> URL:
    """Turn ``url`` (or ``$DATABASE_URL`` when ``None``) into a SQLAlchemy URL.

    ``postgres://`` (Heroku, many PaaS) is read as ``postgresql://``, which
    SQLAlchemy 2.1 drives with psycopg 3.

    Raises:
        ConfigurationError: no URL given and ``DATABASE_URL`` unset, or the URL
            cannot be parsed (the message never repeats a password).
    """
    import_optional("sqlalchemy", extra="db")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if url is None:
        url = os.environ.get(DATABASE_URL_VARIABLE) or None
        if url is None:
            raise ConfigurationError(
                f"no database URL: pass one or set {DATABASE_URL_VARIABLE}, "
                "e.g. postgresql+psycopg://app@db.internal:5432/app"
            )
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        # Not even redact_url(): an unparseable URL may hide its password anywhere.
        raise ConfigurationError(
            "cannot parse the database URL (not shown: it may hold a password); "
            "expected dialect[+driver]://user:password@host:port/database"
        ) from None
    if parsed.drivername in ("postgres", "postgres+psycopg"):
        parsed = parsed.set(drivername=parsed.drivername.replace("postgres", "postgresql", 1))
    return parsed


def _is_memory_sqlite(url: URL) -> bool:
    database = url.database or ""
    return database in ("", ":memory:") or url.query.get("mode") == "memory"


def _check_driver(url: URL) -> None:
    """Fail with the install line when the URL's driver is a backend_kit extra."""
    if url.get_backend_name() == "postgresql" and url.get_driver_name() == "psycopg":
        import_optional("psycopg", extra="postgres")


def _engine_arguments(
    url: URL,
    *,
    is_async: bool,
    pool_size: int,
    max_overflow: int,
    pool_timeout: float,
    pool_recycle: int,
    pool_pre_ping: bool,
    engine_kwargs: dict[str, Any],
) -> tuple[dict[str, Any], int | None]:
    """Engine keyword arguments and the pool's connection limit (None: not bounded/known)."""
    from backend_kit.db import _pool

    if pool_size < 0 or max_overflow < -1 or pool_timeout < 0:
        raise ConfigurationError(
            "pool_size must be >= 0, max_overflow >= -1 (-1: unbounded), pool_timeout >= 0"
        )
    arguments = dict(engine_kwargs)
    # SQLAlchemy's error text and echo log list bound values unless hidden:
    # a failed INSERT would otherwise carry a password hash into a log line.
    arguments.setdefault("hide_parameters", True)
    user_pool = arguments.get("poolclass")
    if url.get_backend_name() == "sqlite" and _is_memory_sqlite(url) and user_pool is None:
        # One in-memory database lives in one connection: share it (StaticPool)
        # across threads, and never recycle it (that would drop the database).
        connect_args = dict(arguments.get("connect_args") or {})
        connect_args.setdefault("check_same_thread", False)
        arguments["connect_args"] = connect_args
        arguments["poolclass"] = _pool.ObservedStaticPool
        return arguments, None

    queue_pool: type[Any] = (
        _pool.ObservedAsyncAdaptedQueuePool if is_async else _pool.ObservedQueuePool
    )
    poolclass = user_pool if user_pool is not None else queue_pool
    arguments["poolclass"] = poolclass
    arguments.setdefault("pool_recycle", pool_recycle)
    arguments.setdefault("pool_pre_ping", pool_pre_ping)
    from sqlalchemy.pool import QueuePool

    if isinstance(poolclass, type) and issubclass(poolclass, QueuePool):
        arguments.setdefault("pool_size", pool_size)
        arguments.setdefault("max_overflow", max_overflow)
        arguments.setdefault("pool_timeout", pool_timeout)
        size, overflow = arguments["pool_size"], arguments["max_overflow"]
        limit = None if overflow < 0 or size == 0 else size + overflow
        return arguments, limit
    return arguments, None


def _as_hooks(on_slow_query: SlowQueryHook | Iterable[SlowQueryHook] | None) -> list[SlowQueryHook]:
    if on_slow_query is None:
        return []
    if callable(on_slow_query):
        return [on_slow_query]
    return list(on_slow_query)


def _instrument(
    sync_engine: Engine,
    *,
    name: str,
    pool_limit: int | None,
    slow_query_threshold: float | None,
    on_slow_query: SlowQueryHook | Iterable[SlowQueryHook] | None,
    reveal_parameters: bool,
    check_server_limits: bool,
    slow_query_events: EventStyle,
) -> None:
    from backend_kit.db import _pool

    remember_engine_name(sync_engine, name)
    stats = _pool.stats_of(sync_engine.pool)
    if stats is not None:
        stats.engine_name = name
    _pool.install_pool_events(
        sync_engine, pool_limit=pool_limit, check_server_limits=check_server_limits
    )
    if slow_query_threshold is not None:
        listener = SlowQueryListener(
            slow_query_threshold,
            _as_hooks(on_slow_query),
            reveal_parameters=reveal_parameters,
            events=slow_query_events,
        )
        listener.attach(sync_engine, name=name)


def _create(
    create: Callable[..., Any],
    url: str | URL | None,
    *,
    is_async: bool,
    pool_size: int,
    max_overflow: int,
    pool_timeout: float,
    pool_recycle: int,
    pool_pre_ping: bool,
    slow_query_threshold: float | None,
    on_slow_query: SlowQueryHook | Iterable[SlowQueryHook] | None,
    name: str | None,
    reveal_parameters: bool,
    check_server_limits: bool,
    slow_query_events: EventStyle,
    engine_kwargs: dict[str, Any],
) -> Any:
    resolved = resolve_database_url(url)
    if is_async and resolved.drivername == "sqlite":
        # pysqlite has no asyncio flavour; aiosqlite is SQLAlchemy's async SQLite driver.
        resolved = resolved.set(drivername="sqlite+aiosqlite")
    _check_driver(resolved)
    if slow_query_threshold is not None and slow_query_threshold < 0:
        raise ConfigurationError(
            f"slow_query_threshold must be >= 0 seconds or None, got {slow_query_threshold}"
        )
    if slow_query_events not in ("execute", "cursor"):
        raise ConfigurationError(
            f"slow_query_events must be 'execute' or 'cursor', got {slow_query_events!r}"
        )
    arguments, pool_limit = _engine_arguments(
        resolved,
        is_async=is_async,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_recycle=pool_recycle,
        pool_pre_ping=pool_pre_ping,
        engine_kwargs=engine_kwargs,
    )
    engine = create(resolved, **arguments)
    _instrument(
        getattr(engine, "sync_engine", engine),
        name=name or default_engine_name(resolved),
        pool_limit=pool_limit,
        slow_query_threshold=slow_query_threshold,
        on_slow_query=on_slow_query,
        reveal_parameters=reveal_parameters,
        check_server_limits=check_server_limits,
        slow_query_events=slow_query_events,
    )
    return engine


def create_pooled_engine(
    url: str | URL | None = None,
    *,
    pool_size: int = 20,
    max_overflow: int = 30,
    pool_timeout: float = 30,
    pool_recycle: int = 3600,
    pool_pre_ping: bool = True,
    slow_query_threshold: float | None = 0.1,
    on_slow_query: SlowQueryHook | Iterable[SlowQueryHook] | None = None,
    name: str | None = None,
    reveal_parameters: bool = False,
    check_server_limits: bool = True,
    slow_query_events: EventStyle = "execute",
    **engine_kwargs: Any,
) -> Engine:
    """Create a pooled SQLAlchemy :class:`~sqlalchemy.engine.Engine` that reports slow queries.

    Args:
        url: A URL string, a :class:`sqlalchemy.URL`, or ``None`` to read
            ``DATABASE_URL``. ``postgres://`` is accepted as ``postgresql://``.
        pool_size: Connections kept open (default 20).
        max_overflow: Extra connections under load, closed when returned
            (default 30; -1 for unbounded). ``pool_size + max_overflow`` is the
            most this process opens: times the number of processes, it must stay
            within the server's ``max_connections``.
        pool_timeout: Seconds to wait for a free connection before
            :class:`~backend_kit.errors.PoolExhaustedError` (default 30).
        pool_recycle: Seconds after which a connection is replaced (default 3600).
        pool_pre_ping: Test each connection on checkout and replace it
            transparently when the server dropped it (default True).
        slow_query_threshold: Seconds above which a statement is logged and
            passed to the hooks (default 0.1). ``None`` installs no listener.
        on_slow_query: A hook, or several, called with each :class:`SlowQuery`.
        name: Engine name in records, errors and pings (default
            ``dialect://host:port/database``, never credentials).
        reveal_parameters: Show bound values in slow-query reports; secret-looking
            names and values stay masked (default False: names only).
        check_server_limits: On the first connection, read PostgreSQL's
            ``max_connections`` and warn when ``pool_size + max_overflow``
            exceeds it (default True).
        slow_query_events: How statements are timed: ``"execute"`` (default,
            the dialect's execute events: about 1 µs a query) or ``"cursor"``
            (a ``before/after_cursor_execute`` pair: 4-7 µs a query). See
            :class:`SlowQueryListener`.
        **engine_kwargs: Passed to :func:`sqlalchemy.create_engine` (``echo``,
            ``connect_args``, ``poolclass``...). ``hide_parameters`` defaults
            to True here: driver errors never list bound values.

    SQLite: an in-memory URL (``sqlite://``) gets a ``StaticPool`` (one
    connection shared by all threads, ``check_same_thread=False``, never
    recycled) so every session sees the same database; pool sizes do not
    apply. A file database gets the queue pool like any server.

    Raises:
        ConfigurationError: no URL, an unparseable URL, or a negative size/threshold.
        MissingDependencyError: SQLAlchemy (extra ``db``) or psycopg (extra
            ``postgres``) is not installed.
    """
    import_optional("sqlalchemy", extra="db")
    from sqlalchemy import create_engine

    engine: Engine = _create(
        create_engine,
        url,
        is_async=False,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_recycle=pool_recycle,
        pool_pre_ping=pool_pre_ping,
        slow_query_threshold=slow_query_threshold,
        on_slow_query=on_slow_query,
        name=name,
        reveal_parameters=reveal_parameters,
        check_server_limits=check_server_limits,
        slow_query_events=slow_query_events,
        engine_kwargs=engine_kwargs,
    )
    return engine


def create_async_pooled_engine(
    url: str | URL | None = None,
    *,
    pool_size: int = 20,
    max_overflow: int = 30,
    pool_timeout: float = 30,
    pool_recycle: int = 3600,
    pool_pre_ping: bool = True,
    slow_query_threshold: float | None = 0.1,
    on_slow_query: SlowQueryHook | Iterable[SlowQueryHook] | None = None,
    name: str | None = None,
    reveal_parameters: bool = False,
    check_server_limits: bool = True,
    slow_query_events: EventStyle = "execute",
    **engine_kwargs: Any,
) -> AsyncEngine:
    """The asyncio twin of :func:`create_pooled_engine`: returns an :class:`~sqlalchemy.ext.asyncio.AsyncEngine`.

    Same arguments and behaviour. The pool is an ``AsyncAdaptedQueuePool``
    (a thread-locking ``QueuePool`` would block the event loop), and the
    slow-query listener sits on ``engine.sync_engine``, where SQLAlchemy
    fires execution events for async engines. The URL needs an async driver:
    ``postgresql://`` / ``postgresql+psycopg://`` (psycopg 3 serves both), or
    SQLite through ``aiosqlite`` (install it; a plain ``sqlite://`` URL is
    read as ``sqlite+aiosqlite://``).

    Raises:
        ConfigurationError: no URL, an unparseable URL, or a negative size/threshold.
        MissingDependencyError: SQLAlchemy (extra ``db``) or psycopg (extra
            ``postgres``) is not installed.
    """
    import_optional("sqlalchemy", extra="db")
    from sqlalchemy.ext.asyncio import create_async_engine

    engine: AsyncEngine = _create(
        create_async_engine,
        url,
        is_async=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        pool_recycle=pool_recycle,
        pool_pre_ping=pool_pre_ping,
        slow_query_threshold=slow_query_threshold,
        on_slow_query=on_slow_query,
        name=name,
        reveal_parameters=reveal_parameters,
        check_server_limits=check_server_limits,
        slow_query_events=slow_query_events,
        engine_kwargs=engine_kwargs,
    )
    return engine
