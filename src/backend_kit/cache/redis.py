"""RedisCache: the cache backend on Redis (extra: ``redis``).

Built for failing fast: small socket timeouts, a blocking (bounded) pool that
makes a burst of callers wait for a connection (redis-py's plain pool raises
``MaxConnectionsError`` past its limit), at most one immediate retry (a pooled
connection gone stale after a Redis restart), and every driver error turned
into :class:`~backend_kit.errors.CacheBackendError` so the manager can fail open.
"""

from __future__ import annotations

from backend_kit._closing import Closeable
from backend_kit._optional import import_optional

import_optional("redis", extra="redis")

import asyncio  # noqa: E402 - after the extra check, on purpose
import contextlib  # noqa: E402
import logging  # noqa: E402
import queue  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import deque  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from typing import Any, cast  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import redis  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from redis.backoff import NoBackoff  # noqa: E402
from redis.retry import Retry as SyncRetry  # noqa: E402

from backend_kit._redact import redact_url  # noqa: E402
from backend_kit.errors import CacheBackendError, ConfigurationError  # noqa: E402

__all__ = ["RedisCache"]

logger = logging.getLogger("backend_kit.cache")

# Release the lock only if we still hold it, and always wake the waiters:
# even when our lock expired, the value we just stored is worth reading.
_UNLOCK_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('del', KEYS[1]) end
return redis.call('publish', KEYS[1], '1')
"""
_SCAN_BATCH = 500
_GLOB_SPECIALS = str.maketrans({c: "\\" + c for c in "*?[]\\"})
# What a dead, slow or misconfigured Redis raises through redis-py.
_DRIVER_ERRORS = (redis.RedisError, OSError, TimeoutError)


def _failure(operation: str, exc: BaseException) -> CacheBackendError:
    return CacheBackendError(f"Redis {operation} failed: {type(exc).__name__}: {exc}")


class _AsyncSlots:
    """A counting limit for one event loop: free slots are taken without awaiting.

    redis-py's asyncio ``BlockingConnectionPool`` does the same job through an
    ``asyncio.Condition`` and a timeout context on every command, which
    measured ~9 µs (12 %) on top of a 74 µs GET here; this costs ~0.1 µs when
    a slot is free and only waits (bounded by ``timeout``) when none is.
    """

    __slots__ = ("free", "timeout", "waiters")

    def __init__(self, size: int, timeout: float) -> None:
        self.free = size
        self.timeout = timeout
        self.waiters: deque[asyncio.Future[None]] = deque()

    async def wait(self) -> None:
        """Wait for a slot handed over by :meth:`release` (call only when ``free == 0``)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(future)
        try:
            async with asyncio.timeout(self.timeout):
                await future
        except BaseException:
            if future.done() and not future.cancelled():
                self.release()  # the slot was handed to us as we gave up: pass it on
            else:
                future.cancel()
            raise

    def release(self) -> None:
        waiters = self.waiters
        while waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_result(None)  # hand the slot over directly
                return
        self.free += 1


class _AsyncState:
    """The asyncio client of one event loop (redis-py connections are loop-bound)."""

    __slots__ = ("client", "loop", "slots", "unlock")

    def __init__(self, loop: asyncio.AbstractEventLoop, client: Any, slots: _AsyncSlots) -> None:
        self.loop = loop
        self.client = client
        self.slots = slots
        self.unlock = client.register_script(_UNLOCK_SCRIPT)


