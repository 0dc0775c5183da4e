"""``python -m backend_kit demo``: every component working, on embedded defaults.

Each part is a coroutine taking the :class:`Report`. A part uses the real
service when its environment variable is set (``REDIS_URL``, ``DATABASE_URL``,
``AMQP_URL``, ...) and says so; otherwise it runs on memory backends and
SQLite, so the demo needs no server at all.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO

from backend_kit._demo import (
    cache,
    db,
    discovery,
    environment,
    events,
    resilience,
    security,
    users,
)
from backend_kit._demo._report import Report
from backend_kit.errors import BackendKitError

__all__ = ["PARTS", "run_demo"]

DemoPart = Callable[[Report], Awaitable[None]]

# In the order a reader meets the components.
PARTS: tuple[tuple[str, DemoPart], ...] = (
    ("environment", environment.run),
    ("cache", cache.run),
    ("security", security.run),
    ("db", db.run),
    ("users", users.run),
    ("events", events.run),
    ("discovery", discovery.run),
    ("resilience", resilience.run),
)


async def _run_parts(report: Report) -> None:
    for title, part in PARTS:
        try:
            await part(report)
        except BackendKitError as exc:
            report.fail(title, str(exc))
        except ModuleNotFoundError as exc:
            # A part that shows a dependency at work (bcrypt, SQLAlchemy) needs its extra.
            report.fail(
                title,
                f"needs {exc.name or 'an optional dependency'}, which is not installed: "
                "pip install 'backend-kit[all]'",
            )
        except Exception as exc:  # noqa: BLE001 - the demo reports every failure and goes on
            report.fail(title, f"{type(exc).__name__}: {exc}")


def run_demo(out: TextIO | None = None) -> int:
    """Run every demo part, print the report, return the process exit status."""
    stream = out if out is not None else sys.stdout
    # The demo shows its own report; library warnings (slow query, cache
    # fallback) are printed in line with it, so a reader sees them where they
    # happen, as a user's log would show them.
    logging.basicConfig(
        level=logging.WARNING,
        format="    [log] %(name)s %(levelname)s: %(message)s",
        stream=stream,
    )
    report = Report(stream)
    stream.write(
        "backend-kit demo: each part below runs for real, on embedded defaults unless a service URL is set\n"
    )
    asyncio.run(_run_parts(report))
    if report.failures:
        stream.write(f"\n{len(report.failures)} part(s) failed: {', '.join(report.failures)}\n")
        return 1
    stream.write(f"\nall {len(PARTS)} parts ran.\n")
    return 0
