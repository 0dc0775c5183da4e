"""Per-key cache of discovery answers: fresh for ``ttl``, served stale while the registry is down."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from backend_kit.errors import ConfigurationError, RegistryUnavailableError

__all__ = ["StaleWhileUnavailableCache"]

logger = logging.getLogger("backend_kit.discovery")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

LOG_INTERVAL = 10.0
"""Seconds between two log lines about one key's stale answers (the calls between are counted)."""


@dataclass(slots=True)
class _Stored(Generic[V]):
    value: V
    stored_at: float
    fresh: bool = True
    logged_at: float | None = None  # clock reading of the last stale/refused log line
    logged_serving: bool = True  # whether that line said "serving" (or "not serving")
    unlogged: int = 0  # stale answers served or refused since that line


class StaleWhileUnavailableCache(Generic[K, V]):
    """Cache of ``load(key)`` results with a freshness TTL and a staleness bound.

    - Younger than ``ttl`` seconds: served without calling ``load``.
    - Older: ``load`` runs (one call per key at a time; concurrent callers share it).
      If it raises :class:`RegistryUnavailableError`, the last good answer is
      served with a warning as long as it is younger than ``max_stale``
      seconds; past that (or with nothing cached) the error propagates.
      Those log lines come at most once per key every :data:`LOG_INTERVAL`
      seconds (and when serving turns into refusing), with the number of
      calls since the previous one: with a circuit breaker open in front of
      the registry, stale answers are served at the callers' rate.

    ``ttl=0`` turns freshness caching off but keeps the stale fallback.
    """

    def __init__(
        self,
        *,
        ttl: float,
        max_stale: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl < 0 or max_stale < 0:
            raise ConfigurationError("cache ttl and max_stale must not be negative")
        if max_stale < ttl:
            raise ConfigurationError("max_stale must be at least the cache ttl")
        self.ttl = ttl
        self.max_stale = max_stale
        self._clock = clock
        self._stored: dict[K, _Stored[V]] = {}
        self._inflight: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value for ``key`` if fresh, else ``await load()`` (see the class doc)."""
        while True:
            stored = self._stored.get(key)
            if stored is not None and stored.fresh and self._clock() - stored.stored_at < self.ttl:
                return stored.value
            pending = self._inflight.get(key)
            if pending is None:
                break
            try:
                # shield: this caller being cancelled must not cancel the shared load.
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if pending.cancelled() and task is not None and not task.cancelling():
                    continue  # the loading caller was cancelled, not this one: look again
                raise
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await self._load(key, load)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark it retrieved: this caller raises it below
            raise
        finally:
            del self._inflight[key]
        future.set_result(value)
        return value

    async def _load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        try:
            value = await load()
        except RegistryUnavailableError as exc:
            return self._stale_or_raise(key, exc)
        self.put(key, value)
        return value

    def get_blocking(self, key: K, load: Callable[[], V]) -> V:
        """:meth:`get` for blocking code: same freshness and staleness rules.

        Concurrent callers in different threads may each call ``load``; the
        last answer stored wins.
        """
        stored = self._stored.get(key)
        if stored is not None and stored.fresh and self._clock() - stored.stored_at < self.ttl:
            return stored.value
        try:
            value = load()
        except RegistryUnavailableError as exc:
            return self._stale_or_raise(key, exc)
        self.put(key, value)
        return value

    def _stale_or_raise(self, key: K, error: RegistryUnavailableError) -> V:
        """The last good answer if young enough, else ``error`` raised."""
        stored = self._stored.get(key)
        if stored is None:
            raise error
        now = self._clock()
        age = now - stored.stored_at
        stale_ok = age <= self.max_stale
        if (
            stored.logged_at is not None
            and stored.logged_serving == stale_ok
            and now - stored.logged_at < LOG_INTERVAL
        ):
            stored.unlogged += 1
        else:
            more = f" ({stored.unlogged} more since the last line)" if stored.unlogged else ""
            stored.logged_at, stored.logged_serving, stored.unlogged = now, stale_ok, 0
            if stale_ok:
                logger.warning(
                    "registry unavailable: serving the cached answer for %r, %.1f s old "
                    "(bound %.1f s)%s",
                    key,
                    age,
                    self.max_stale,
                    more,
                )
            else:
                logger.error(
                    "registry unavailable and the cached answer for %r is %.1f s old "
                    "(bound %.1f s): not serving it%s",
                    key,
                    age,
                    self.max_stale,
                    more,
                )
        if not stale_ok:
            raise error
        return stored.value

    def put(self, key: K, value: V) -> None:
        """Store a good answer (``watch`` feeds the cache this way too)."""
        self._stored[key] = _Stored(value, self._clock())

    def invalidate(self, predicate: Callable[[K], bool] | None = None) -> None:
        """Make entries whose key matches ``predicate`` (all without one) load again.

        They stay available as the stale fallback: after a write of ours the
        old answer is out of date, but still better than none while the
        registry is down.
        """
        for key, stored in self._stored.items():
            if predicate is None or predicate(key):
                stored.fresh = False
