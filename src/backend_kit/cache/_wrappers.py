"""What ``@manager.cache_result(...)`` returns, and the per-call machinery behind it.

The hit path is kept to: build the key, one backend GET, decode. Everything
else (stampede coalescing, the cross-process lock, early refresh, hooks,
the circuit breaker's bookkeeping) only runs on a miss or a failure, or is a
single attribute test on a hit.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import struct
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

from backend_kit.cache._guard import REFUSED
from backend_kit.cache._protocols import CacheEvent, Outcome
from backend_kit.errors import CacheBackendError

if TYPE_CHECKING:
    from backend_kit.cache._guard import BackendGuard
    from backend_kit.cache._keys import KeyBuilder
    from backend_kit.cache._protocols import (
        CacheBackend,
        CacheHooks,
        LockingCacheBackend,
        Serializer,
    )
    from backend_kit.cache._stats import CacheStats, Counters

__all__ = ["AsyncCachedFunction", "CachedFunction", "FunctionCache"]

P = ParamSpec("P")
P2 = ParamSpec("P2")
R = TypeVar("R")
S = TypeVar("S")

_MISS: Any = object()  # "nothing usable was stored" (absent, corrupt or foreign)
_REFRESH_MARK = 0  # first byte of a value stored with its refresh time (never starts JSON)
_REFRESH_HEADER = struct.Struct(">d")  # unix time (seconds) after which a caller refreshes
_HEADER_LEN = 1 + _REFRESH_HEADER.size
# Serializers are asked to raise ValueError/TypeError, but a stored value that
# does not decode must be a miss whatever a custom serializer raises (pickle
# alone raises half a dozen types); left uncaught it would also strand the
# joiners of an in-flight key.
_DECODE_ERRORS = (Exception,)
_ENCODE_ERRORS = (Exception,)
_perf = time.perf_counter


class _SyncFlight:
    """One in-progress computation, shared by the threads that missed the same key."""

    __slots__ = ("data", "done", "error", "result", "retry")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.data: bytes | None = None
        self.result: Any = None
        self.error: Exception | None = None
        self.retry = False


class FunctionCache:
    """Everything about one decorated function, computed at decoration time.

    Private; reached as ``wrapper._cache`` by tests and tools.
    """

    def __init__(
        self,
        *,
        func: Callable[..., Any],
        keys: KeyBuilder,
        backend: CacheBackend,
        serializer: Serializer,
        ttl: float,
        lock: bool,
        lock_ttl: float,
        lock_wait: float,
        refresh_before: float | None,
        guard: BackendGuard,
        hooks: CacheHooks | None,
        logger: logging.Logger,
        counters: Counters,
        binds_owner: bool,
        cache_if: Callable[[Any], bool] | None = None,
    ) -> None:
        self.func = func
        self.name = f"{func.__module__}.{func.__qualname__}"
        self.keys = keys
        self.backend = backend
        self.locking: LockingCacheBackend | None = backend if lock else None  # type: ignore[assignment]
        self.serializer = serializer
        self.dumps = serializer.dumps
        self.loads = serializer.loads
        self.ttl = ttl
        self.lock_ttl = lock_ttl
        self.lock_wait = lock_wait
        self.refresh_before = refresh_before
        self.guard = guard
        self.breaker = guard.breaker
        # A ratio breaker judges every outcome, so it must see every success.
        self.ratio_breaker = guard.breaker._failure_ratio is not None
        self.hooks = hooks
        self.logger = logger
        self.counters = counters
        self.binds_owner = binds_owner
        self.cache_if = cache_if
        self.skip_first = keys.skips_first
        # Async stampede protection: key -> None (a GET is in flight) or the
        # future joiners await. Per event loop (futures are loop-bound).
        self.pending: dict[str, asyncio.Future[tuple[bytes | None, Any]] | None] = {}
        self.pending_loop: asyncio.AbstractEventLoop | None = None
        # Sync stampede protection (threads); only touched on a miss.
        self.sync_pending: dict[str, _SyncFlight] = {}
        self.sync_mutex = threading.Lock()
        self.epoch = 0  # bumped when a sync computation finishes (see smiss)
        self.refreshing: set[str] = set()
        self._warned_unserializable = False

    # ------------------------------------------------------------ helpers
    def pending_for(self, loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
        """The in-flight table of ``loop`` (a new loop starts a new table)."""
        if self.pending_loop is not loop:
            self.pending = {}
            self.pending_loop = loop
        return self.pending

    def failed(
        self, operation: str, exc: CacheBackendError, key: str, token: int | None = None
    ) -> None:
        """Count and report a backend failure; ``token`` is the call's GET token, if it has one."""
        self.counters.errors += 1
        self.guard.failed(operation, exc, token)
        if self.hooks is not None:
            self._emit("on_error", CacheEvent(self.name, key, "error", 0.0, exc))

    def corrupt(self, key: str, exc: Exception) -> Any:
        self.counters.corrupt += 1
        self.logger.warning(
            "cached value for %s under %s does not decode (%s); treating it as a miss",
            self.name,
            key,
            type(exc).__name__,
        )
        return _MISS

    def decode(self, raw: bytes, key: str) -> Any:
        """The stored value, or ``_MISS`` when it does not decode."""
        if self.refresh_before is not None:
            if raw[:1] != b"\x00" or len(raw) < _HEADER_LEN:
                return self.corrupt(key, ValueError("no refresh header"))
            raw = raw[_HEADER_LEN:]
        try:
            return self.loads(raw)
        except _DECODE_ERRORS as exc:
            return self.corrupt(key, exc)

    def refresh_due(self, raw: bytes) -> bool:
        """True when a value stored with a refresh time has reached it."""
        return len(raw) >= _HEADER_LEN and _REFRESH_HEADER.unpack_from(raw, 1)[0] <= time.time()

    def encode(self, result: Any) -> bytes | None:
        """The bytes to store, or ``None``: refused by ``cache_if``, or by the serializer (logged)."""
        if self.cache_if is not None and not self.cache_if(result):
            return None
        try:
            payload = self.dumps(result)
        except _ENCODE_ERRORS as exc:
            self.counters.unserializable += 1
            log = self.logger.debug if self._warned_unserializable else self.logger.warning
            self._warned_unserializable = True
            log(
                "result of %s (%s) cannot be serialized by %r (%s); returned uncached",
                self.name,
                type(result).__name__,
                self.serializer,
                exc,
            )
            return None
        if self.refresh_before is not None:
            refresh_at = time.time() + self.ttl - self.refresh_before
            return b"\x00" + _REFRESH_HEADER.pack(refresh_at) + payload
        return payload

    def shared_value(self, data: bytes | None, result: Any, key: str) -> Any:
        """A joiner's own copy of the leader's value (decoded again, so mutations stay local)."""
        if data is None:
            return result
        value = self.decode(data, key)
        return result if value is _MISS else value

    def emit(self, key: str, outcome: Outcome, start: float) -> None:
        method = "on_hit" if outcome == "hit" else "on_miss"
        self._emit(method, CacheEvent(self.name, key, outcome, _perf() - start))

    def _emit(self, method: str, event: CacheEvent) -> None:
        try:
            getattr(self.hooks, method)(event)
        except Exception:
            self.logger.exception("cache hook %s raised; the call goes on", method)

    def backend_usable(self) -> bool:
        """True while the breaker is closed (writes after a compute check it again)."""
        return self.breaker._closed_generation >= 0

    # --------------------------------------------------------------- async
    async def amiss(
        self,
        pending: dict[str, Any],
        key: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        start: float,
        bypass: bool,
        usable: bool = True,
    ) -> Any:
        """Compute as the leader for ``key`` (``pending[key]`` is ours), then wake joiners.

        ``bypass``: the breaker refused the backend (counted as bypassed);
        ``usable=False``: this call's GET just failed, so it writes nothing.
        """
        if bypass:
            self.counters.bypassed += 1
        else:
            self.counters.misses += 1
        try:
            data, result, outcome = await self._aproduce(key, args, kwargs, bypass or not usable)
        except asyncio.CancelledError:
            flight = pending.pop(key, None)
            if flight is not None:
                flight.cancel()  # joiners retry on their own
            raise
        except BaseException as exc:
            flight = pending.pop(key, None)
            if flight is not None:
                flight.set_exception(exc)
                flight.exception()  # retrieved: joiners re-raise it themselves
            raise
        flight = pending.pop(key, None)
        if flight is not None:
            flight.set_result((data, result))
        if self.hooks is not None:
            self.emit(key, "bypass" if bypass else outcome, start)
        return result

    async def _aproduce(
        self, key: str, args: tuple[Any, ...], kwargs: dict[str, Any], skip_backend: bool
    ) -> tuple[bytes | None, Any, Outcome]:
        usable = not skip_backend and self.backend_usable()
        locking = self.locking
        token = None
        lock_name = key + ":lock"
        if locking is not None and usable:
            try:
                token = await locking.alock(lock_name, self.lock_ttl)
                if token is None:  # another process computes: wait for its value
                    raw = await locking.await_for_value(key, lock_name, self.lock_wait)
                    if raw is not None:
                        value = self.decode(raw, key)
                        if value is not _MISS:
                            self.counters.joined += 1
                            return raw, value, "joined"
            except CacheBackendError as exc:
                self.failed("lock", exc, key)
                usable = False
        try:
            result = await self.func(*args, **kwargs)
            self.counters.computations += 1
            data = self.encode(result)
            if data is not None and usable and self.backend_usable():
                try:
                    await self.backend.aset(key, data, self.ttl)
                except CacheBackendError as exc:
                    self.failed("set", exc, key)
            return data, result, "miss"
        finally:
            if token is not None and locking is not None:
                try:
                    await locking.aunlock(lock_name, token)
                except CacheBackendError as exc:
                    self.failed("unlock", exc, key)

    async def ajoin(
        self,
        pending: dict[str, Any],
        key: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        start: float,
    ) -> tuple[bool, Any]:
        """Await the leader of ``key``: ``(True, value)``, or ``(False, None)`` to retry."""
        flight = pending[key]
        if flight is None:
            flight = asyncio.get_running_loop().create_future()
            pending[key] = flight
        try:
            data, result = await asyncio.shield(flight)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if flight.cancelled() and task is not None and not task.cancelling():
                return False, None  # the leader was cancelled, not us: start over
            raise
        if result is _MISS:  # the leader's GET hit: decode our own copy
            self.counters.hits += 1
            outcome: Outcome = "hit"
        else:
            self.counters.misses += 1
            self.counters.joined += 1
            outcome = "joined"
        value = self.shared_value(data, None if result is _MISS else result, key)
        if self.hooks is not None:
            self.emit(key, outcome, start)
        return True, value

    async def arefresh(
        self, key: str, args: tuple[Any, ...], kwargs: dict[str, Any], cached: Any
    ) -> Any:
        """Recompute a value close to expiry (this caller only); others keep the cached one."""
        self.refreshing.add(key)
        locking = self.locking
        token = None
        lock_name = key + ":lock"
        try:
            if locking is not None:
                token = await locking.alock(lock_name, self.lock_ttl)
                if token is None:
                    return cached  # another process refreshes it
            self.counters.refreshes += 1
            result = await self.func(*args, **kwargs)
            self.counters.computations += 1
            data = self.encode(result)
            if data is not None:
                await self.backend.aset(key, data, self.ttl)
            return result
        except CacheBackendError as exc:
            self.failed("refresh", exc, key)
            return cached
        except Exception:
            self.logger.exception(
                "early refresh of %s failed; serving the cached value until it expires", self.name
            )
            return cached
        finally:
            self.refreshing.discard(key)
            if token is not None and locking is not None:
                try:
                    await locking.aunlock(lock_name, token)
                except CacheBackendError as exc:
                    self.failed("unlock", exc, key)

    # ---------------------------------------------------------------- sync
    def smiss(
        self,
        key: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        start: float,
        bypass: bool,
        epoch: int,
        usable: bool = True,
    ) -> Any:
        """A sync miss: one thread computes per key, the others wait for it.

        ``bypass`` and ``usable`` as for :meth:`amiss`.
        """
        with self.sync_mutex:
            flight = self.sync_pending.get(key)
            leader = flight is None
            if flight is None:
                flight = _SyncFlight()
                self.sync_pending[key] = flight
        if not leader:
            return self._sjoin(flight, key, args, kwargs, start, bypass, usable)
        if bypass:
            self.counters.bypassed += 1
        else:
            self.counters.misses += 1
        try:
            outcome: Outcome
            if epoch != self.epoch and not bypass and usable and self.backend_usable():
                # A computation finished while our GET was in flight: look again
                # before computing (it may have stored what we need).
                raw = self._sget(key)
                value = _MISS if raw is None else self.decode(raw, key)
                if value is not _MISS:
                    flight.data = raw
                    self.counters.misses -= 1
                    self.counters.hits += 1
                    if self.hooks is not None:
                        self.emit(key, "hit", start)
                    return value
            flight.data, flight.result, outcome = self._sproduce(
                key, args, kwargs, bypass or not usable
            )
            if self.hooks is not None:
                self.emit(key, "bypass" if bypass else outcome, start)
            return flight.result
        except Exception as exc:
            flight.error = exc
            raise
        except BaseException:
            flight.retry = True  # KeyboardInterrupt & co: the waiters compute themselves
            raise
        finally:
            with self.sync_mutex:
                del self.sync_pending[key]
                self.epoch += 1
            flight.done.set()

    def _sjoin(
        self,
        flight: _SyncFlight,
        key: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        start: float,
        bypass: bool,
        usable: bool,
    ) -> Any:
        flight.done.wait()
        if flight.retry:
            return self.smiss(key, args, kwargs, start, bypass, self.epoch, usable)
        if flight.error is not None:
            raise flight.error
        self.counters.misses += 1
        self.counters.joined += 1
        value = self.shared_value(flight.data, flight.result, key)
        if self.hooks is not None:
            self.emit(key, "joined", start)
        return value

    def _sget(self, key: str) -> bytes | None:
        try:
            return self.backend.get(key)
        except CacheBackendError as exc:
            self.failed("get", exc, key)
            return None

    def _sproduce(
        self, key: str, args: tuple[Any, ...], kwargs: dict[str, Any], skip_backend: bool
    ) -> tuple[bytes | None, Any, Outcome]:
        usable = not skip_backend and self.backend_usable()
        locking = self.locking
        token = None
        lock_name = key + ":lock"
        if locking is not None and usable:
            try:
                token = locking.lock(lock_name, self.lock_ttl)
                if token is None:
                    raw = locking.wait_for_value(key, lock_name, self.lock_wait)
                    if raw is not None:
                        value = self.decode(raw, key)
                        if value is not _MISS:
                            self.counters.joined += 1
                            return raw, value, "joined"
            except CacheBackendError as exc:
                self.failed("lock", exc, key)
                usable = False
        try:
            result = self.func(*args, **kwargs)
            self.counters.computations += 1
            data = self.encode(result)
            if data is not None and usable and self.backend_usable():
                try:
                    self.backend.set(key, data, self.ttl)
                except CacheBackendError as exc:
                    self.failed("set", exc, key)
            return data, result, "miss"
        finally:
            if token is not None and locking is not None:
                try:
                    locking.unlock(lock_name, token)
                except CacheBackendError as exc:
                    self.failed("unlock", exc, key)

    def srefresh(self, key: str, args: tuple[Any, ...], kwargs: dict[str, Any], cached: Any) -> Any:
        """Sync :meth:`arefresh`."""
        self.refreshing.add(key)
        locking = self.locking
        token = None
        lock_name = key + ":lock"
        try:
            if locking is not None:
                token = locking.lock(lock_name, self.lock_ttl)
                if token is None:
                    return cached
            self.counters.refreshes += 1
            result = self.func(*args, **kwargs)
            self.counters.computations += 1
            data = self.encode(result)
            if data is not None:
                self.backend.set(key, data, self.ttl)
            return result
        except CacheBackendError as exc:
            self.failed("refresh", exc, key)
            return cached
        except Exception:
            self.logger.exception(
                "early refresh of %s failed; serving the cached value until it expires", self.name
            )
            return cached
        finally:
            self.refreshing.discard(key)
            if token is not None and locking is not None:
                try:
                    locking.unlock(lock_name, token)
                except CacheBackendError as exc:
                    self.failed("unlock", exc, key)


