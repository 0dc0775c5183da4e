"""Every RateLimiter obeys the same contract: memory and Redis, sync and async."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis

from backend_kit.resilience import MemoryRateLimiter, RateLimit, RateLimiter
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


async def test_burst_then_refusal(limiter: RateLimiter) -> None:
    results = [await limiter.ahit("a", HOURLY) for _ in range(5)]
    assert [r.allowed for r in results] == [True, True, True, True, False]
    assert [r.remaining for r in results] == [3, 2, 1, 0, 0]
    assert results[-1].retry_after == pytest.approx(900.0, abs=1.0)
    assert results[-1].reset_after == pytest.approx(3600.0, abs=1.0)
    assert not any(r.degraded for r in results)


async def test_sync_and_async_count_together(limiter: RateLimiter) -> None:
    assert limiter.hit("a", HOURLY, cost=3).remaining == 1
    assert (await limiter.ahit("a", HOURLY)).remaining == 0
    assert not limiter.hit("a", HOURLY).allowed


async def test_keys_and_limits_are_independent(limiter: RateLimiter) -> None:
    assert (await limiter.ahit("a", HOURLY, cost=4)).allowed
    assert (await limiter.ahit("b", HOURLY)).allowed
    assert (await limiter.ahit("a", RateLimit(4, 60.0))).allowed
    assert (await limiter.ahit("a", RateLimit(4, 3600.0, burst=2))).allowed
    assert not (await limiter.ahit("a", HOURLY)).allowed


async def test_refused_costs_change_nothing_and_zero_cost_peeks(limiter: RateLimiter) -> None:
    assert (await limiter.ahit("a", HOURLY, cost=3)).allowed
    refused = await limiter.ahit("a", HOURLY, cost=2)
    assert (refused.allowed, refused.remaining) == (False, 1)
    assert refused.retry_after == pytest.approx(900.0, abs=1.0)
    peek = await limiter.ahit("a", HOURLY, cost=0)
    assert (peek.allowed, peek.remaining) == (True, 1)
    assert (await limiter.ahit("a", HOURLY)).allowed


async def test_reset(limiter: RateLimiter) -> None:
    assert (await limiter.ahit("a", HOURLY, cost=4)).allowed
    await limiter.areset("a", HOURLY)
    assert (await limiter.ahit("a", HOURLY)).remaining == 3
    limiter.reset("a", HOURLY)
    assert limiter.hit("a", HOURLY).remaining == 3


async def test_a_burst_smaller_than_the_amount(limiter: RateLimiter) -> None:
    limit = RateLimit(60, 60.0, burst=2)  # one a second, at most two at once
    results = [await limiter.ahit("a", limit) for _ in range(3)]
    assert [r.allowed for r in results] == [True, True, False]
    assert results[-1].retry_after == pytest.approx(1.0, abs=0.05)
    assert results[-1].headers()["RateLimit-Limit"] == "2"
