"""RedisRateLimiter on the real Redis: exact across processes, sliding, and Redis down."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from backend_kit.errors import ConfigurationError, RateLimiterUnavailableError
from backend_kit.resilience import (
    CircuitBreaker,
    CircuitState,
    RateLimit,
    RateLimitAlgorithm,
    RateLimiter,
)
from backend_kit.resilience.redis import GCRA_SCRIPT, SLIDING_WINDOW_SCRIPT, RedisRateLimiter
from tests.integration._own_redis_server import OwnRedis, start_own_redis


@pytest.fixture
async def limiter(redis_url: str, unique_name: str) -> AsyncIterator[RedisRateLimiter]:
    async with RedisRateLimiter(redis_url, key_prefix=f"{unique_name}:") as made:
        yield made
    cleanup = redis.Redis.from_url(redis_url)
    keys = list(cleanup.scan_iter(match=f"{unique_name}:*"))
    if keys:
        cleanup.delete(*keys)
    cleanup.close()


def test_satisfies_the_protocol(redis_url: str) -> None:
    assert isinstance(RedisRateLimiter(redis_url), RateLimiter)


async def test_limit_remaining_and_refusal(limiter: RedisRateLimiter) -> None:
    limit = RateLimit.parse("3/minute")
    results = [await limiter.ahit("alice", limit) for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0]
    assert not any(r.degraded for r in results)
    assert [r.reset_after for r in results] == pytest.approx([60.0] * 4, abs=0.05)
    assert results[3].retry_after == pytest.approx(60.0, abs=0.05), "the oldest call leaves"
    assert results[3].headers()["Retry-After"] == "60"
    assert (await limiter.ahit("bob", limit)).allowed, "keys are counted apart"
    await limiter.areset("alice", limit)
    assert (await limiter.ahit("alice", limit)).remaining == 2


async def test_the_window_is_a_sorted_set_of_redis_times(
    limiter: RedisRateLimiter, redis_url: str, unique_name: str
) -> None:
    """One member per unit of cost, scored by Redis's TIME in microseconds;
    the key expires one period after its newest call."""
    limit = RateLimit(5, 30.0)
    raw = redis.Redis.from_url(redis_url)
    try:
        seconds, micros = raw.time()
        before = seconds * 1_000_000 + micros
        assert (await limiter.ahit("k", limit, cost=3)).remaining == 2
        assert limiter.hit("k", limit).remaining == 1
        seconds, micros = raw.time()
        after = seconds * 1_000_000 + micros
        name = f"{unique_name}:{limit.key_part}:k"
        assert raw.type(name) == b"zset"
        entries: list[tuple[bytes, float]] = raw.zrange(name, 0, -1, withscores=True)  # type: ignore[assignment]
        ttl_ms = raw.pttl(name)
    finally:
        raw.close()
    assert len(entries) == 4
    assert len({member for member, _ in entries}) == 4, "members are unique"
    assert all(before <= score <= after for _, score in entries)
    assert 29_000 < ttl_ms <= 30_000


async def test_fractional_intervals_survive_the_round_trip_through_redis(
    limiter: RedisRateLimiter, redis_url: str, unique_name: str
) -> None:
    """GCRA at 3/second is one call every 333333.33... us: the TAT is stored as a float.

    Redis turns the Lua number into a string for SET (17 significant digits:
    b'1795677410100734.2'), which reads back as the same double; pinned here
    because exact counts depend on it.
    """
    limit = RateLimit(3, 1.0, algorithm="gcra")
    raw = redis.Redis.from_url(redis_url)
    try:
        seconds, micros = raw.time()
        before = seconds * 1_000_000 + micros
        first = await limiter.ahit("k", limit)
        seconds, micros = raw.time()
        after = seconds * 1_000_000 + micros
        stored = raw.get(f"{unique_name}:{limit.key_part}:k")
    finally:
        raw.close()
    assert stored is not None
    # TAT = Redis's now at the check + 333333.33 us; at ~1.8e15 us a double
    # resolves 0.25 us, which is the precision that survives (b'...734.2').
    tat = float(stored)
    assert before + 333_333.33 - 0.5 <= tat <= after + 333_333.34 + 0.5
    results = [first] + [await limiter.ahit("k", limit) for _ in range(3)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0]
    assert results[-1].retry_after == pytest.approx(1 / 3, abs=0.02)


async def test_sync_and_async_share_the_count(limiter: RedisRateLimiter) -> None:
    limit = RateLimit(4, 60.0)
    assert limiter.hit("k", limit, cost=2).remaining == 2
    assert (await limiter.ahit("k", limit)).remaining == 1
    refused = limiter.hit("k", limit, cost=2)
    assert not refused.allowed
    assert refused.remaining == 1
    assert refused.retry_after == pytest.approx(60.0, abs=0.05)
    assert (await limiter.ahit("k", limit, cost=0)).remaining == 1
    with pytest.raises(ConfigurationError):
        await limiter.ahit("k", limit, cost=5)
    limiter.reset("k", limit)
    assert limiter.hit("k", limit, cost=4).allowed


async def test_the_window_slides(limiter: RedisRateLimiter) -> None:
    """Each call gives its place back exactly one period after it was made."""
    limit = RateLimit(5, 1.0)
    first = [await limiter.ahit("k", limit) for _ in range(3)]
    await asyncio.sleep(0.5)
    second = [await limiter.ahit("k", limit) for _ in range(3)]
    assert [r.allowed for r in first + second] == [True] * 5 + [False]
    assert 0.4 < second[-1].retry_after <= 0.5, "the first three leave 1 s after they came"
    assert second[-1].reset_after == pytest.approx(1.0, abs=0.05)
    await asyncio.sleep(second[-1].retry_after + 0.02)
    again = [await limiter.ahit("k", limit) for _ in range(4)]
    assert [r.allowed for r in again] == [True, True, True, False], "three places came back"
    assert again[-1].retry_after <= 0.5


async def test_gcra_refills_one_call_per_interval(limiter: RedisRateLimiter) -> None:
    """After a burst, capacity comes back one call per interval, not all at a boundary."""
    limit = RateLimit(5, 2.0, algorithm="gcra")  # one call every 0.4 s, bursts of 5
    first = [await limiter.ahit("k", limit) for _ in range(6)]
    assert [r.allowed for r in first] == [True] * 5 + [False]
    wait = first[-1].retry_after
    assert 0.25 < wait <= 0.4
    await asyncio.sleep(wait + 0.02)
    again = [await limiter.ahit("k", limit) for _ in range(2)]
    assert [r.allowed for r in again] == [True, False], "one interval gives back one call"
    await asyncio.sleep(2.05)
    full = [await limiter.ahit("k", limit) for _ in range(6)]
    assert [r.allowed for r in full] == [True] * 5 + [False], "a whole period refills the burst"


async def test_the_script_is_loaded_again_after_script_flush(
    limiter: RedisRateLimiter, redis_url: str
) -> None:
    """NOSCRIPT (a restarted or failed-over server) costs one SCRIPT LOAD, not an error.

    SCRIPT FLUSH clears the script cache of the shared server; the only effect
    on other users is one reload, as after a restart.
    """
    admin = aioredis.Redis.from_url(redis_url)
    try:
        for algorithm, script in (("sliding_window", SLIDING_WINDOW_SCRIPT), ("gcra", GCRA_SCRIPT)):
            limit = RateLimit(10, 60.0, algorithm=algorithm)  # type: ignore[arg-type]
            assert (await limiter.ahit("k", limit)).allowed
            await admin.script_flush()
            assert await admin.script_exists(_sha(script)) == [False]
            result = await limiter.ahit("k", limit)
            assert result.allowed
            assert result.remaining == 8
            assert await admin.script_exists(_sha(script)) == [True]
            await admin.script_flush()
            assert limiter.hit("k", limit).remaining == 7
    finally:
        await admin.aclose()


def _sha(script: str) -> str:
    import hashlib

    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


# ------------------------------------------------------ exact across processes
_WORKER = textwrap.dedent(
    """
    import asyncio, json, sys, threading, time
    import redis
    from backend_kit.resilience import RateLimit
    from backend_kit.resilience.redis import RedisRateLimiter

    url, prefix, mode, algorithm = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    CLIENTS, HITS = 12, 60
    limit = RateLimit(500, 3600.0, algorithm=algorithm)
    limiter = RedisRateLimiter(url, key_prefix=prefix)
    barrier = redis.Redis.from_url(url)

    def wait_for_the_other_process():
        barrier.incr(prefix + "barrier")
        deadline = time.monotonic() + 20
        while int(barrier.get(prefix + "barrier")) < 2:
            assert time.monotonic() < deadline, "the other process never came"

    if mode == "async":
        async def client(key, hits):
            return [(await limiter.ahit(key, limit)).allowed for _ in range(hits)]
        async def main():
            # Warm up as many connections as there are clients, on another key.
            await asyncio.gather(*(client("warm-up", 1) for _ in range(CLIENTS)))
            wait_for_the_other_process()
            per_client = await asyncio.gather(*(client("shared", HITS) for _ in range(CLIENTS)))
            await limiter.aclose()
            return [a for results in per_client for a in results]
        allowed = asyncio.run(main())
    else:
        allowed = []
        lock = threading.Lock()
        start = threading.Barrier(CLIENTS + 1)
        def client():
            limiter.hit("warm-up", limit)
            start.wait()
            mine = [limiter.hit("shared", limit).allowed for _ in range(HITS)]
            with lock:
                allowed.extend(mine)
        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for t in threads: t.start()
        wait_for_the_other_process()
        start.wait()
        for t in threads: t.join()
    print(json.dumps({"attempts": len(allowed), "allowed": sum(allowed)}))
    """
)


@pytest.mark.parametrize("algorithm", ["sliding_window", "gcra"])
def test_two_processes_of_concurrent_clients_get_exactly_the_limit(
    redis_url: str, unique_name: str, algorithm: RateLimitAlgorithm
) -> None:
    """12 asyncio clients in one process and 12 threads in another, 1440 attempts, limit 500."""
    prefix = f"{unique_name}:"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, redis_url, prefix, mode, algorithm],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode in ("async", "sync")
    ]
    outputs = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=60)
            assert process.returncode == 0, err
            outputs.append(json.loads(out))
    finally:
        for process in processes:
            process.kill()
        cleanup = redis.Redis.from_url(redis_url)
        keys = list(cleanup.scan_iter(match=f"{prefix}*"))
        if keys:
            cleanup.delete(*keys)
        cleanup.close()
    assert [o["attempts"] for o in outputs] == [720, 720]
    assert sum(o["allowed"] for o in outputs) == 500
    assert all(o["allowed"] > 0 for o in outputs), "both processes took part"


_SLIDING_WORKER = textwrap.dedent(
    """
    import asyncio, json, sys, threading, time
    import redis
    from backend_kit.resilience import RateLimit
    from backend_kit.resilience.redis import RedisRateLimiter

    url, prefix, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    CLIENTS, SECONDS = 4, 2.3
    limit = RateLimit(20, 1.0)
    limiter = RedisRateLimiter(url, key_prefix=prefix)
    barrier = redis.Redis.from_url(url)
    barrier.incr(prefix + "barrier")
    deadline = time.monotonic() + 20
    while int(barrier.get(prefix + "barrier")) < 2:
        assert time.monotonic() < deadline, "the other process never came"
    stop = time.time() + SECONDS
    # (sent, answered) wall-clock times of every allowed call: both processes
    # share the host's clock, and the check happened in Redis in between.
    allowed = []
    attempts = 0
    if mode == "async":
        async def client():
            global attempts
            while time.time() < stop:
                sent = time.time()
                result = await limiter.ahit("shared", limit)
                attempts += 1
                if result.allowed:
                    allowed.append((sent, time.time()))
        async def main():
            await asyncio.gather(*(client() for _ in range(CLIENTS)))
            await limiter.aclose()
        asyncio.run(main())
    else:
        lock = threading.Lock()
        def client():
            global attempts
            while time.time() < stop:
                sent = time.time()
                result = limiter.hit("shared", limit)
                with lock:
                    attempts += 1
                    if result.allowed:
                        allowed.append((sent, time.time()))
        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for t in threads: t.start()
        for t in threads: t.join()
    print(json.dumps({"attempts": attempts, "allowed": allowed}))
    """
)


def test_no_window_of_the_period_holds_more_than_the_limit_across_processes(
    redis_url: str, unique_name: str
) -> None:
    """Two processes (4 asyncio clients, 4 threads) hammer a 20/second limit for 2.3 s.

    Each allowed call happened inside Redis between its send and answer
    times, so if no window of 1 s holds more than 20 allowed calls, any 21
    allowed calls span more than 1 s from the first send to the last answer.
    And the window keeps sliding: 20 calls come back each second.
    """
    prefix = f"{unique_name}:"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _SLIDING_WORKER, redis_url, prefix, mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode in ("async", "sync")
    ]
    outputs = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=60)
            assert process.returncode == 0, err
            outputs.append(json.loads(out))
    finally:
        for process in processes:
            process.kill()
        cleanup = redis.Redis.from_url(redis_url)
        keys = list(cleanup.scan_iter(match=f"{prefix}*"))
        if keys:
            cleanup.delete(*keys)
        cleanup.close()
    calls = sorted((sent, answered) for o in outputs for sent, answered in o["allowed"])
    assert all(o["attempts"] > len(o["allowed"]) for o in outputs), "the limit was reached"
    limit, period = 20, 1.0
    for first in range(len(calls) - limit):
        group = calls[first : first + limit + 1]
        span = max(answered for _, answered in group) - group[0][0]
        assert span >= period, f"{limit + 1} allowed calls within {span:.3f} s"
    span = max(answered for _, answered in calls) - calls[0][0]
    assert len(calls) <= limit * (int(span / period) + 1)
    # 2.3 s of hammering: the first 20, the 20 that came back after 1 s, and after 2 s.
    assert len(calls) >= 2 * limit, "the window slid"


# ------------------------------------------------------------- Redis down
@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = start_own_redis(tmp_path)
    try:
        yield server
    finally:
        server.kill()


@pytest.mark.fault
async def test_redis_down_allow_policy_logs_once_and_recovers(
    own_redis: OwnRedis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="backend_kit.resilience")
    breaker = CircuitBreaker("limiter redis", failure_threshold=3, reset_timeout=0.3)
    limit = RateLimit(2, 60.0)
    async with RedisRateLimiter(own_redis.url, on_backend_down="allow", breaker=breaker) as limiter:
        assert (await limiter.ahit("k", limit)).degraded is False
        own_redis.kill()
        answers = [await limiter.ahit("k", limit) for _ in range(10)]
        assert all(a.allowed and a.degraded for a in answers)
        assert limiter.hit("k", limit).allowed
        assert breaker.state is CircuitState.OPEN, "3 failures opened the breaker"
        warnings = [r for r in caplog.records if "cannot reach Redis" in r.getMessage()]
        assert len(warnings) == 1, "logged once per interval, not once per call"
        assert "policy 'allow'" in warnings[0].getMessage()

        # Redis comes back on the same port: after the breaker's reset timeout
        # the limiter counts for real again.
        revived = start_own_redis(tmp_path, own_redis.port)
        try:
            await asyncio.sleep(0.35)
            back = await limiter.ahit("k", limit)
            assert (back.allowed, back.degraded, back.remaining) == (True, False, 1)
            assert "rate limiter reaches Redis again" in caplog.text
        finally:
            revived.kill()


@pytest.mark.fault
async def test_redis_down_deny_policy(own_redis: OwnRedis) -> None:
    limit = RateLimit(5, 60.0)
    async with RedisRateLimiter(
        own_redis.url, on_backend_down="deny", retry_after_when_down=2.5
    ) as limiter:
        assert (await limiter.ahit("k", limit)).allowed
        own_redis.kill()
        refused = await limiter.ahit("k", limit)
        assert (refused.allowed, refused.degraded, refused.retry_after) == (False, True, 2.5)
        assert refused.headers()["Retry-After"] == "3"
        assert not limiter.hit("k", limit).allowed


@pytest.mark.fault
async def test_redis_down_raise_policy(own_redis: OwnRedis) -> None:
    limit = RateLimit(5, 60.0)
    async with RedisRateLimiter(own_redis.url, on_backend_down="raise") as limiter:
        assert (await limiter.ahit("k", limit)).allowed
        own_redis.kill()
        with pytest.raises(RateLimiterUnavailableError) as raised:
            await limiter.ahit("k", limit)
        assert "127.0.0.1" not in str(raised.value)
        with pytest.raises(RateLimiterUnavailableError):
            limiter.hit("k", limit)
        with pytest.raises(RateLimiterUnavailableError):
            await limiter.areset("k", limit)


@pytest.mark.fault
async def test_a_server_that_never_answers_costs_the_timeout_then_nothing(
    tmp_path: Path,
) -> None:
    """A hung Redis (SIGSTOP): the first calls wait `timeout`, then the breaker answers at once."""
    server = start_own_redis(tmp_path)
    limiter = RedisRateLimiter(
        server.url,
        timeout=0.1,
        breaker=CircuitBreaker("hung", failure_threshold=2, reset_timeout=60.0),
    )
    limit = RateLimit(5, 60.0)
    try:
        assert (await limiter.ahit("k", limit)).allowed
        server.process.send_signal(19)  # SIGSTOP
        started = time.perf_counter()
        for _ in range(2):
            assert (await limiter.ahit("k", limit)).degraded
        assert time.perf_counter() - started >= 0.15
        started = time.perf_counter()
        for _ in range(50):
            assert (await limiter.ahit("k", limit)).degraded
        assert time.perf_counter() - started < 0.1, "the open breaker spares the timeout"
    finally:
        server.process.send_signal(18)  # SIGCONT, so kill is clean
        server.kill()
        await limiter.aclose()


def test_configuration_errors(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError):
        RedisRateLimiter()
    with pytest.raises(ConfigurationError):
        RedisRateLimiter(redis_url, on_backend_down="maybe")  # type: ignore[arg-type]
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(ConfigurationError):
        RedisRateLimiter.from_env()
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@127.0.0.1:6379/0")
    made = RedisRateLimiter.from_env(on_backend_down="deny")
    assert "hunter2" not in repr(made)
    assert "deny" in repr(made)
    only_async = RedisRateLimiter(client=aioredis.Redis.from_url(redis_url))
    with pytest.raises(ConfigurationError):
        only_async.hit("k", RateLimit(1, 1.0))


async def test_ping(limiter: RedisRateLimiter) -> None:
    await limiter.aping()
    limiter.ping()
