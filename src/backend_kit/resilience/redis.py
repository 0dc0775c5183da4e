"""Rate limiting shared by every process, on Redis (extra ``redis``).

One atomic Lua script per check, one per algorithm (see
:class:`~backend_kit.resilience.RateLimit` for the semantics):

* sliding window (the default): a sorted set per key holding one member per
  counted call, scored by its time in microseconds; the script drops the
  members older than the period, counts, and adds the call if it fits;
* GCRA: one string per key, the theoretical arrival time, read, decided and
  written back.

Both run inside Redis with Redis's own clock (``TIME``), so limits are exact
across processes and hosts whatever their clocks say. Scripts are called with
``EVALSHA`` (their SHA-1 is computed locally); on ``NOSCRIPT`` (first use, a
restarted or failed-over server) the script is loaded with ``SCRIPT LOAD``
and the call repeated once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from typing import Any

from backend_kit._closing import Closeable
from backend_kit._optional import import_optional
from backend_kit._redact import redact_url
from backend_kit.errors import (
    CircuitOpenError,
    ConfigurationError,
    RateLimiterUnavailableError,
)
from backend_kit.resilience._breaker import CircuitBreaker
from backend_kit.resilience._ratelimit import (
    BackendDownPolicy,
    RateLimit,
    RateLimitResult,
    check_cost,
    gcra_result,
    window_result,
)

import_optional("redis", extra="redis")

import redis  # noqa: E402 - after the extra check, so a missing extra names its install line
import redis.asyncio as aioredis  # noqa: E402
from redis.exceptions import NoScriptError, RedisError  # noqa: E402

__all__ = ["GCRA_SCRIPT", "SLIDING_WINDOW_SCRIPT", "RedisRateLimiter"]

logger = logging.getLogger("backend_kit.resilience")

GCRA_SCRIPT = """
-- KEYS[1]: the key of one limit for one caller.
-- ARGV[1]: cost * interval, ARGV[2]: (burst - cost) * interval, in microseconds.
-- Returns one integer (the cheapest reply): TAT minus now in microseconds
-- after the call when it is allowed (>= 0), or -1 - (TAT minus now) when it
-- is refused (< 0; nothing was written).
local clock = redis.call('TIME')
local now = clock[1] * 1000000 + clock[2]
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
  tat = now
end
if tat - ARGV[2] > now then
  return -1 - (tat - now)
end
local new_tat = tat + ARGV[1]
if new_tat > now then
  redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000))
end
return new_tat - now
"""
_GCRA_SHA = hashlib.sha1(GCRA_SCRIPT.encode(), usedforsecurity=False).hexdigest()

SLIDING_WINDOW_SCRIPT = """
-- KEYS[1]: a sorted set, one member per counted unit of cost, scored by the
-- Redis time of its call in microseconds.
-- ARGV[1]: period in microseconds, ARGV[2]: amount, ARGV[3]: cost.
-- A call made at t counts while now < t + period (windows are half-open).
-- Returns an integer, the count after an allowed call of cost > 0 (the hot
-- path: remaining and reset_after follow from it), or else an array
-- {allowed 0/1, count, retry_after us, reset_after us}.
local clock = redis.call('TIME')
local now = clock[1] * 1000000 + clock[2]
local period = tonumber(ARGV[1])
local amount = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
local count = redis.call('ZCARD', KEYS[1])
if count + cost <= amount and cost > 0 then
  -- Members must be unique: "<time>:<count>". Within one microsecond the
  -- count only grows (nothing more expires), so no two calls share a member.
  local stamp = clock[1] .. '.' .. clock[2] .. ':'
  local args = {}
  local n = 0
  for i = 0, cost - 1 do
    args[n + 1] = now
    args[n + 2] = stamp .. (count + i)
    n = n + 2
    if n == 2000 then  -- stay far below Lua's unpack() limit for large costs
      redis.call('ZADD', KEYS[1], unpack(args))
      args = {}
      n = 0
    end
  end
  if n > 0 then
    redis.call('ZADD', KEYS[1], unpack(args))
  end
  redis.call('PEXPIRE', KEYS[1], math.ceil(period / 1000))
  return count + cost
end
local reset = 0
if count > 0 then
  local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  reset = tonumber(newest[2]) + period - now
end
if count + cost <= amount then
  return {1, count, 0, reset}
