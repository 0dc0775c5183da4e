"""CacheManager: owns a backend and hands out ``cache_result`` decorators."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Coroutine, Iterable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar, overload
from urllib.parse import parse_qs, urlsplit

from backend_kit._closing import Closeable
from backend_kit._redact import redact_url
from backend_kit.cache._guard import BackendGuard
from backend_kit.cache._keys import KeyBuilder
from backend_kit.cache._memory import MemoryCache
from backend_kit.cache._protocols import CacheBackend, CacheHooks, LockingCacheBackend, Serializer
from backend_kit.cache._serializers import JsonSerializer
from backend_kit.cache._stats import CacheStats, Counters
from backend_kit.cache._wrappers import AsyncCachedFunction, CachedFunction, FunctionCache
from backend_kit.errors import ConfigurationError
from backend_kit.resilience import CircuitBreaker

__all__ = ["CacheDecorator", "CacheManager"]

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("backend_kit.cache")

Seconds = float | int | timedelta

DEFAULT_COOLDOWN = 5.0
"""Seconds a failed backend is skipped when neither ``cooldown`` nor ``breaker`` is given."""


def _seconds(value: Seconds, what: str) -> float:
    """``value`` in seconds, refusing booleans and non-positive numbers (``ValueError``)."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a number of seconds or a timedelta, not a bool")
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not seconds > 0:  # also refuses NaN
        raise ValueError(f"{what} must be > 0 seconds, got {value!r}")
    return seconds


class CacheDecorator:
    """What ``manager.cache_result(...)`` returns: apply it to a function or method."""

    def __init__(self, build: Callable[[Any], Any]) -> None:
        self._build = build

    @overload
    def __call__(  # type: ignore[overload-overlap]  # a coroutine function is also a Callable
        self, func: Callable[P, Coroutine[Any, Any, R]]
    ) -> AsyncCachedFunction[P, R]: ...
    @overload
    def __call__(self, func: Callable[P, R]) -> CachedFunction[P, R]: ...
    def __call__(self, func: Any) -> Any:
        return self._build(func)


