"""Pool classes that measure checkout waits and turn exhaustion into PoolExhaustedError.

This module imports SQLAlchemy at import time; ``backend_kit.db`` imports it
only inside :func:`create_pooled_engine` and friends.

SQLAlchemy has no pool event for "a caller started waiting", so checkout
waits are measured by the pool class itself, around the public
``Pool.connect()``: the figure is what a caller waits for a usable
connection (a free slot, a new connection when one is opened, and the
pre-ping). Connects and invalidations are counted from pool events.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any, Self, cast

from backend_kit._optional import import_optional

import_optional("sqlalchemy", extra="db")

from sqlalchemy import event  # noqa: E402 - after the extra check, on purpose
from sqlalchemy import exc as sa_exc  # noqa: E402
from sqlalchemy.pool import (  # noqa: E402
    AsyncAdaptedQueuePool,
    Pool,
    PoolProxiedConnection,
    QueuePool,
    StaticPool,
)

from backend_kit.errors import PoolExhaustedError  # noqa: E402

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import ConnectionPoolEntry

__all__ = [
    "ObservedAsyncAdaptedQueuePool",
    "ObservedQueuePool",
    "ObservedStaticPool",
    "PoolStats",
    "install_pool_events",
    "stats_of",
]

logger = logging.getLogger("backend_kit.db")

WAIT_SAMPLES = 1024


class PoolStats:
    """Counters and recent checkout waits of one pool (shared across ``recreate()``)."""

    __slots__ = (
        "checkouts",
        "connects",
        "engine_name",
        "exhausted",
        "invalidations",
        "lock",
        "server_max_connections",
        "waits",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waits: deque[float] = deque(maxlen=WAIT_SAMPLES)
        self.checkouts = 0
        self.exhausted = 0
        self.connects = 0
        self.invalidations = 0
        self.server_max_connections: int | None = None
        self.engine_name = ""


def _exhausted_message(pool: Pool, stats: PoolStats) -> str:
    if isinstance(pool, QueuePool):
        size = pool.size()
        max_overflow = pool._max_overflow  # no public accessor for max_overflow
        timeout = pool.timeout()
        limit = size + max_overflow
        return (
            f"no database connection became free within pool_timeout={timeout:g} s: "
            f"{'the only connection' if limit == 1 else f'all {limit} connections'} "
            f"of {stats.engine_name or 'the engine'} "
            f"(pool_size={size} + max_overflow={max_overflow}) {'is' if limit == 1 else 'are'} "
            "checked out. Return connections "
            "sooner (a session held across slow work, or never closed), raise pool_size or "
            "max_overflow (connections per process x processes must stay within the server's "
            "max_connections), or raise pool_timeout."
        )
    return f"no database connection became free in time on {stats.engine_name or 'the engine'}"


def _timed_connect(
    pool: Pool, stats: PoolStats, connect: Callable[[], PoolProxiedConnection]
) -> PoolProxiedConnection:
    started = perf_counter()
    try:
        connection = connect()
    except sa_exc.TimeoutError as exc:
        with stats.lock:
            stats.exhausted += 1
        raise PoolExhaustedError(_exhausted_message(pool, stats)) from exc
    waited = perf_counter() - started
    with stats.lock:
        stats.checkouts += 1
        stats.waits.append(waited)
    return connection


class _ObservedPool(Pool):
    """Mixin for a SQLAlchemy pool: measures checkout waits and raises PoolExhaustedError.

    Put it first among the bases (``class X(_ObservedPool, QueuePool)``) so its
    ``connect`` wraps the concrete pool's. ``recreate`` (after an invalidation)
    builds the same class again; the stats carry over to the new pool.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.backend_kit_stats = PoolStats()

    def connect(self) -> PoolProxiedConnection:
        return _timed_connect(self, self.backend_kit_stats, super().connect)

    def recreate(self) -> Self:
        pool = cast("Self", super().recreate())
        pool.backend_kit_stats = self.backend_kit_stats
        return pool


