"""The plain payloads of ``backend_kit.db``: slow-query records, pool status, ping results.

Nothing here imports SQLAlchemy, so ``import backend_kit.db`` stays free of extras.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = ["ExecuteStyle", "PingResult", "PoolStatus", "SlowQuery", "SlowQueryHook"]

ExecuteStyle = Literal["execute", "executemany", "insertmanyvalues"]


@dataclass(frozen=True, slots=True)
class SlowQuery:
    """One statement that took longer than the threshold.

    Safe to log or export as is: ``statement`` has its literals replaced by
    ``?`` and ``parameters`` maps each bound parameter *name* to ``"***"``
    unless values were revealed on purpose (even then, names that look
    secret — ``password``, ``token``, ``secret``, ``api_key``… — stay masked).
    """

    duration: float
    """Wall-clock time the DBAPI ``cursor.execute()`` took, in seconds."""
    threshold: float
    """The threshold it exceeded, in seconds."""
    statement: str
    """Normalized SQL: literals replaced by ``?``, whitespace collapsed, truncated."""
    parameters: Mapping[str, str] = field(default_factory=dict)
    """Bound parameter name -> ``"***"`` (or the value's ``repr`` when revealed)."""
    executemany: bool = False
    """True for ``cursor.executemany()`` and for each "insertmanyvalues" batch."""
    execute_style: ExecuteStyle = "execute"
    """How the DBAPI was driven: one ``execute``, an ``executemany``, or an insertmanyvalues batch."""
    parameter_sets: int = 1
    """How many parameter sets the call carried (rows of an executemany)."""
    engine_name: str = ""
    """The name given to the engine (default: ``dialect://host:port/database``)."""
    error: str | None = None
    """The exception class name when the statement failed after exceeding the threshold."""

    @property
    def duration_ms(self) -> float:
        """``duration`` in milliseconds."""
        return self.duration * 1000.0


class SlowQueryHook(Protocol):
    """A callable that gets called with every :class:`SlowQuery`, after it is logged.

    Runs in the thread (or greenlet) that ran the statement, so keep it quick:
    increment a Prometheus counter, record an OpenTelemetry event, hand the
    record to a queue. An exception it raises is logged and never reaches the
    caller of the query.
    """

    def __call__(self, query: SlowQuery, /) -> None: ...


@dataclass(frozen=True, slots=True)
class PoolStatus:
    """A snapshot of an engine's connection pool (see :func:`pool_status`).

    Wait figures cover the most recent checkouts (up to 1024) and are in
    seconds; they are ``None`` before the first checkout or for pools not
    created by :func:`create_pooled_engine`.
    """

    pool_class: str
    """Name of the SQLAlchemy pool class (``QueuePool``, ``AsyncAdaptedQueuePool``, ``StaticPool``...)."""
    size: int
    """``pool_size``: connections kept open once opened."""
    max_overflow: int
    """Extra connections allowed beyond ``size`` (closed when returned)."""
    checked_out: int
    """Connections handed out right now (0 for pools that do not count them)."""
    idle: int
    """Open connections waiting in the pool."""
    overflow: int
    """Overflow connections open right now (0 when at or below ``size``)."""
    timeout: float | None
    """``pool_timeout`` in seconds, or ``None`` when the pool never waits."""
    checkouts: int = 0
    """Checkouts since the engine was created."""
    exhausted: int = 0
    """Checkouts that failed with :class:`~backend_kit.errors.PoolExhaustedError`."""
    connects: int = 0
    """New DBAPI connections opened."""
    invalidations: int = 0
    """Connections discarded as broken (disconnects, failed pre-pings)."""
    wait_p50: float | None = None
    """Median checkout wait, in seconds."""
    wait_p95: float | None = None
    """95th percentile checkout wait, in seconds."""
    wait_p99: float | None = None
    """99th percentile checkout wait, in seconds."""
    wait_max: float | None = None
    """Longest recent checkout wait, in seconds."""
    server_max_connections: int | None = None
    """Connections the server accepts for this role (PostgreSQL: ``max_connections``
    minus reserved slots), learned on the first connect; ``None`` when unknown."""

    @property
    def limit(self) -> int:
        """Most connections this pool opens at once (``size + max_overflow``; -1: unbounded)."""
        return -1 if self.max_overflow < 0 else self.size + self.max_overflow


@dataclass(frozen=True, slots=True)
class PingResult:
    """What :func:`ping` / :func:`aping` found: usable as a health-check result.

    ``bool(result)`` is ``result.ok``. ``error`` is a short, safe description
    (exception class and the driver's first line, never a parameter or password).
    """

    ok: bool
    """True when ``SELECT 1`` came back within the timeout."""
    latency: float
    """Seconds from the start of the ping to its answer (or failure)."""
    engine_name: str
    """The engine's name (``dialect://host:port/database``, no credentials)."""
    error: str | None = None
    """Why the ping failed; ``None`` when it succeeded."""

    def __bool__(self) -> bool:
        return self.ok