end
-- Refused: the call fits once the (count + cost - amount)-th oldest leaves.
local index = count + cost - amount - 1
local oldest = redis.call('ZRANGE', KEYS[1], index, index, 'WITHSCORES')
return {0, count, tonumber(oldest[2]) + period - now, reset}
"""
_SLIDING_WINDOW_SHA = hashlib.sha1(
    SLIDING_WINDOW_SCRIPT.encode(), usedforsecurity=False
).hexdigest()

# What "Redis is down" looks like from redis-py: connection refused or reset,
# timeouts, a server still loading; a breaker refusing is the same news.
_DOWN_ERRORS = (RedisError, OSError, CircuitOpenError)

# (script SHA-1, script, pre-encoded ARGV, GCRA's slack in seconds)
_Plan = tuple[str, str, tuple[bytes, ...], float]


class RedisRateLimiter(Closeable):
    """Rate limiter on Redis: exact across processes, one round trip per check.

    Sliding window by default (at most ``amount`` calls in any ``period``),
    GCRA for limits built with ``algorithm="gcra"``.

    Give it a URL (it makes and owns an async and, on first sync use, a sync
    client, both with ``timeout``) or your own clients (you keep owning them;
    give them a ``socket_timeout``)::

        limiter = RedisRateLimiter("redis://localhost:6379/0")
        result = await limiter.ahit(f"user:{user_id}", RateLimit.parse("100/minute"))
        if not result.allowed:
            return Response(status_code=429, headers=result.headers())

    When Redis cannot be reached, ``on_backend_down`` decides (see
    :data:`~backend_kit.resilience.BackendDownPolicy`): ``"allow"`` (default:
    an outage of the limiter does not become an outage of the API),
    ``"deny"`` or ``"raise"``. The answer carries ``degraded=True``; a warning
    is logged at most once per ``log_interval`` seconds (with the count of
    degraded answers since the last one), and an info line when Redis answers
    again. A circuit breaker (``breaker``; by default 3 consecutive failures,
    2 s reset timeout) spares every request the connect timeout while Redis
    stays down.

    Args:
        url: ``redis://`` or ``rediss://`` URL. Or give ``client``/``sync_client``.
        client: An existing ``redis.asyncio.Redis`` for :meth:`ahit`.
        sync_client: An existing ``redis.Redis`` for :meth:`hit`.
        key_prefix: Prepended to every key (default ``"bk:ratelimit:"``).
        on_backend_down: ``"allow"``, ``"deny"`` or ``"raise"``.
        retry_after_when_down: ``retry_after`` of a ``"deny"`` answer (seconds, default 1.0).
        timeout: Connect and read timeout of the clients made from ``url`` (seconds, default 0.5).
        log_interval: Minimum seconds between two "Redis is down" warnings (default 60).
        breaker: The breaker in front of Redis; pass your own to tune it.

    Raises:
        ConfigurationError: neither a URL nor a client was given, or a bad setting.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: aioredis.Redis | None = None,
        sync_client: redis.Redis | None = None,
        key_prefix: str = "bk:ratelimit:",
        on_backend_down: BackendDownPolicy = "allow",
        retry_after_when_down: float = 1.0,
        timeout: float = 0.5,
        log_interval: float = 60.0,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if url is None and client is None and sync_client is None:
            raise ConfigurationError("RedisRateLimiter needs a url or a client")
        if on_backend_down not in ("allow", "deny", "raise"):
            msg = f"on_backend_down must be 'allow', 'deny' or 'raise', not {on_backend_down!r}"
            raise ConfigurationError(msg)
        self._url = url
        self._timeout = timeout
        self._client = client
        self._sync_client = sync_client
        self._owns_client = client is None
        self._owns_sync_client = sync_client is None
        self._prefix = key_prefix
        self._policy: BackendDownPolicy = on_backend_down
        self._retry_after_when_down = retry_after_when_down
        self._log_interval = log_interval
        self._breaker = breaker or CircuitBreaker(
            "rate limiter Redis", failure_threshold=3, reset_timeout=2.0
        )
        self._args: dict[str, _Plan] = {}
        self._state_lock = threading.Lock()
        self._down = False
        self._last_warning = -float("inf")
        self._degraded_since_warning = 0

    @classmethod
    def from_env(cls, **options: Any) -> RedisRateLimiter:
        """Build one from ``REDIS_URL``; ``options`` go to the constructor.

        Raises:
            ConfigurationError: ``REDIS_URL`` is not set.
        """
        url = os.environ.get("REDIS_URL")
        if not url:
            raise ConfigurationError("REDIS_URL is not set")
        return cls(url, **options)

    def __repr__(self) -> str:
        where = redact_url(self._url) if self._url else "given client"
        return f"<RedisRateLimiter {where} on_backend_down={self._policy!r}>"

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker in front of Redis (its ``state`` tells whether Redis is trusted)."""
        return self._breaker

    # ------------------------------------------------------------------ clients
    def _async_client(self) -> aioredis.Redis:
        client = self._client
        if client is None:
            if self._url is None:
                raise ConfigurationError("ahit() needs an async client: give url or client")
            with self._state_lock:  # two threads must not both make (and leak) one
                if self._client is None:
                    self._client = aioredis.Redis.from_url(
                        self._url,
                        socket_timeout=self._timeout,
                        socket_connect_timeout=self._timeout,
                    )
                client = self._client
        return client

    def _blocking_client(self) -> redis.Redis:
        client = self._sync_client
        if client is None:
            if self._url is None:
                raise ConfigurationError("hit() needs a sync client: give url or sync_client")
            with self._state_lock:
                if self._sync_client is None:
                    self._sync_client = redis.Redis.from_url(
                        self._url,
                        socket_timeout=self._timeout,
                        socket_connect_timeout=self._timeout,
                    )
                client = self._sync_client
        return client

    def _script_args(self, limit: RateLimit, cost: int) -> _Plan:
        """Which script and its ARGV (pre-encoded), plus GCRA's slack in seconds.

        Cached per limit for cost 1, the common case.
        """
        if cost == 1:
            cached = self._args.get(limit.key_part)
            if cached is not None:
                return cached
        else:
            check_cost(limit, cost)
        plan: _Plan
        if limit.algorithm == "sliding_window":
            period_us = round(limit.period * 1e6)
            argv: tuple[bytes, ...] = (
                str(period_us).encode(),
                str(limit.amount).encode(),
                str(cost).encode(),
            )
            plan = (_SLIDING_WINDOW_SHA, SLIDING_WINDOW_SCRIPT, argv, 0.0)
        else:
            increment_us = cost * limit.interval * 1e6
            slack = (limit.burst - cost) * limit.interval
            argv = (repr(increment_us).encode(), repr(slack * 1e6).encode())
            plan = (_GCRA_SHA, GCRA_SCRIPT, argv, slack)
        if cost == 1:
            self._args[limit.key_part] = plan
        return plan

    # ------------------------------------------------------------------- checks
    async def ahit(self, key: str, limit: RateLimit, *, cost: int = 1) -> RateLimitResult:
        """Count a call of ``cost`` for ``key`` against ``limit``, atomically in Redis.

        Raises:
            ConfigurationError: ``cost`` is negative or larger than the burst.
            RateLimiterUnavailableError: Redis is down and the policy is ``"raise"``.
        """
        sha, script, argv, slack = self._script_args(limit, cost)
        name = f"{self._prefix}{limit.key_part}:{key}"
        client = self._client or self._async_client()
        breaker = self._breaker
        try:
            token = breaker._admit()
            try:
                try:
                    reply = await client.evalsha(sha, 1, name, *argv)
                except NoScriptError:
                    await client.script_load(script)
                    reply = await client.evalsha(sha, 1, name, *argv)
            except Exception as exc:
                breaker._record_error(token, exc)
                raise
            except BaseException:
                breaker._record_abort(token)
                raise
            breaker._record_success(token)
        except _DOWN_ERRORS as exc:
            return self._answer_when_down(limit, cost, exc)
        if self._down:
            self._mark_up()
        return self._result(limit, reply, slack)

    def hit(self, key: str, limit: RateLimit, *, cost: int = 1) -> RateLimitResult:
        """Blocking twin of :meth:`ahit` (for sync frameworks and threads)."""
        sha, script, argv, slack = self._script_args(limit, cost)
        name = f"{self._prefix}{limit.key_part}:{key}"
        client = self._sync_client or self._blocking_client()
        breaker = self._breaker
        try:
            token = breaker._admit()
            try:
                try:
                    reply = client.evalsha(sha, 1, name, *argv)
                except NoScriptError:
                    client.script_load(script)
                    reply = client.evalsha(sha, 1, name, *argv)
            except Exception as exc:
                breaker._record_error(token, exc)
                raise
            except BaseException:
                breaker._record_abort(token)
                raise
            breaker._record_success(token)
        except _DOWN_ERRORS as exc:
            return self._answer_when_down(limit, cost, exc)
        if self._down:
            self._mark_up()
        return self._result(limit, reply, slack)

    async def areset(self, key: str, limit: RateLimit) -> None:
        """Forget what ``key`` used of ``limit``.

        Redis down: logged, and raised only under the ``"raise"`` policy.
        """
        try:
            await self._async_client().delete(f"{self._prefix}{limit.key_part}:{key}")
        except _DOWN_ERRORS as exc:
            self._report_down(exc)

    def reset(self, key: str, limit: RateLimit) -> None:
        """Blocking twin of :meth:`areset`."""
        try:
            self._blocking_client().delete(f"{self._prefix}{limit.key_part}:{key}")
        except _DOWN_ERRORS as exc:
            self._report_down(exc)

    # ------------------------------------------------------------------ health
    async def aping(self) -> None:
        """Raise when Redis does not answer ``PING`` (for health checks)."""
        await self._async_client().ping()

    def ping(self) -> None:
        """Blocking twin of :meth:`aping`."""
        self._blocking_client().ping()

    # ---------------------------------------------------------------- closing
    async def aclose(self) -> None:
        """Close the clients this limiter made (not the ones it was given)."""
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None
        if self._sync_client is not None and self._owns_sync_client:
            self._sync_client.close()
            self._sync_client = None

    def close(self) -> None:
        """Close the sync client this limiter made; use :meth:`aclose` for the async one."""
        if self._sync_client is not None and self._owns_sync_client:
            self._sync_client.close()
            self._sync_client = None

    # ---------------------------------------------------------------- helpers
    @staticmethod
    def _result(limit: RateLimit, reply: Any, slack: float) -> RateLimitResult:
        if limit.algorithm == "sliding_window":
            if type(reply) is int:  # allowed, cost > 0: the newest call is now
                return window_result(
                    limit,
                    allowed=True,
                    remaining=limit.amount - reply,
                    reset_after=limit.period,
                    retry_after=0.0,
                )
            allowed, count, retry_us, reset_us = reply
            return window_result(
                limit,
                allowed=allowed == 1,
                remaining=limit.amount - count,
                reset_after=reset_us / 1e6,
                retry_after=retry_us / 1e6,
            )
        if reply >= 0:
            return gcra_result(limit, allowed=True, tat_ahead=reply / 1e6, retry_after=0.0)
        tat_ahead = (-1 - reply) / 1e6
        # Refused: the call fits once the TAT is within `slack` of now.
        return gcra_result(limit, allowed=False, tat_ahead=tat_ahead, retry_after=tat_ahead - slack)

    def _answer_when_down(self, limit: RateLimit, cost: int, exc: BaseException) -> RateLimitResult:
        self._report_down(exc)
        if self._policy == "allow":
            return RateLimitResult(True, limit, max(0, limit.burst - cost), 0.0, 0.0, degraded=True)
        wait = self._retry_after_when_down
        return RateLimitResult(False, limit, 0, wait, wait, degraded=True)

    def _report_down(self, exc: BaseException) -> None:
        """Log (at most once per interval), then raise under the "raise" policy."""
        now = time.monotonic()
        with self._state_lock:
            self._down = True
            self._degraded_since_warning += 1
            due = now - self._last_warning >= self._log_interval
            if due:
                count = self._degraded_since_warning
                self._degraded_since_warning = 0
                self._last_warning = now
        if due:
            logger.warning(
                "rate limiter cannot reach Redis (%s); policy %r answers "
                "(%d degraded answer(s) since the last report)",
                type(exc).__name__,
                self._policy,
                count,
            )
        if self._policy == "raise":
            raise RateLimiterUnavailableError("the rate limiter's Redis is unavailable") from exc

    def _mark_up(self) -> None:
        with self._state_lock:
            was_down, self._down = self._down, False
        if was_down:
            logger.info("rate limiter reaches Redis again")