class RedisCache(Closeable):
    """Cache backend on Redis, for sync and async code alike.

    Clients are created on first use (nothing connects at construction); the
    async client is per event loop, so one ``RedisCache`` also works from code
    that calls ``asyncio.run`` repeatedly.

    Args:
        url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (TLS)
            or ``unix://``. Credentials come from here (read it from your
            environment); they never appear in logs or ``repr``.
        max_connections: connections per pool (sync, and async per loop);
            callers beyond it wait for a free one (default 32).
        pool_timeout: seconds a caller waits for a free connection before the
            call fails open (default 1.0).
        socket_timeout: seconds for a command's answer (default 0.25).
        socket_connect_timeout: seconds to connect (default 0.25).
        retries: immediate retries on a connection error (default 1: a pooled
            connection that went stale across a Redis restart is replaced
            transparently; more would multiply the cost of a dead Redis).
        client: use this sync ``redis.Redis`` instead of one built from ``url``
            (its pool and timeouts are then yours to choose).
        async_client: use this ``redis.asyncio.Redis`` instead (it stays bound
            to the event loop it first ran on).
        **client_options: passed to redis-py's connection pool (``ssl_ca_certs``...).

    Raises:
        ValueError: neither ``url`` nor a client, ``max_connections`` < 1 or a
            negative timeout.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        async_client: aioredis.Redis | None = None,
        max_connections: int = 32,
        pool_timeout: float = 1.0,
        socket_timeout: float = 0.25,
        socket_connect_timeout: float = 0.25,
        retries: int = 1,
        **client_options: Any,
    ) -> None:
        if url is None and client is None and async_client is None:
            raise ValueError("RedisCache needs a url, a client or an async_client")
        if max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        if min(pool_timeout, socket_timeout, socket_connect_timeout) < 0 or retries < 0:
            raise ValueError("timeouts and retries must be >= 0")
        if url is not None:
            try:
                urlsplit(url).port  # noqa: B018 - a bad port raises here, not at the first call
            except ValueError:
                raise ConfigurationError("malformed Redis URL (bad host or port)") from None
        self._url = url
        self._max_connections = max_connections
        self._pool_timeout = pool_timeout
        self._options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            **client_options,
        }
        self._retries = retries
        self._sync: redis.Redis | None = client
        self._sync_unlock: Any = None if client is None else client.register_script(_UNLOCK_SCRIPT)
        self._async: _AsyncState | None = None
        self._given_async = async_client
        # Sync pool slots: callers beyond max_connections wait here (bounded by
        # pool_timeout) instead of failing. A C-level SimpleQueue of tokens in
        # front of redis-py's plain pool: redis-py 8's sync BlockingConnectionPool
        # measured 1-6 µs slower per command than its plain pool, and a hit's
        # whole overhead budget is ~3 µs.
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(max_connections):
            self._tokens.put(None)

    def __repr__(self) -> str:
        where = "<client>" if self._url is None else redact_url(self._url)
        return f"RedisCache({where!r}, max_connections={self._max_connections})"

    @property
    def url(self) -> str | None:
        """The URL with any password replaced by ``***`` (``None`` when built from clients)."""
        return None if self._url is None else redact_url(self._url)

    def _require_url(self, which: str) -> str:
        if self._url is None:
            raise CacheBackendError(f"RedisCache was built without a url or {which} client")
        return self._url

    # ------------------------------------------------------------ clients
    def _sync_client(self) -> redis.Redis:
        client = self._sync
        if client is None:
            pool = redis.ConnectionPool.from_url(
                self._require_url("sync"),
                # Room for lock waiters' pub/sub connections on top of the slots.
                max_connections=self._max_connections * 2,
                retry=SyncRetry(NoBackoff(), self._retries),
                **self._options,
            )
            client = redis.Redis(connection_pool=pool)
            self._sync_unlock = client.register_script(_UNLOCK_SCRIPT)
            self._sync = client
        return client

    @contextlib.contextmanager
    def _sync_slot(self, operation: str) -> Iterator[redis.Redis]:
        """A pool slot for one command (waiting up to ``pool_timeout``), errors mapped."""
        client = self._sync or self._sync_client()
        try:
            self._tokens.get(timeout=self._pool_timeout)
        except queue.Empty:
            raise CacheBackendError(
                f"no Redis connection became free within {self._pool_timeout} s (pool exhausted)"
            ) from None
        try:
            yield client
        except _DRIVER_ERRORS as exc:
            raise _failure(operation, exc) from exc
        finally:
            self._tokens.put(None)

    def _async_state(self) -> _AsyncState:
        loop = asyncio.get_running_loop()
        state = self._async
        if state is not None and state.loop is loop:
            return state
        slots = _AsyncSlots(self._max_connections, self._pool_timeout)
        if self._given_async is not None:
            state = _AsyncState(loop, self._given_async, slots)
            self._async = state
            return state
        # A new loop: connections of the old one cannot be used (nor closed) here.
        from redis.asyncio.retry import Retry  # the asyncio flavour

        pool = aioredis.ConnectionPool.from_url(
            self._require_url("async"),
            # Room for lock waiters' pub/sub connections on top of the command slots.
            max_connections=self._max_connections * 2,
            retry=Retry(NoBackoff(), self._retries),
            **self._options,
        )
        state = _AsyncState(loop, aioredis.Redis(connection_pool=pool), slots)
        self._async = state
        return state

    # --------------------------------------------------------------- sync
    def get(self, key: str) -> bytes | None:
        # The hot path, inlined: one slot, one GET.
        client = self._sync or self._sync_client()
        tokens = self._tokens
        try:
            tokens.get(timeout=self._pool_timeout)
        except queue.Empty:
            raise CacheBackendError(
                f"no Redis connection became free within {self._pool_timeout} s (pool exhausted)"
            ) from None
        try:
            return client.get(key)  # type: ignore[return-value]
        except _DRIVER_ERRORS as exc:
            raise _failure("GET", exc) from exc
        finally:
            tokens.put(None)

    def set(self, key: str, value: bytes, ttl: float) -> None:
        with self._sync_slot("SET") as client:
            client.set(key, value, px=max(1, int(ttl * 1000)))

    def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        with self._sync_slot("DEL") as client:
            return int(client.delete(*keys))

    def delete_prefix(self, prefix: str) -> int:
        removed = 0
        with self._sync_slot("SCAN/UNLINK") as client:
            batch: list[Any] = []
            for key in client.scan_iter(match=_glob(prefix), count=_SCAN_BATCH):
                batch.append(key)
                if len(batch) >= _SCAN_BATCH:
                    removed += int(client.unlink(*batch))
                    batch.clear()
            if batch:
                removed += int(client.unlink(*batch))
        return removed

    def ping(self) -> bool:
        try:
            with self._sync_slot("PING") as client:
                return bool(client.ping())
        except CacheBackendError as exc:
            # False is a health check's answer; the cause goes to the operators' log.
            logger.info("cache ping of %s: %s", self.url or "<client>", exc)
            return False

    def close(self) -> None:
        """Close the sync pool (the async one closes with :meth:`aclose`)."""
        client, self._sync = self._sync, None
        if client is not None:
            client.close()
            client.connection_pool.disconnect()

    def lock(self, name: str, ttl: float) -> str | None:
        token = uuid.uuid4().hex
        with self._sync_slot("SET NX") as client:
            taken = client.set(name, token, nx=True, px=max(1, int(ttl * 1000)))
        return token if taken else None

    def unlock(self, name: str, token: str) -> None:
        with self._sync_slot("unlock"):
            self._sync_unlock(keys=[name], args=[token])

    def wait_for_value(self, key: str, lock_name: str, max_wait: float) -> bytes | None:
        client = self._sync_client()
        try:
            pubsub: Any = client.pubsub()  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(lock_name)
                # The holder may have finished between our failed SET NX and SUBSCRIBE.
                value = cast("bytes | None", client.get(key))
                if value is not None:
                    return value
                deadline = time.monotonic() + max_wait
                poll = max_wait / 4  # a lost PUBLISH costs at most a quarter of the wait
                next_poll = time.monotonic() + poll
                while (now := time.monotonic()) < deadline:
                    message = pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=min(next_poll, deadline) - now
                    )
                    if message is not None:
                        return cast("bytes | None", client.get(key))
                    if time.monotonic() >= next_poll:
                        value = cast("bytes | None", client.get(key))
                        if value is not None:
                            return value
                        next_poll += poll
                return None
            finally:
                pubsub.close()
        except _DRIVER_ERRORS as exc:
            raise _failure("lock wait", exc) from exc

    # -------------------------------------------------------------- async
    async def aget(self, key: str) -> bytes | None:
        state = self._async
        if state is None or state.loop is not asyncio.get_running_loop():
            state = self._async_state()
        slots = state.slots
        if slots.free:
            slots.free -= 1
        else:
            await self._await_slot(slots)
        try:
            return await state.client.get(key)  # type: ignore[no-any-return]
        except _DRIVER_ERRORS as exc:
            raise _failure("GET", exc) from exc
        finally:
            slots.release()

    async def _await_slot(self, slots: _AsyncSlots) -> None:
        try:
            await slots.wait()
        except TimeoutError as exc:
            raise CacheBackendError(
                f"no Redis connection became free within {slots.timeout} s (pool exhausted)"
            ) from exc

    async def _run(self, operation: str, command: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one client call (``command(client, ...)``) inside a slot, mapping errors."""
        state = self._async_state()
        slots = state.slots
        if slots.free:
            slots.free -= 1
        else:
            await self._await_slot(slots)
        try:
            return await command(state, *args, **kwargs)
        except _DRIVER_ERRORS as exc:
            raise _failure(operation, exc) from exc
        finally:
            slots.release()

    async def aset(self, key: str, value: bytes, ttl: float) -> None:
        await self._run("SET", _aset, key, value, max(1, int(ttl * 1000)))

    async def adelete(self, *keys: str) -> int:
        if not keys:
            return 0
        return int(await self._run("DEL", _adelete, keys))

    async def adelete_prefix(self, prefix: str) -> int:
        return int(await self._run("SCAN/UNLINK", _adelete_matching, _glob(prefix)))

    async def aping(self) -> bool:
        try:
            return bool(await self._run("PING", _aping))
        except CacheBackendError as exc:
            logger.info("cache ping of %s: %s", self.url or "<client>", exc)
            return False

    async def aclose(self) -> None:
        """Close the async client of the running loop, and the sync pool."""
        state, self._async = self._async, None
        if state is not None and state.loop is asyncio.get_running_loop():
            await state.client.aclose(close_connection_pool=True)
        self.close()

    async def alock(self, name: str, ttl: float) -> str | None:
        token = uuid.uuid4().hex
        taken = await self._run("SET NX", _alock, name, token, max(1, int(ttl * 1000)))
        return token if taken else None

    async def aunlock(self, name: str, token: str) -> None:
        await self._run("unlock", _aunlock, name, token)

    async def await_for_value(self, key: str, lock_name: str, max_wait: float) -> bytes | None:
        state = self._async_state()
        try:
            return await _await_value(state, key, lock_name, max_wait)
        except _DRIVER_ERRORS as exc:
            raise _failure("lock wait", exc) from exc

    # ---------------------------------------------------- context managers


