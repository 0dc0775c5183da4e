"""Every RateLimiter obeys the same contract: memory and Redis, sync and async."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis

from backend_kit.resilience import MemoryRateLimiter, RateLimit, RateLimitAlgorithm, RateLimiter
from backend_kit.resilience.redis import RedisRateLimiter


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest, unique_name: str) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    url: str = request.getfixturevalue("redis_url")
    async with RedisRateLimiter(url, key_prefix=f"{unique_name}:") as made:
        yield made
    cleanup = redis.Redis.from_url(url)
    keys = list(cleanup.scan_iter(match=f"{unique_name}:*"))
    if keys:
        cleanup.delete(*keys)
    cleanup.close()


# Long periods: nothing refills while a test runs, so counts are exact.
HOURLY = RateLimit(4, 3600.0)
HOURLY_GCRA = RateLimit(4, 3600.0, algorithm="gcra")


@pytest.mark.parametrize(
    ("algorithm", "retry_after"),
    [("sliding_window", 3600.0), ("gcra", 900.0)],  # the oldest call leaves / one interval
)
async def test_limit_then_refusal(
    limiter: RateLimiter, algorithm: RateLimitAlgorithm, retry_after: float
) -> None:
    limit = RateLimit(4, 3600.0, algorithm=algorithm)
    results = [await limiter.ahit("a", limit) for _ in range(5)]
    assert [r.allowed for r in results] == [True, True, True, True, False]
    assert [r.remaining for r in results] == [3, 2, 1, 0, 0]
    assert results[-1].retry_after == pytest.approx(retry_after, abs=1.0)
    assert results[-1].reset_after == pytest.approx(3600.0, abs=1.0)
    assert not any(r.degraded for r in results)


@pytest.mark.parametrize("limit", [HOURLY, HOURLY_GCRA])
async def test_sync_and_async_count_together(limiter: RateLimiter, limit: RateLimit) -> None:
    assert limiter.hit("a", limit, cost=3).remaining == 1
    assert (await limiter.ahit("a", limit)).remaining == 0
    assert not limiter.hit("a", limit).allowed


async def test_keys_and_limits_are_independent(limiter: RateLimiter) -> None:
    assert (await limiter.ahit("a", HOURLY, cost=4)).allowed
    assert (await limiter.ahit("b", HOURLY)).allowed
    assert (await limiter.ahit("a", RateLimit(4, 60.0))).allowed
    assert (await limiter.ahit("a", HOURLY_GCRA, cost=4)).allowed, "another algorithm"
    assert (await limiter.ahit("a", RateLimit(4, 3600.0, burst=2, algorithm="gcra"))).allowed
    assert not (await limiter.ahit("a", HOURLY)).allowed


@pytest.mark.parametrize(
    ("limit", "retry_after", "reset_after"),
    [(HOURLY, 3600.0, 3600.0), (HOURLY_GCRA, 900.0, 2700.0)],
)
async def test_refused_costs_change_nothing_and_zero_cost_peeks(
    limiter: RateLimiter, limit: RateLimit, retry_after: float, reset_after: float
) -> None:
    assert (await limiter.ahit("a", limit, cost=3)).allowed
    refused = await limiter.ahit("a", limit, cost=2)
    assert (refused.allowed, refused.remaining) == (False, 1)
    assert refused.retry_after == pytest.approx(retry_after, abs=1.0)
    peek = await limiter.ahit("a", limit, cost=0)
    assert (peek.allowed, peek.remaining) == (True, 1)
    assert peek.reset_after == pytest.approx(reset_after, abs=1.0)
    assert (await limiter.ahit("a", limit)).allowed
    assert not (await limiter.ahit("a", limit)).allowed


@pytest.mark.parametrize("limit", [HOURLY, HOURLY_GCRA])
async def test_reset(limiter: RateLimiter, limit: RateLimit) -> None:
    assert (await limiter.ahit("a", limit, cost=4)).allowed
    await limiter.areset("a", limit)
    assert (await limiter.ahit("a", limit)).remaining == 3
    limiter.reset("a", limit)
    assert limiter.hit("a", limit).remaining == 3


async def test_the_window_admits_no_more_than_the_amount(limiter: RateLimiter) -> None:
    """Where GCRA would refill one call per interval, the window waits for its oldest call."""
    limit = RateLimit(2, 0.2)
    results = [await limiter.ahit("a", limit) for _ in range(3)]
    assert [r.allowed for r in results] == [True, True, False]
    assert 0.1 < results[-1].retry_after <= 0.2
    await asyncio.sleep(0.11)  # past GCRA's interval (0.1 s), inside the window
    assert not (await limiter.ahit("a", limit)).allowed
    await asyncio.sleep(results[-1].retry_after - 0.11 + 0.02)
    assert [(await limiter.ahit("a", limit)).allowed for _ in range(3)] == [True, True, False]


async def test_gcra_burst_smaller_than_the_amount(limiter: RateLimiter) -> None:
    limit = RateLimit(60, 60.0, burst=2, algorithm="gcra")  # one a second, two at once
    results = [await limiter.ahit("a", limit) for _ in range(3)]
    assert [r.allowed for r in results] == [True, True, False]
    assert results[-1].retry_after == pytest.approx(1.0, abs=0.05)
    assert results[-1].headers()["RateLimit-Limit"] == "2"
