"""The extension points of the cache: backends, serializers and hooks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "CacheBackend",
    "CacheEvent",
    "CacheHooks",
    "LockingCacheBackend",
    "Outcome",
    "Serializer",
]


@runtime_checkable
class CacheBackend(Protocol):
    """Where cached bytes live. Sync and async halves of the same store.

    Every method raises :class:`~backend_kit.errors.CacheBackendError` when
    the store cannot be reached (never a driver exception); the manager turns
    that into a call of the wrapped function (fail open). Keys are ``str``;
    values are opaque ``bytes``; ``ttl`` is in seconds (> 0).
    """

    def get(self, key: str) -> bytes | None:
        """The value stored under ``key``, or ``None`` when there is none (or it expired)."""
        ...

    async def aget(self, key: str) -> bytes | None:
        """Async :meth:`get`."""
        ...

    def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing any value."""
        ...

    async def aset(self, key: str, value: bytes, ttl: float) -> None:
        """Async :meth:`set`."""
        ...

    def delete(self, *keys: str) -> int:
        """Remove ``keys``; return how many existed."""
        ...

    async def adelete(self, *keys: str) -> int:
        """Async :meth:`delete`."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix`` (incrementally, never blocking the store)."""
        ...

    async def adelete_prefix(self, prefix: str) -> int:
        """Async :meth:`delete_prefix`."""
        ...

    def ping(self) -> bool:
        """True when the store answers."""
        ...

    async def aping(self) -> bool:
        """Async :meth:`ping`."""
        ...

    def close(self) -> None:
        """Release connections. Safe to call twice."""
        ...

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        ...


@runtime_checkable
class LockingCacheBackend(CacheBackend, Protocol):
    """A backend that can also hold a short lock shared by every process (``lock=True``).

    The lock protects one computation: the holder computes, stores, then
    :meth:`unlock` releases the lock and wakes the waiters; a waiter calls
    :meth:`wait_for_value` and gets the stored value, or ``None`` after
    ``max_wait`` seconds (then it computes anyway).
    """

    def lock(self, name: str, ttl: float) -> str | None:
        """Take the lock ``name`` for at most ``ttl`` seconds: a token, or ``None`` if held."""
        ...

    async def alock(self, name: str, ttl: float) -> str | None:
        """Async :meth:`lock`."""
        ...

    def unlock(self, name: str, token: str) -> None:
        """Release the lock if ``token`` still holds it, and wake every waiter."""
        ...

    async def aunlock(self, name: str, token: str) -> None:
        """Async :meth:`unlock`."""
        ...

    def wait_for_value(self, key: str, lock_name: str, max_wait: float) -> bytes | None:
        """Wait (bounded, never busy) until ``lock_name`` is released; return ``key``'s value."""
        ...

    async def await_for_value(self, key: str, lock_name: str, max_wait: float) -> bytes | None:
        """Async :meth:`wait_for_value`."""
        ...


class Serializer(Protocol):
    """Turns results into bytes and back.

    ``dumps`` raises ``TypeError`` or ``ValueError`` for a value it cannot
    store faithfully (the manager then returns the result uncached);
    ``loads`` raises ``ValueError`` (or ``TypeError``) for bytes it did not
    produce (the manager then treats the entry as a miss).
    """

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


Outcome = Literal["hit", "miss", "joined", "bypass"]
"""How a call was served: from the cache; computed here; by awaiting another
caller's computation (stampede protection); or computed with the cache
skipped because the circuit breaker in front of the backend is open (the
cool-down after a failure) or half-open with its trial call in flight."""


@dataclass(frozen=True, slots=True)
class CacheEvent:
    """One cached call (or one backend failure), as reported to :class:`CacheHooks`."""

    function: str
    """``module.qualname`` of the decorated function."""
    key: str
    """The cache key of the call."""
    outcome: Outcome | Literal["error"]
    """What happened; ``"error"`` for a backend failure."""
    duration: float
    """Seconds from the call to its result (for ``"error"``: 0.0)."""
    error: BaseException | None = None
    """The backend error, for ``"error"`` events."""


class CacheHooks(Protocol):
    """Called on every cached call, for feeding metrics (Prometheus, OpenTelemetry...).

    Subclass it and override what you need; the defaults do nothing. A hook
    runs inline on the caller's path, so keep it quick; an exception it raises
    is logged and never reaches the caller.
    """

    def on_hit(self, event: CacheEvent) -> None:
        """A call served from the cache (``hit``)."""
        return None  # noqa: RET501 - a real (do-nothing) default, not an abstract method

    def on_miss(self, event: CacheEvent) -> None:
        """A call that computed its result (``miss``, ``joined`` or ``bypass``)."""
        return None  # noqa: RET501 - a real (do-nothing) default, not an abstract method

    def on_error(self, event: CacheEvent) -> None:
        """The backend failed (the call still returned: the cache fails open)."""
        return None  # noqa: RET501 - a real (do-nothing) default, not an abstract method
