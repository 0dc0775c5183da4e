"""``pool_status``: a snapshot of an engine's pool, for dashboards and health checks."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from backend_kit.db._naming import sync_engine_of
from backend_kit.db._records import PoolStatus

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["pool_status"]


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


def pool_status(engine: Engine | AsyncEngine) -> PoolStatus:
    """Size, connections in use, overflow and recent checkout waits of ``engine``'s pool.

    Works on any engine; the counters and wait percentiles are filled in for
    engines made by :func:`create_pooled_engine` /
    :func:`create_async_pooled_engine`. Cheap (no I/O): sorts at most 1024
    recent wait samples.
    """
    from sqlalchemy.pool import QueuePool

    pool: Any = sync_engine_of(engine).pool
    if isinstance(pool, QueuePool):
        size = pool.size()
        max_overflow = pool._max_overflow  # no public accessor
        checked_out = pool.checkedout()
        idle = pool.checkedin()
        overflow = max(0, pool.overflow())
        timeout: float | None = pool.timeout()
    else:
        size, max_overflow, checked_out, idle, overflow, timeout = 1, 0, 0, 0, 0, None

    stats = getattr(pool, "backend_kit_stats", None)
    if stats is None:
        return PoolStatus(
            pool_class=type(pool).__name__,
            size=size,
            max_overflow=max_overflow,
            checked_out=checked_out,
            idle=idle,
            overflow=overflow,
            timeout=timeout,
        )
    with stats.lock:
        waits = sorted(stats.waits)
        counters = (stats.checkouts, stats.exhausted, stats.connects, stats.invalidations)
    class_name = type(pool).__name__.removeprefix("Observed")
    return PoolStatus(
        pool_class=class_name,
        size=size,
        max_overflow=max_overflow,
        checked_out=checked_out,
        idle=idle,
        overflow=overflow,
        timeout=timeout,
        checkouts=counters[0],
        exhausted=counters[1],
        connects=counters[2],
        invalidations=counters[3],
        wait_p50=_percentile(waits, 0.50) if waits else None,
        wait_p95=_percentile(waits, 0.95) if waits else None,
        wait_p99=_percentile(waits, 0.99) if waits else None,
        wait_max=waits[-1] if waits else None,
        server_max_connections=stats.server_max_connections,
    )
