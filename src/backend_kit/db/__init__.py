"""Pooled SQLAlchemy engines that report slow queries, with pool health and metrics.

``import backend_kit.db`` imports no SQLAlchemy: the factories import it when
called (extra ``db``; PostgreSQL through psycopg 3 needs extra ``postgres``).

    >>> from backend_kit.db import create_pooled_engine, pool_status
    >>> engine = create_pooled_engine("sqlite://", slow_query_threshold=0.5)
    >>> pool_status(engine).pool_class
    'StaticPool'
    >>> engine.dispose()
"""

from __future__ import annotations

from backend_kit.db._engine import create_async_pooled_engine, create_pooled_engine
from backend_kit.db._listener import SlowQueryListener
from backend_kit.db._ping import aping, ping
from backend_kit.db._records import ExecuteStyle, PingResult, PoolStatus, SlowQuery, SlowQueryHook
from backend_kit.db._status import pool_status
from backend_kit.errors import DatabaseError, PoolExhaustedError

__all__ = [
    "DatabaseError",
    "ExecuteStyle",
    "PingResult",
    "PoolExhaustedError",
    "PoolStatus",
    "SlowQuery",
    "SlowQueryHook",
    "SlowQueryListener",
    "aping",
    "create_async_pooled_engine",
    "create_pooled_engine",
    "ping",
    "pool_status",
]
