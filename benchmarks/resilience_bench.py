"""Resilience benchmarks: rate-limit check vs one raw Redis round trip, breaker and retry overhead.

Run: ``python benchmarks/resilience_bench.py`` (Redis from ``REDIS_URL`` or
``BACKEND_KIT_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/0``).

Every contender runs in the same process, in interleaved rounds (round 1 of
each, round 2 of each, ...), so a noisy neighbour slows them all alike; the
table shows the median over rounds and the ratio to the floor.

* Rate limit, async and sync: ``RedisRateLimiter.ahit``/``hit`` (sliding
  window, the default, and GCRA) against one raw ``EVALSHA`` of a trivial
  script (``return 1``) and one ``PING`` on the same redis-py client type, and
  against the ``limits`` library's Redis strategies (on redis-py too), all on
  the same limit, never reached during the run (every check records a call).
* Circuit breaker: a successful call through the decorator minus the same
  bare call, for backend_kit, pybreaker and aiobreaker.
* Retry: a successful call through stamina and through tenacity, minus the
  bare call (why the ``resilience`` extra is stamina).

Bounded: about a minute on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import redis
import redis.asyncio as aioredis

from backend_kit.resilience import CircuitBreaker, RateLimit
from backend_kit.resilience.redis import RedisRateLimiter

URL = os.environ.get("REDIS_URL") or os.environ.get(
    "BACKEND_KIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"
)
PREFIX = f"bk_bench_{uuid.uuid4().hex[:8]}:"
# Redis contenders take turns every REDIS_OPS calls, REDIS_ROUNDS times: short
# turns so a burst of load from a neighbour lands on all of them alike.
REDIS_ROUNDS = 300
REDIS_OPS = 20
ROUNDS = 7  # in-process overheads: rounds of CALL_OPS calls per contender
CALL_OPS = 100_000

# A limit that never refuses during the run: every check does the full
# read-decide-write, the common case of a real service. The window strategies
# keep one entry per call: about 6 000 per contender at the end of a run.
AMOUNT = 100_000
WINDOW = RateLimit(AMOUNT, 3600.0)
GCRA = RateLimit(AMOUNT, 3600.0, algorithm="gcra")


def _quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _table(title: str, unit: str, results: dict[str, list[float]], floor: str | None) -> None:
    """Median per contender with its interquartile range, and two ratios to the floor.

    ``ratio``: median over median, the figure the targets are judged on.
    ``paired``: the median of per-round ratios (each round's contender time
    over the same round's floor time), which cancels load that comes and goes
    between rounds; shown for context.
    """
    print(f"\n{title}")
    width = max(len(name) for name in results) + 2
    base = statistics.median(results[floor]) if floor else None
    print(f"  {'contender':<{width}} {'median':>10} {'p25':>10} {'p75':>10}  ratio  paired")
    for name, samples in results.items():
        median = statistics.median(samples)
        ratio = paired = ""
        if floor and base:
            ratio = f"{median / base:5.2f}x"
            per_round = [s / f for s, f in zip(samples, results[floor], strict=True)]
            paired = f"{statistics.median(per_round):5.2f}x"
        print(
            f"  {name:<{width}} {median:>8.2f}{unit} {_quantile(samples, 0.25):>8.2f}{unit} "
            f"{_quantile(samples, 0.75):>8.2f}{unit}  {ratio} {paired}"
        )


# ------------------------------------------------------------------ redis
async def bench_async_rate_limit() -> dict[str, list[float]]:
    client = aioredis.Redis.from_url(URL)
    trivial = await client.script_load("return 1")
    limiter = RedisRateLimiter(client=client, key_prefix=PREFIX)
    contenders: dict[str, Callable[[], Awaitable[object]]] = {
        "raw EVALSHA 'return 1'": lambda: client.evalsha(trivial, 0),
        "raw PING": client.ping,
        "RedisRateLimiter.ahit (sliding window)": lambda: limiter.ahit("user:1", WINDOW),
        "RedisRateLimiter.ahit (gcra)": lambda: limiter.ahit("user:1", GCRA),
    }
    peers: list[object] = []
    if importlib.util.find_spec("limits"):
        from limits import RateLimitItemPerHour
        from limits.aio.storage import RedisStorage
        from limits.aio.strategies import (
            MovingWindowRateLimiter,
            SlidingWindowCounterRateLimiter,
        )

        storage = RedisStorage(
            URL.replace("redis://", "async+redis://"),
            implementation="redispy",
            key_prefix=PREFIX + "limits",
        )
        item = RateLimitItemPerHour(AMOUNT)
        moving = MovingWindowRateLimiter(storage)
        sliding = SlidingWindowCounterRateLimiter(storage)
        contenders["limits moving window (hit)"] = lambda: moving.hit(item, "user:1")
        contenders["limits sliding counter (hit)"] = lambda: sliding.hit(item, "user:1")
        peers.append(storage)
    for call in contenders.values():  # warm up: connections, script cache
        for _ in range(50):
            await call()
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(REDIS_ROUNDS):
        for name, call in contenders.items():
            started = time.perf_counter()
            for _ in range(REDIS_OPS):
                await call()
            results[name].append((time.perf_counter() - started) / REDIS_OPS * 1e6)
    await client.aclose()
    return results


def bench_sync_rate_limit() -> dict[str, list[float]]:
    client = redis.Redis.from_url(URL)
    trivial = client.script_load("return 1")
    limiter = RedisRateLimiter(sync_client=client, key_prefix=PREFIX)
    contenders: dict[str, Callable[[], object]] = {
        "raw EVALSHA 'return 1'": lambda: client.evalsha(trivial, 0),
        "RedisRateLimiter.hit (sliding window)": lambda: limiter.hit("user:1", WINDOW),
        "RedisRateLimiter.hit (gcra)": lambda: limiter.hit("user:1", GCRA),
    }
    if importlib.util.find_spec("limits"):
        from limits import RateLimitItemPerHour
        from limits.storage import RedisStorage
        from limits.strategies import MovingWindowRateLimiter

        storage = RedisStorage(URL, key_prefix=PREFIX + "limits_sync")
        moving = MovingWindowRateLimiter(storage)
        item = RateLimitItemPerHour(AMOUNT)
        contenders["limits moving window (hit)"] = lambda: moving.hit(item, "user:1")
    for call in contenders.values():
        for _ in range(50):
            call()
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(REDIS_ROUNDS):
        for name, call in contenders.items():
            started = time.perf_counter()
            for _ in range(REDIS_OPS):
                call()
            results[name].append((time.perf_counter() - started) / REDIS_OPS * 1e6)
    client.close()
    return results


def cleanup() -> None:
    client = redis.Redis.from_url(URL)
    keys = list(client.scan_iter(match=f"{PREFIX}*"))
    keys += list(client.scan_iter(match=f"*{PREFIX}*"))
    if keys:
        client.delete(*set(keys))
    client.close()


# ---------------------------------------------------------- in-process overheads
def _per_call_ns(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    for _ in range(CALL_OPS):
        call()
    return (time.perf_counter() - started) / CALL_OPS * 1e9


def bench_breaker_sync() -> dict[str, list[float]]:
    def work() -> int:
        return 1

    contenders: dict[str, Callable[[], object]] = {
        "bare call": work,
        "backend_kit CircuitBreaker": CircuitBreaker("bench")(work),
        "backend_kit (failure_ratio)": CircuitBreaker("bench", failure_ratio=0.5)(work),
    }
    if importlib.util.find_spec("pybreaker"):
        import pybreaker

        contenders["pybreaker"] = pybreaker.CircuitBreaker()(work)
    return _overheads(contenders)


def _overheads(contenders: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(ROUNDS):
        for name, call in contenders.items():
            samples[name].append(_per_call_ns(call))
    # Report overhead: each round's time minus that round's bare call.
    bare = samples.pop("bare call")
    return {
        name: [t - b for t, b in zip(times, bare, strict=True)] for name, times in samples.items()
    }


async def bench_breaker_async() -> dict[str, list[float]]:
    async def work() -> int:
        return 1

    contenders: dict[str, Callable[[], Awaitable[object]]] = {
        "bare await": work,
        "backend_kit CircuitBreaker": CircuitBreaker("bench")(work),
    }
    if importlib.util.find_spec("aiobreaker"):
        import aiobreaker

        peer = aiobreaker.CircuitBreaker()
        contenders["aiobreaker"] = lambda: peer.call_async(work)
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(ROUNDS):
        for name, call in contenders.items():
            started = time.perf_counter()
            for _ in range(CALL_OPS):
                await call()
            samples[name].append((time.perf_counter() - started) / CALL_OPS * 1e9)
    bare = samples.pop("bare await")
    return {
        name: [t - b for t, b in zip(times, bare, strict=True)] for name, times in samples.items()
    }


def bench_retry() -> dict[str, list[float]]:
    import stamina
    import tenacity

    def work() -> int:
        return 1

    contenders: dict[str, Callable[[], object]] = {
        "bare call": work,
        "stamina.retry": stamina.retry(on=ConnectionError, attempts=3)(work),
        "tenacity.retry": tenacity.retry(
            retry=tenacity.retry_if_exception_type(ConnectionError),
            stop=tenacity.stop_after_attempt(3),
            wait=tenacity.wait_exponential_jitter(max=5.0),
        )(work),
    }
    global CALL_OPS
    saved, CALL_OPS = CALL_OPS, 10_000
    try:
        return _overheads(contenders)
    finally:
        CALL_OPS = saved


def main() -> None:
    print(
        f"resilience benchmark: Redis at {URL.split('@')[-1]}; Redis contenders in "
        f"{REDIS_ROUNDS} interleaved rounds of {REDIS_OPS} calls, overheads in {ROUNDS} rounds "
        f"of {CALL_OPS} calls"
    )
    try:
        async_results = asyncio.run(bench_async_rate_limit())
        sync_results = bench_sync_rate_limit()
    finally:
        cleanup()
    _table(
        "Rate-limit check, asyncio (µs per call, one at a time)",
        "µs",
        async_results,
        "raw EVALSHA 'return 1'",
    )
    _table("Rate-limit check, sync (µs per call)", "µs", sync_results, "raw EVALSHA 'return 1'")
    _table(
        "Circuit breaker, successful sync call (ns added to a bare call)",
        "ns",
        bench_breaker_sync(),
        None,
    )
    _table(
        "Circuit breaker, successful async call (ns added to a bare await)",
        "ns",
        asyncio.run(bench_breaker_async()),
        None,
    )
    _table("Retry decorator, successful call (ns added to a bare call)", "ns", bench_retry(), None)


if __name__ == "__main__":
    main()