class _WrapperBase:
    """Shared parts of the sync and async wrappers (metadata, keys, stats, binding)."""

    _cache: FunctionCache
    _bound: tuple[Any, ...]
    # Set by functools.update_wrapper; declared for type checkers.
    __name__: str
    __qualname__: str
    __wrapped__: Callable[..., Any]

    def _setup(self, cache: FunctionCache, bound: tuple[Any, ...]) -> None:
        self._cache = cache
        self._bound = bound
        functools.update_wrapper(self, cache.func)  # type: ignore[arg-type]

    def cache_key(self, *args: Any, **kwargs: Any) -> str:
        """The key a call with these arguments reads and writes (no backend access)."""
        return self._cache.keys.build(self._bound + args, kwargs)

    def stats(self) -> CacheStats:
        """Counters of this function's cache so far."""
        return self._cache.counters.snapshot()

    def _bind(self, instance: Any, owner: type[Any] | None) -> Any:
        cache = self._cache
        if cache.binds_owner:  # decorated a classmethod: bind the class
            target = owner if owner is not None else type(instance)
        elif instance is None or not cache.skip_first:
            return self
        else:
            target = instance
        # Like a bound method: cheap (no update_wrapper per attribute access).
        bound = object.__new__(type(self))
        state = self.__dict__.copy()
        state["_bound"] = (target,)
        bound.__dict__ = state
        return bound

    def __repr__(self) -> str:
        return f"<cached {self._cache.name}>"


