"""``ping`` / ``aping``: one trivial query with a timeout, answered as a health-check result."""

from __future__ import annotations

import asyncio
import logging
import threading
from time import perf_counter
from typing import TYPE_CHECKING

from backend_kit.db._naming import engine_name
from backend_kit.db._records import PingResult
from backend_kit.errors import BackendKitError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["aping", "ping"]

logger = logging.getLogger("backend_kit.db")


def _describe_failure(exc: BaseException) -> str:
    """Exception class and the driver's first line: no SQL, parameters or traceback."""
    if isinstance(exc, BackendKitError):
        return f"{type(exc).__name__}: {exc}"
    cause = getattr(exc, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's error
    source = cause if isinstance(cause, BaseException) else exc
    first_line = (str(source).strip().splitlines() or [""])[0][:200]
    return f"{type(source).__name__}: {first_line}" if first_line else type(source).__name__


def _failed(name: str, started: float, reason: str) -> PingResult:
    logger.info("database ping failed on %s: %s", name, reason)
    return PingResult(ok=False, latency=perf_counter() - started, engine_name=name, error=reason)


def ping(engine: Engine, *, timeout: float = 5.0) -> PingResult:
    """Run ``SELECT 1`` on ``engine`` and say whether it answered within ``timeout`` seconds.

    Never raises for a database problem: a refused connection, an exhausted
    pool or a timeout come back as ``PingResult(ok=False, error=...)``. The
    query runs in a short-lived daemon thread so the timeout holds even when
    connecting hangs; a thread that overruns finishes (or fails) on its own,
    bounded by ``pool_timeout`` and the driver's connect timeout.
    """
    from sqlalchemy import select

    name = engine_name(engine)
    started = perf_counter()
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            with engine.connect() as connection:
                connection.scalar(select(1))
        except Exception as exc:  # noqa: BLE001 - every failure is an unhealthy result, reported below
            outcome.append(exc)
        else:
            outcome.append(None)

    worker = threading.Thread(target=run, name="backend_kit.db.ping", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        return _failed(name, started, f"no answer within {timeout:g} s")
    error = outcome[0]
    if error is not None:
        return _failed(name, started, _describe_failure(error))
    return PingResult(ok=True, latency=perf_counter() - started, engine_name=name)


async def aping(engine: AsyncEngine, *, timeout: float = 5.0) -> PingResult:  # noqa: ASYNC109 - the same knob as ping(), for health checks
    """Run ``SELECT 1`` on an :class:`~sqlalchemy.ext.asyncio.AsyncEngine` within ``timeout`` seconds.

    Never raises for a database problem (see :func:`ping`); cancellation of
    the calling task still propagates.
    """
    from sqlalchemy import select

    name = engine_name(engine)
    started = perf_counter()
    try:
        async with asyncio.timeout(timeout):
            async with engine.connect() as connection:
                await connection.scalar(select(1))
    except TimeoutError as exc:
        if isinstance(exc, BackendKitError):  # PoolExhaustedError is a TimeoutError too
            return _failed(name, started, _describe_failure(exc))
        return _failed(name, started, f"no answer within {timeout:g} s")
    except Exception as exc:  # noqa: BLE001 - every failure is an unhealthy result
        return _failed(name, started, _describe_failure(exc))
    return PingResult(ok=True, latency=perf_counter() - started, engine_name=name)