def _glob(prefix: str) -> str:
    """A SCAN MATCH pattern for keys starting with ``prefix`` (glob characters escaped)."""
    return prefix.translate(_GLOB_SPECIALS) + "*"


async def _aset(state: _AsyncState, key: str, value: bytes, px: int) -> None:
    await state.client.set(key, value, px=px)


async def _adelete(state: _AsyncState, keys: tuple[str, ...]) -> int:
    return int(await state.client.delete(*keys))


async def _adelete_matching(state: _AsyncState, pattern: str) -> int:
    client = state.client
    removed = 0
    batch: list[Any] = []
    async for key in client.scan_iter(match=pattern, count=_SCAN_BATCH):
        batch.append(key)
        if len(batch) >= _SCAN_BATCH:
            removed += int(await client.unlink(*batch))
            batch.clear()
    if batch:
        removed += int(await client.unlink(*batch))
    return removed


async def _aping(state: _AsyncState) -> bool:
    return bool(await state.client.ping())


async def _alock(state: _AsyncState, name: str, token: str, px: int) -> bool:
    return bool(await state.client.set(name, token, nx=True, px=px))


async def _aunlock(state: _AsyncState, name: str, token: str) -> None:
    await state.unlock(keys=[name], args=[token])


async def _await_value(
    state: _AsyncState, key: str, lock_name: str, max_wait: float
) -> bytes | None:
    client = state.client
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(lock_name)
        # The holder may have finished between our failed SET NX and SUBSCRIBE.
        value: bytes | None = await client.get(key)
        if value is not None:
            return value
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        poll = max_wait / 4  # a lost PUBLISH costs at most a quarter of the wait
        next_poll = loop.time() + poll
        while (now := loop.time()) < deadline:
            message = await pubsub.get_message(
                ignore_subscribe_messages=True, timeout=min(next_poll, deadline) - now
            )
            if message is not None:
                return await client.get(key)  # type: ignore[no-any-return]
            if loop.time() >= next_poll:
                value = await client.get(key)
                if value is not None:
                    return value
                next_poll += poll
        return None
    finally:
        await pubsub.aclose()