class CachedFunction(_WrapperBase, Generic[P, R]):
    """A cached sync function: call it as the original; plus ``invalidate`` and ``cache_key``.

    Keeps the wrapped signature for type checkers (``ParamSpec``); on a
    method, access through an instance binds ``self`` as usual.
    """

    def __init__(self, cache: FunctionCache) -> None:
        self._setup(cache, ())

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        cache = self._cache
        if self._bound:
            args = self._bound + args  # type: ignore[assignment]
        key = cache.keys.build(args, kwargs)
        start = _perf() if cache.hooks is not None else 0.0
        epoch = cache.epoch
        breaker = cache.breaker
        token = breaker._closed_generation  # the breaker's lock-free admission of a closed state
        if token < 0:  # open or half-open: a trial call, or skip the backend
            token = cache.guard.admit()
            if token == REFUSED:
                return cache.smiss(key, args, kwargs, start, True, epoch)  # type: ignore[no-any-return]
        try:
            raw = cache.backend.get(key)
        except CacheBackendError as exc:
            cache.failed("get", exc, key, token)
            raw = None
            token = REFUSED  # this call leaves the backend alone from now on
        except BaseException:
            cache.guard.aborted(token)
            raise
        else:
            # Nothing to record for a closed breaker that counts consecutive
            # failures and has counted none: three reads instead of a call.
            if token != breaker._closed_generation or breaker._failures or cache.ratio_breaker:
                cache.guard.succeeded(token)  # a trial call, or a count to reset
        if raw is not None:
            if cache.refresh_before is None:
                try:
                    value = cache.loads(raw)
                except _DECODE_ERRORS as exc:
                    value = cache.corrupt(key, exc)
            else:
                value = cache.decode(raw, key)
                if value is not _MISS and key not in cache.refreshing and cache.refresh_due(raw):
                    return cache.srefresh(key, args, kwargs, value)  # type: ignore[no-any-return]
            if value is not _MISS:
                cache.counters.hits += 1
                if cache.hooks is not None:
                    cache.emit(key, "hit", start)
                return value  # type: ignore[no-any-return]
        return cache.smiss(key, args, kwargs, start, False, epoch, token != REFUSED)  # type: ignore[no-any-return]

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Delete the entry of this call; True if there was one.

        Raises:
            CacheBackendError: the backend is unreachable (the entry may remain).
        """
        return self._cache.backend.delete(self.cache_key(*args, **kwargs)) > 0

    def invalidate_all(self) -> int:
        """Delete every entry of this function (SCAN on Redis); return how many.

        Raises:
            CacheBackendError: the backend is unreachable.
        """
        return self._cache.backend.delete_prefix(self._cache.keys.function_prefix)

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(
        self: CachedFunction[Concatenate[S, P2], R], instance: S, owner: type[Any] | None = None
    ) -> CachedFunction[P2, R]: ...
    def __get__(self, instance: Any, owner: type[Any] | None = None) -> Any:
        return self._bind(instance, owner)


class AsyncCachedFunction(_WrapperBase, Generic[P, R]):
    """A cached ``async def`` function: await it as the original.

    ``await f.invalidate(...)`` deletes one entry; ``f.cache_key(...)`` is a
    plain (sync) call since building a key needs no I/O.
    """

    def __init__(self, cache: FunctionCache) -> None:
        self._setup(cache, ())

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        cache = self._cache
        if self._bound:
            args = self._bound + args  # type: ignore[assignment]
        key = cache.keys.build(args, kwargs)
        start = _perf() if cache.hooks is not None else 0.0
        loop = asyncio.get_running_loop()
        pending = cache.pending if cache.pending_loop is loop else cache.pending_for(loop)
        while key in pending:  # same key in flight in this loop: share its GET/computation
            done, value = await cache.ajoin(pending, key, args, kwargs, start)
            if done:
                return value  # type: ignore[no-any-return]
        pending[key] = None
        breaker = cache.breaker
        token = breaker._closed_generation  # the breaker's lock-free admission of a closed state
        if token < 0:  # open or half-open: a trial call, or skip the backend
            token = cache.guard.admit()
            if token == REFUSED:
                return await cache.amiss(pending, key, args, kwargs, start, True)  # type: ignore[no-any-return]
        try:
            raw = await cache.backend.aget(key)
        except CacheBackendError as exc:
            cache.failed("get", exc, key, token)
            raw = None
            token = REFUSED  # this call leaves the backend alone from now on
        except BaseException:
            cache.guard.aborted(token)  # cancelled: a trial slot goes back
            flight = pending.pop(key, None)
            if flight is not None:
                flight.cancel()  # joiners start over
            raise
        else:
            # Nothing to record for a closed breaker that counts consecutive
            # failures and has counted none: three reads instead of a call.
            if token != breaker._closed_generation or breaker._failures or cache.ratio_breaker:
                cache.guard.succeeded(token)  # a trial call, or a count to reset
        if raw is not None:
            if cache.refresh_before is None:
                try:
                    value = cache.loads(raw)
                except _DECODE_ERRORS as exc:
                    value = cache.corrupt(key, exc)
            else:
                value = cache.decode(raw, key)
            if value is not _MISS:
                flight = pending.pop(key)
                if flight is not None:
                    flight.set_result((raw, _MISS))
                if (
                    cache.refresh_before is not None
                    and key not in cache.refreshing
                    and cache.refresh_due(raw)
                ):
                    return await cache.arefresh(key, args, kwargs, value)  # type: ignore[no-any-return]
                cache.counters.hits += 1
                if cache.hooks is not None:
                    cache.emit(key, "hit", start)
                return value  # type: ignore[no-any-return]
        return await cache.amiss(  # type: ignore[no-any-return]
            pending, key, args, kwargs, start, False, token != REFUSED
        )

    async def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Delete the entry of this call; True if there was one.

        Raises:
            CacheBackendError: the backend is unreachable (the entry may remain).
        """
        return await self._cache.backend.adelete(self.cache_key(*args, **kwargs)) > 0

    async def invalidate_all(self) -> int:
        """Delete every entry of this function (SCAN on Redis); return how many.

        Raises:
            CacheBackendError: the backend is unreachable.
        """
        return await self._cache.backend.adelete_prefix(self._cache.keys.function_prefix)

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(
        self: AsyncCachedFunction[Concatenate[S, P2], R],
        instance: S,
        owner: type[Any] | None = None,
    ) -> AsyncCachedFunction[P2, R]: ...
    def __get__(self, instance: Any, owner: type[Any] | None = None) -> Any:
        return self._bind(instance, owner)