class CacheManager(Closeable):
    """Caches function results in a backend (Redis, memory, your own).

    Args:
        backend: where values live: :class:`MemoryCache`,
            :class:`~backend_kit.cache.redis.RedisCache`, or any
            :class:`CacheBackend`.
        namespace: first part of every key (default ``"cache"``); :meth:`clear`
            deletes exactly this namespace.
        default_ttl: lifetime of entries when ``cache_result`` gets no ``ttl``
            (seconds or ``timedelta``; default 300 s).
        serializer: how values become bytes (default :class:`JsonSerializer`:
            orjson when installed). Never pickle unless you pass
            :class:`PickleSerializer`, which is HMAC-signed.
        hooks: receives an event per call (hit, miss, error, with latency).
        cooldown: seconds to stop using a backend after it failed (default
            5.0); meanwhile calls run the function directly, costing
            microseconds instead of a timeout. Then one call probes the
            backend; caching resumes when it answers. ``0`` probes on the
            very next call. It is the ``reset_timeout`` of the manager's
            circuit breaker, which opens at the first failure.
        breaker: your own :class:`~backend_kit.resilience.CircuitBreaker`
            in front of the backend instead (for example one that opens after
            3 failures, or a ratio, or with ``on_state_change`` hooks for
            metrics); give either ``cooldown`` or ``breaker``.

    Raises:
        ValueError: an empty namespace, a non-positive ``default_ttl``, a
            negative ``cooldown``, or both ``cooldown`` and ``breaker``.
    """

    def __init__(
        self,
        backend: CacheBackend,
        *,
        namespace: str = "cache",
        default_ttl: Seconds = 300.0,
        serializer: Serializer | None = None,
        hooks: CacheHooks | None = None,
        cooldown: float | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if not namespace:
            raise ValueError("namespace must not be empty")
        if breaker is None:
            reset_timeout = DEFAULT_COOLDOWN if cooldown is None else float(cooldown)
            if not reset_timeout >= 0:  # also refuses NaN
                raise ValueError("cooldown must be >= 0 seconds")
            breaker = CircuitBreaker(
                f"cache {namespace!r}",
                failure_threshold=1,
                reset_timeout=reset_timeout,
                half_open_max_calls=1,
                # The cache logs failures itself, with the operation and the
                # error, once per interval: the breaker's own lines would
                # report every cool-down twice.
                log_state_changes=False,
            )
        elif cooldown is not None:
            raise ValueError(
                "give either cooldown= or breaker=, not both (cooldown is the breaker's reset_timeout)"
            )
        self._backend = backend
        self._namespace = namespace
        self._default_ttl = _seconds(default_ttl, "default_ttl")
        self._serializer: Serializer = serializer if serializer is not None else JsonSerializer()
        self._hooks = hooks
        self._guard = BackendGuard(breaker, logger)
        self._functions: list[FunctionCache] = []

    def __repr__(self) -> str:
        return f"CacheManager({self._backend!r}, namespace={self._namespace!r})"

    # ------------------------------------------------------- construction
    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = "cache",
        default_ttl: Seconds = 300.0,
        serializer: Serializer | None = None,
        hooks: CacheHooks | None = None,
        cooldown: float | None = None,
        breaker: CircuitBreaker | None = None,
        **backend_options: Any,
    ) -> CacheManager:
        """A manager on the backend a URL names.

        ``redis://``, ``rediss://`` and ``unix://`` give a
        :class:`~backend_kit.cache.redis.RedisCache` (``backend_options`` go to
        it; needs the ``redis`` extra); ``memory://`` (optionally
        ``memory://?max_entries=1000``) gives a :class:`MemoryCache`.

        Raises:
            ConfigurationError: an unknown scheme, a malformed host or port, or
                a bad ``max_entries``.
            MissingDependencyError: a Redis URL without the ``redis`` extra.
        """
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - a bad port raises here, not at the first cache call
        except ValueError:
            # The message would repeat the URL's text: say nothing of it (it may hold a password).
            raise ConfigurationError("malformed cache URL (bad host or port)") from None
        backend: CacheBackend
        if parts.scheme == "memory":
            query = parse_qs(parts.query)
            try:
                max_entries = int(query.get("max_entries", ["10000"])[0])
                backend = MemoryCache(max_entries=max_entries)
            except ValueError as exc:
                raise ConfigurationError(
                    f"bad memory cache URL {redact_url(url)!r}: {exc}"
                ) from None
        elif parts.scheme in ("redis", "rediss", "unix"):
            from backend_kit.cache.redis import RedisCache  # lazily: needs the extra

            backend = RedisCache(url, **backend_options)
        else:
            raise ConfigurationError(
                f"unsupported cache URL scheme {parts.scheme!r} in {redact_url(url)!r}; "
                "use redis://, rediss://, unix:// or memory://"
            )
        return cls(
            backend,
            namespace=namespace,
            default_ttl=default_ttl,
            serializer=serializer,
            hooks=hooks,
            cooldown=cooldown,
            breaker=breaker,
        )

    @classmethod
    def from_env(
        cls,
        variable: str = "REDIS_URL",
        *,
        namespace: str = "cache",
        default_ttl: Seconds = 300.0,
        serializer: Serializer | None = None,
        hooks: CacheHooks | None = None,
        cooldown: float | None = None,
        breaker: CircuitBreaker | None = None,
        **backend_options: Any,
    ) -> CacheManager:
        """A manager on ``$REDIS_URL`` (or ``variable``); in-process memory when it is unset.

        The fallback is logged as a warning, since a service meant to share a
        Redis cache would otherwise quietly cache per process.
        """
        url = os.environ.get(variable, "").strip()
        if not url:
            logger.warning(
                "%s is not set; caching in process memory (MemoryCache), not shared between processes",
                variable,
            )
            url = "memory://"
        else:
            logger.info("cache backend from %s: %s", variable, redact_url(url))
        return cls.from_url(
            url,
            namespace=namespace,
            default_ttl=default_ttl,
            serializer=serializer,
            hooks=hooks,
            cooldown=cooldown,
            breaker=breaker,
            **backend_options,
        )

    # --------------------------------------------------------- properties
    @property
    def backend(self) -> CacheBackend:
        return self._backend

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def default_ttl(self) -> float:
        """Seconds."""
        return self._default_ttl

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker in front of the backend (``breaker.state`` says whether it is used)."""
        return self._guard.breaker

    # ---------------------------------------------------------- decorator
    def cache_result(
        self,
        ttl: Seconds | None = None,
        *,
        key: str | Callable[..., str] | None = None,
        exclude: Iterable[str] = (),
        lock: bool = False,
        lock_timeout: Seconds = 10.0,
        early_refresh: Seconds | None = None,
        serializer: Serializer | None = None,
        version: str | int | None = None,
        cache_if: Callable[[Any], bool] | None = None,
    ) -> CacheDecorator:
        """Cache the results of a ``def`` or ``async def`` function, method or classmethod.

        Args:
            ttl: lifetime of an entry in seconds or a ``timedelta``; ``None``
                uses the manager's ``default_ttl``.
            key: ``None`` (default) hashes the bound arguments; a
                ``str.format`` template over parameter names
                (``"user:{user_id}"``) or a callable taking the call's
                arguments gives a readable key instead (under the namespace).
            exclude: parameter names left out of the key (a DB session, a request).
            lock: also hold a lock in the backend while computing, so only one
                *process* computes a missing value; the others wait for it (at
                most ``lock_timeout``, then compute anyway). Within a process,
                concurrent misses are always coalesced, lock or not.
            lock_timeout: lock lifetime and longest wait, seconds (default 10).
            early_refresh: seconds before expiry from which the first caller
                recomputes the value while the others keep getting the cached
                one (so a hot key never expires under load).
            serializer: overrides the manager's serializer for this function.
            version: added to the key prefix; bump it when the result's shape changes.
            cache_if: store a result only when this returns True for it (for
                example ``lambda r: r is not None``); other results are returned
                uncached.

        Raises:
            ValueError: a non-positive ``ttl``/``lock_timeout``, an
                ``early_refresh`` not shorter than ``ttl``, an ``exclude`` name
                that is not a parameter, or ``lock=True`` on a backend without locks.
        """
        ttl_seconds = self._default_ttl if ttl is None else _seconds(ttl, "ttl")
        lock_seconds = _seconds(lock_timeout, "lock_timeout")
        refresh = None if early_refresh is None else _seconds(early_refresh, "early_refresh")
        if refresh is not None and refresh >= ttl_seconds:
            raise ValueError("early_refresh must be shorter than ttl")
        if lock and not isinstance(self._backend, LockingCacheBackend):
            raise ValueError(f"lock=True needs a backend with locks; {self._backend!r} has none")
        excluded = tuple(exclude)
        chosen = serializer if serializer is not None else self._serializer

        def build(func: Any) -> Any:
            binds_owner = isinstance(func, classmethod)
            target = func.__func__ if binds_owner else func
            if not callable(target):
                raise TypeError(f"cache_result decorates functions, not {type(func).__name__}")
            params = list(inspect.signature(target).parameters)
            skip_first = binds_owner or (bool(params) and params[0] in ("self", "cls"))
            cache = FunctionCache(
                func=target,
                keys=KeyBuilder(
                    target,
                    namespace=self._namespace,
                    skip_first=skip_first,
                    exclude=excluded,
                    key=key,
                    version=version,
                ),
                backend=self._backend,
                serializer=chosen,
                ttl=ttl_seconds,
                lock=lock,
                lock_ttl=lock_seconds,
                lock_wait=lock_seconds,
                refresh_before=refresh,
                guard=self._guard,
                hooks=self._hooks,
                logger=logger,
                counters=Counters(),
                binds_owner=binds_owner,
                cache_if=cache_if,
            )
            self._functions.append(cache)
            if inspect.iscoroutinefunction(target):
                return AsyncCachedFunction(cache)
            return CachedFunction(cache)

        return CacheDecorator(build)

    # ------------------------------------------------------- invalidation
    def invalidate_key(self, *keys: str) -> int:
        """Delete entries by their full keys (from ``f.cache_key(...)``); return how many.

        Raises:
            CacheBackendError: the backend is unreachable.
        """
        return self._backend.delete(*keys)

    async def ainvalidate_key(self, *keys: str) -> int:
        """Async :meth:`invalidate_key`."""
        return await self._backend.adelete(*keys)

    def clear(self) -> int:
        """Delete every entry of this manager's namespace (SCAN, never KEYS, on Redis).

        Raises:
            CacheBackendError: the backend is unreachable.
        """
        return self._backend.delete_prefix(f"{self._namespace}:")

    async def aclear(self) -> int:
        """Async :meth:`clear`."""
        return await self._backend.adelete_prefix(f"{self._namespace}:")

    # --------------------------------------------------------------- stats
    def stats(self) -> CacheStats:
        """Counters summed over every function this manager decorated."""
        total = CacheStats()
        for cache in self._functions:
            total = total + cache.counters.snapshot()
        return total

    # ----------------------------------------------------------- lifecycle
    def ping(self) -> bool:
        """True when the backend answers."""
        return self._backend.ping()

    async def aping(self) -> bool:
        """Async :meth:`ping`."""
        return await self._backend.aping()

    def close(self) -> None:
        """Close the backend's connections."""
        self._backend.close()

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        await self._backend.aclose()
