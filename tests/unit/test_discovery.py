"""Discovery without any network: payloads, durations, the cache and the memory registry's clock."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest

from backend_kit.discovery import (
    CheckStatus,
    HttpCheck,
    InMemoryServiceRegistry,
    ServiceInstance,
    StaleWhileUnavailableCache,
    TtlCheck,
    parse_duration,
)
from backend_kit.discovery._cache import LOG_INTERVAL
from backend_kit.discovery._models import format_duration
from backend_kit.errors import ConfigurationError, RegistryUnavailableError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15s", 15.0), ("1m", 60.0), ("1m30s", 90.0), ("250ms", 0.25), ("1h", 3600.0), (2, 2.0)],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "s", "10 s", "1x", "-1s", -1])
def test_parse_duration_refuses_what_consul_would(text: str | float) -> None:
    with pytest.raises(ConfigurationError):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    assert format_duration(15) == "15s"
    assert format_duration(0.25) == "250ms"
    assert parse_duration(format_duration(0.1)) == pytest.approx(0.1)


def test_service_instance_is_frozen_hashable_and_formats_its_endpoint() -> None:
    instance = ServiceInstance("api-1", "api", "10.0.0.1", 8080, ["a"], {"k": "v"})  # type: ignore[arg-type]
    assert instance.endpoint == "10.0.0.1:8080"
    assert instance.tags == ("a",)
    assert instance.meta == {"k": "v"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        instance.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        instance.meta["k"] = "changed"  # type: ignore[index]
    assert (
        len({instance, ServiceInstance("api-1", "api", "10.0.0.1", 8080, ("a",), {"k": "v"})}) == 1
    )
    assert ServiceInstance("i", "n", "::1", 80).endpoint == "[::1]:80"


def test_check_definitions_are_validated() -> None:
    assert TtlCheck("15s").ttl_seconds == 15
    with pytest.raises(ConfigurationError):
        TtlCheck("0s")
    with pytest.raises(ConfigurationError):
        HttpCheck("localhost:8080/health")
    with pytest.raises(ConfigurationError):
        HttpCheck("http://h/health", interval="often")
    assert HttpCheck("http://h/health").deregister_after == "1m"


# ---------------------------------------------------------------------- cache
async def test_cache_serves_fresh_then_reloads() -> None:
    clock = FakeClock()
    cache: StaleWhileUnavailableCache[str, int] = StaleWhileUnavailableCache(
        ttl=1.0, max_stale=10.0, clock=clock
    )
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert await cache.get("k", load) == 1
    assert await cache.get("k", load) == 1
    clock.now += 1.5
    assert await cache.get("k", load) == 2
    cache.invalidate(lambda key: key == "k")
    assert await cache.get("k", load) == 3


async def test_cache_serves_stale_within_the_bound_then_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    cache: StaleWhileUnavailableCache[str, str] = StaleWhileUnavailableCache(
        ttl=1.0, max_stale=5.0, clock=clock
    )

    async def good() -> str:
        return "answer"

    async def down() -> str:
        raise RegistryUnavailableError("down")

    await cache.get("k", good)
    clock.now += 4.0
    with caplog.at_level(logging.WARNING, logger="backend_kit.discovery"):
        assert await cache.get("k", down) == "answer"
    assert "4.0 s old" in caplog.text
    clock.now += 2.0
    with pytest.raises(RegistryUnavailableError):
        await cache.get("k", down)
    with pytest.raises(RegistryUnavailableError):
        await cache.get("other", down)


async def test_cache_logs_stale_answers_once_per_interval_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    cache: StaleWhileUnavailableCache[str, str] = StaleWhileUnavailableCache(
        ttl=0, max_stale=30.0, clock=clock
    )

    async def good() -> str:
        return "answer"

    async def down() -> str:
        raise RegistryUnavailableError("down")

    await cache.get("k", good)
    with caplog.at_level(logging.WARNING, logger="backend_kit.discovery"):
        for _ in range(100):  # as fast as an open circuit breaker lets them come
            assert await cache.get("k", down) == "answer"
        assert len(caplog.records) == 1
        clock.now += LOG_INTERVAL
        assert await cache.get("k", down) == "answer"
        assert len(caplog.records) == 2
        assert "(99 more since the last line)" in caplog.records[1].getMessage()
        clock.now += 25.0  # past max_stale: refusing is news, logged at once
        with pytest.raises(RegistryUnavailableError):
            await cache.get("k", down)
        assert len(caplog.records) == 3
        assert caplog.records[2].levelno == logging.ERROR
        with pytest.raises(RegistryUnavailableError):
            await cache.get("k", down)
        assert len(caplog.records) == 3
        await cache.get("k", good)  # a fresh answer: the next outage is logged at once
        assert await cache.get("k", down) == "answer"
        assert len(caplog.records) == 4


async def test_cache_other_errors_are_never_masked_by_stale_answers() -> None:
    cache: StaleWhileUnavailableCache[str, str] = StaleWhileUnavailableCache(ttl=0, max_stale=60)

    async def good() -> str:
        return "answer"

    async def broken() -> str:
        raise ValueError("bad")

    await cache.get("k", good)
    with pytest.raises(ValueError, match="bad"):
        await cache.get("k", broken)


async def test_cache_loads_once_for_concurrent_callers_and_survives_a_cancelled_leader() -> None:
    cache: StaleWhileUnavailableCache[str, int] = StaleWhileUnavailableCache(ttl=10, max_stale=10)
    release = asyncio.Event()
    calls = 0

    async def slow() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return calls

    leader = asyncio.create_task(cache.get("k", slow))
    await asyncio.sleep(0)
    followers = [asyncio.create_task(cache.get("k", slow)) for _ in range(5)]
    await asyncio.sleep(0)
    leader.cancel()
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*followers)
    assert len(set(results)) == 1  # one follower took over the load; the rest shared it
    assert calls == 2
    assert leader.cancelled()


def test_cache_bounds_are_checked() -> None:
    with pytest.raises(ConfigurationError):
        StaleWhileUnavailableCache(ttl=-1, max_stale=1)
    with pytest.raises(ConfigurationError):
        StaleWhileUnavailableCache(ttl=5, max_stale=1)


# ------------------------------------------------------------- memory clock
async def test_memory_ttl_expires_on_the_clock() -> None:
    clock = FakeClock()
    registry = InMemoryServiceRegistry(clock=clock)
    await registry.register_service("api", "api-1", 1, check=TtlCheck("10s"))
    assert await registry.update_ttl("api-1")
    clock.now += 9.9
    assert await registry.discover_service("api") == ["127.0.0.1:1"]
    clock.now += 0.2
    assert await registry.discover_service("api") == []
    assert registry.registered_ids() == ["api-1"]  # critical, still registered


async def test_memory_set_check_status_plays_the_probe() -> None:
    registry = InMemoryServiceRegistry(node_address="10.0.0.1")
    await registry.register_service("api", "api-1", 1, check=HttpCheck("http://h/health"))
    assert await registry.discover_service("api") == ["10.0.0.1:1"]
    registry.set_check_status("api-1", "critical")
    assert await registry.discover_service("api") == []
    with pytest.raises(KeyError):
        registry.set_check_status("nobody", "passing")
    with pytest.raises(ConfigurationError):
        await registry.update_ttl("api-1", "unknown")  # type: ignore[arg-type]
    assert await registry.aping() is True
    await registry.aclose()


async def test_memory_watch_wakes_up_when_a_ttl_runs_out() -> None:
    registry = InMemoryServiceRegistry()
    await registry.register_service("api", "api-1", 1, check=TtlCheck("200ms"))
    await registry.update_ttl("api-1")
    seen: list[int] = []

    async def consume() -> None:
        async for instances in registry.watch("api"):
            seen.append(len(instances))
            if len(seen) == 2:
                return

    await asyncio.wait_for(consume(), 2)
    assert seen == [1, 0]


async def test_choose_rejects_an_unknown_strategy() -> None:
    registry = InMemoryServiceRegistry()
    await registry.register_service("api", "api-1", 1)
    with pytest.raises(ConfigurationError):
        await registry.choose("api", strategy="fastest")  # type: ignore[arg-type]


async def test_registered_refuses_a_non_positive_heartbeat_and_still_deregisters() -> None:
    registry = InMemoryServiceRegistry()
    with pytest.raises(ConfigurationError):
        async with registry.registered("api", "api-1", 1, heartbeat_interval=-1):
            pass
    assert registry.registered_ids() == []


async def test_a_heartbeat_that_dies_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(InMemoryServiceRegistry):
        beats = 0

        async def update_ttl(
            self, service_id: str, status: CheckStatus = "passing", *, note: str | None = None
        ) -> bool:
            self.beats += 1
            if self.beats > 1:
                raise ZeroDivisionError("bug in a subclass")
            return True

    registry = Broken()
    with caplog.at_level(logging.ERROR, logger="backend_kit.discovery"):
        async with registry.registered("api", "api-1", 1, heartbeat_interval=0.01):
            await asyncio.sleep(0.1)
    assert "heartbeat api-1 stopped: ZeroDivisionError" in caplog.text
    assert registry.registered_ids() == []
