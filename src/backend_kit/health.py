"""Liveness and readiness: named checks run concurrently, each under its own timeout.

* **Liveness** answers "is this process alive?" and runs only the checks
  registered with ``liveness=True`` (in-process ones: a worker thread, an
  event-loop lag). It never touches a dependency: an orchestrator restarts a
  process whose liveness fails, and restarting it would not bring Redis back.
* **Readiness** answers "can this process serve?" and runs every check, so
  each dependency (``cache.aping``, ``engine``'s ``aping``, ``bus.aping``...)
  is asked in parallel.

The report follows the IETF draft "Health Check Response Format for HTTP APIs"
(``application/health+json``): ``pass``, ``warn`` or ``fail`` overall, and one
entry per check with its status and latency in milliseconds::

    health = HealthCheck(default_timeout=1.0)
    health.add("redis", cache.aping)
    health.add("search", search.aping, critical=False)   # failing -> "warn"
    report = await health.readiness()
    return JSONResponse(report.to_dict(), status_code=report.http_status,
                        media_type=report.media_type)

Imports no optional dependency.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar, TypeAlias

from backend_kit.errors import ConfigurationError

__all__ = ["CheckResult", "HealthCheck", "HealthCheckFunction", "HealthReport", "HealthStatus"]

logger = logging.getLogger("backend_kit.health")

HealthCheckFunction: TypeAlias = Callable[[], Awaitable[object] | object]
"""A check: an async or sync callable without arguments.