class ObservedQueuePool(_ObservedPool, QueuePool):
    """:class:`~sqlalchemy.pool.QueuePool` that measures waits and raises PoolExhaustedError."""

    # Keep SQLAlchemy's pool log names (echo_pool, "sqlalchemy.pool" logging config).
    _sqla_logger_namespace = "sqlalchemy.pool.impl.QueuePool"


class ObservedAsyncAdaptedQueuePool(_ObservedPool, AsyncAdaptedQueuePool):
    """:class:`~sqlalchemy.pool.AsyncAdaptedQueuePool` with waits and PoolExhaustedError."""

    _sqla_logger_namespace = "sqlalchemy.pool.impl.AsyncAdaptedQueuePool"


class ObservedStaticPool(_ObservedPool, StaticPool):
    """:class:`~sqlalchemy.pool.StaticPool` (one shared connection) with wait figures."""

    _sqla_logger_namespace = "sqlalchemy.pool.impl.StaticPool"


def stats_of(pool: Pool) -> PoolStats | None:
    """The stats of a pool made by backend_kit, else ``None``."""
    stats: PoolStats | None = getattr(pool, "backend_kit_stats", None)
    return stats


# ----------------------------------------------------------- server limits
_PG_LIMITS = (
    "SELECT current_setting('max_connections')::int,"
    " current_setting('superuser_reserved_connections')::int,"
    " coalesce(current_setting('reserved_connections', true), '0')::int,"
    " (SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user)"
)


def _postgres_connection_limit(dbapi_connection: Any) -> int | None:
    """Connections a non-superuser role can open on this server (None when unknown)."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(_PG_LIMITS)
        row = cursor.fetchone()
    finally:
        cursor.close()
    if row is None:
        return None
    max_connections, superuser_reserved, reserved, role_limit = row
    available = int(max_connections) - int(superuser_reserved) - int(reserved or 0)
    if role_limit is not None and int(role_limit) >= 0:
        available = min(available, int(role_limit))
    return available


def install_pool_events(
    engine: Engine, *, pool_limit: int | None, check_server_limits: bool
) -> None:
    """Count connects and invalidations; check the server's connection limit on first connect.

    ``pool_limit`` is ``pool_size + max_overflow`` (``None``: unbounded or not a
    queue pool). The check runs once, on the first connection the pool opens,
    so creating an engine never touches the network.
    """
    pool = engine.pool
    stats = stats_of(pool)
    if stats is None:
        return

    def on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        with stats.lock:
            stats.connects += 1

    def on_invalidate(dbapi_connection: Any, record: ConnectionPoolEntry, error: Any) -> None:
        with stats.lock:
            stats.invalidations += 1

    event.listen(pool, "connect", on_connect)
    event.listen(pool, "invalidate", on_invalidate)
    event.listen(pool, "soft_invalidate", on_invalidate)

    if not check_server_limits or engine.dialect.name != "postgresql":
        return
    dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error

    def on_first_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        try:
            available = _postgres_connection_limit(dbapi_connection)
        except dbapi_error as exc:
            logger.info(
                "could not read the server's connection limit (%s); pool size not checked",
                type(exc).__name__,
            )
            available = None
        finally:
            # The query opened a transaction on the raw connection; end it
            # before SQLAlchemy hands the connection out.
            dbapi_connection.rollback()
        stats.server_max_connections = available
        if available is None or pool_limit is None:
            return
        if pool_limit > available:
            logger.warning(
                "pool_size + max_overflow = %d for %s exceeds the %d connections the server "
                "accepts (max_connections minus reserved slots): even one process can fail "
                "to connect under load. Lower pool_size/max_overflow or raise max_connections.",
                pool_limit,
                stats.engine_name,
                available,
            )
        else:
            logger.info(
                "%s: pool allows %d connections; the server accepts %d, so at most %d "
                "processes with this pool fit (connections per process x processes <= limit)",
                stats.engine_name,
                pool_limit,
                available,
                available // pool_limit if pool_limit else available,
            )

    event.listen(pool, "first_connect", on_first_connect)