It passes when it returns ``None`` or a true value, fails when it raises or
returns a false value (``False``, or a result object that is false, like
``backend_kit.db``'s ``PingResult(ok=False)``), and may return a
:class:`HealthStatus` to say so itself (``HealthStatus.WARN``, for a degraded
but usable dependency). A sync check runs in a worker thread so it cannot
block the event loop.
"""


class HealthStatus(enum.StrEnum):
    """``pass`` < ``warn`` < ``fail``, as in the IETF health-check draft."""

    PASS = "pass"  # noqa: S105 - a health status, not a password
    WARN = "warn"
    FAIL = "fail"


_SEVERITY = {HealthStatus.PASS: 0, HealthStatus.WARN: 1, HealthStatus.FAIL: 2}


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one check said."""

    name: str
    status: HealthStatus
    latency: float
    """Seconds the check took (its timeout when it timed out)."""
    critical: bool
    output: str | None = None
    """Why it did not pass: ``"timed out after 0.5 s"``, an exception's class name."""

    def to_dict(self, *, at: str | None = None) -> dict[str, object]:
        """One entry of the report's ``checks`` map (IETF draft field names)."""
        entry: dict[str, object] = {
            "status": self.status.value,
            "observedValue": round(self.latency * 1000, 3),
            "observedUnit": "ms",
            "critical": self.critical,
        }
        if at is not None:
            entry["time"] = at
        if self.output is not None:
            entry["output"] = self.output
        return entry


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The outcome of a liveness or readiness run; JSON-able with :meth:`to_dict`."""

    status: HealthStatus
    """``fail`` if a critical check failed, ``warn`` if a non-critical one failed
    or a check warned, ``pass`` otherwise."""
    checks: tuple[CheckResult, ...]
    """In registration order."""
    duration: float
    """Seconds for the whole run (the slowest check, as they run concurrently)."""
    checked_at: datetime
    """When the run started (UTC)."""

    media_type: ClassVar[str] = "application/health+json"
    """The content type to answer with (IETF health-check draft)."""

    @property
    def http_status(self) -> int:
        """200 for ``pass`` and ``warn``, 503 for ``fail``."""
        return 503 if self.status is HealthStatus.FAIL else 200

    def __getitem__(self, name: str) -> CheckResult:
        """The result of the check called ``name``.

        Raises:
            KeyError: no check has that name.
        """
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def to_dict(self) -> dict[str, object]:
        """The report as the IETF draft's JSON object (only str, float, bool, list, dict)."""
        at = self.checked_at.isoformat().replace("+00:00", "Z")
        return {
            "status": self.status.value,
            "time": at,
            "duration_ms": round(self.duration * 1000, 3),
            "checks": {check.name: [check.to_dict(at=at)] for check in self.checks},
        }

    def to_json(self) -> str:
        """:meth:`to_dict` serialized."""
        return json.dumps(self.to_dict(), separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class _Registered:
    name: str
    check: HealthCheckFunction
    timeout: float
    critical: bool
    liveness: bool
    in_thread: bool


class HealthCheck:
    """A registry of named checks, run concurrently for liveness or readiness.

    Args:
        default_timeout: Seconds a check may take unless ``add`` says otherwise
            (default 1.0). A check that takes longer fails with
            ``"timed out after N s"``; the others are not held up.
    """

    def __init__(self, *, default_timeout: float = 1.0) -> None:
        if default_timeout <= 0:
            raise ConfigurationError("default_timeout must be positive")
        self._default_timeout = default_timeout
        self._checks: dict[str, _Registered] = {}

    def __len__(self) -> int:
        return len(self._checks)

    @property
    def names(self) -> tuple[str, ...]:
        """Registered check names, in registration order."""
        return tuple(self._checks)

    def add(
        self,
        name: str,
        check: HealthCheckFunction,
        *,
        timeout: float | None = None,
        critical: bool = True,
        liveness: bool = False,
        run_in_thread: bool | None = None,
    ) -> None:
        """Register ``check`` under ``name``.

        Args:
            name: Unique, shown in the report (``"redis"``, ``"postgres"``).
            check: Async or sync callable without arguments, e.g. ``cache.aping``.
            timeout: Seconds for this check (default: the registry's ``default_timeout``).
            critical: A failing critical check makes the report ``fail``; a
                failing non-critical one makes it ``warn``.
            liveness: Also run it for :meth:`liveness`. Only for in-process
                checks, never for a dependency.
            run_in_thread: Call ``check`` in a worker thread. Default: yes
                unless it is an ``async def`` (or an object with an async
                ``__call__``). Pass ``False`` for a plain function that only
                returns an awaitable and needs the running loop to make it.

        Raises:
            ConfigurationError: the name is taken or the timeout is not positive.
        """
        if name in self._checks:
            raise ConfigurationError(f"a health check named {name!r} is already registered")
        effective = self._default_timeout if timeout is None else timeout
        if effective <= 0:
            raise ConfigurationError("a health check's timeout must be positive")
        if run_in_thread is None:
            run_in_thread = not (
                inspect.iscoroutinefunction(check)
                or inspect.iscoroutinefunction(getattr(check, "__call__", None))  # noqa: B004
            )
        self._checks[name] = _Registered(name, check, effective, critical, liveness, run_in_thread)

    def remove(self, name: str) -> None:
        """Unregister ``name``.

        Raises:
            KeyError: no check has that name.
        """
        del self._checks[name]

    async def liveness(self) -> HealthReport:
        """Run the ``liveness=True`` checks only (none registered: ``pass`` at once)."""
        return await self._run([c for c in self._checks.values() if c.liveness])

    async def readiness(self) -> HealthReport:
        """Run every registered check concurrently."""
        return await self._run(list(self._checks.values()))

    async def run(self, *names: str) -> HealthReport:
        """Run the named checks only.

        Raises:
            KeyError: a name is not registered.
        """
        return await self._run([self._checks[name] for name in names])

    async def _run(self, checks: list[_Registered]) -> HealthReport:
        checked_at = datetime.now(UTC)
        started = time.perf_counter()
        results = await asyncio.gather(*(_run_one(check) for check in checks))
        duration = time.perf_counter() - started
        status = HealthStatus.PASS
        for result in results:
            effective = result.status
            if effective is HealthStatus.FAIL and not result.critical:
                effective = HealthStatus.WARN
            if _SEVERITY[effective] > _SEVERITY[status]:
                status = effective
        return HealthReport(status, tuple(results), duration, checked_at)


async def _call(check: _Registered) -> object:
    if check.in_thread:
        # A sync check (a blocking ping) runs in a thread: the timeout still
        # answers on time, though the thread itself runs on until it returns.
        outcome = await asyncio.to_thread(check.check)
    else:
        outcome = check.check()
    if inspect.isawaitable(outcome):
        outcome = await outcome
    return outcome


async def _run_one(check: _Registered) -> CheckResult:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(check.timeout):
            outcome = await _call(check)
    except TimeoutError:
        logger.warning("health check %r timed out after %g s", check.name, check.timeout)
        return CheckResult(
            check.name,
            HealthStatus.FAIL,
            time.perf_counter() - started,
            check.critical,
            f"timed out after {check.timeout:g} s",
        )
    except Exception as exc:  # noqa: BLE001 - any error of a check is that check failing
        # The report may be public: it names the error class only; the log
        # (operators only) gets the message.
        logger.warning("health check %r failed: %s: %s", check.name, type(exc).__name__, exc)
        return CheckResult(
            check.name,
            HealthStatus.FAIL,
            time.perf_counter() - started,
            check.critical,
            type(exc).__name__,
        )
    latency = time.perf_counter() - started
    if isinstance(outcome, HealthStatus):
        status = outcome
    elif outcome is None or outcome:
        status = HealthStatus.PASS
    else:
        # False, or a falsy result object such as backend_kit.db's PingResult(ok=False).
        status = HealthStatus.FAIL
        if outcome is not False:
            logger.warning("health check %r returned a failed result: %r", check.name, outcome)
    output = None if status is HealthStatus.PASS else f"check returned {status.value}"
    return CheckResult(check.name, status, latency, check.critical, output)
