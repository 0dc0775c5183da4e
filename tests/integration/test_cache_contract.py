"""One behaviour contract for every cache backend: MemoryCache, fakeredis and the real Redis."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import fakeredis
import pytest

from backend_kit.cache import (
    CacheBackend,
    CacheEvent,
    CacheHooks,
    CacheManager,
    MemoryCache,
    PickleSerializer,
)
from backend_kit.cache.redis import RedisCache

BACKENDS = ["memory", "fakeredis", "redis"]


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[CacheBackend]:
    cache: CacheBackend
    if request.param == "memory":
        cache = MemoryCache()
    elif request.param == "fakeredis":
        server = fakeredis.FakeServer()
        cache = RedisCache(
            client=fakeredis.FakeRedis(server=server),
            async_client=fakeredis.FakeAsyncRedis(server=server),
        )
    else:
        cache = RedisCache(request.getfixturevalue("redis_url"))
    yield cache
    await cache.aclose()


@pytest.fixture
async def manager(backend: CacheBackend, unique_name: str) -> AsyncIterator[CacheManager]:
    manager = CacheManager(backend, namespace=unique_name, cooldown=0.5)
    yield manager
    await manager.aclear()


class Recorder(CacheHooks):
    def __init__(self) -> None:
        self.events: list[CacheEvent] = []

    def on_hit(self, event: CacheEvent) -> None:
        self.events.append(event)

    def on_miss(self, event: CacheEvent) -> None:
        self.events.append(event)


def test_sync_miss_then_hit_and_none_is_cached(manager: CacheManager) -> None:
    calls: list[int] = []

    @manager.cache_result(ttl=30)
    def lookup(user_id: int) -> dict[str, Any] | None:
        calls.append(user_id)
        return None if user_id == 0 else {"id": user_id, "tags": ["a", "b"], "score": 1.5}

    assert lookup(1) == {"id": 1, "tags": ["a", "b"], "score": 1.5}
    assert lookup(1) == {"id": 1, "tags": ["a", "b"], "score": 1.5}
    assert lookup(0) is None
    assert lookup(0) is None  # a cached None is a hit
    assert calls == [1, 0]
    stats = lookup.stats()
    assert (stats.hits, stats.misses, stats.computations) == (2, 2, 2)


async def test_async_miss_then_hit(manager: CacheManager) -> None:
    calls: list[int] = []

    @manager.cache_result(ttl=30)
    async def lookup(user_id: int, verbose: bool = False) -> list[int]:
        calls.append(user_id)
        return [user_id, int(verbose)]

    assert await lookup(7) == [7, 0]
    assert await lookup(user_id=7) == [7, 0]  # bound with defaults: same key
    assert await lookup(7, False) == [7, 0]
    assert await lookup(7, verbose=True) == [7, 1]
    assert calls == [7, 7]
    assert lookup.cache_key(7) == lookup.cache_key(user_id=7, verbose=False)


async def test_results_are_copies(manager: CacheManager) -> None:
    @manager.cache_result(ttl=30)
    async def listing() -> list[int]:
        return [1, 2]

    first = await listing()
    first.append(3)
    assert await listing() == [1, 2]


async def test_entries_expire_after_ttl(manager: CacheManager) -> None:
    calls = 0

    @manager.cache_result(ttl=0.2)
    async def tick() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert await tick() == 1
    assert await tick() == 1
    await asyncio.sleep(0.35)
    assert await tick() == 2


async def test_invalidate_by_args_key_function_and_namespace(
    manager: CacheManager, backend: CacheBackend, unique_name: str
) -> None:
    calls: list[str] = []

    @manager.cache_result(ttl=30)
    async def word(text: str) -> str:
        calls.append(text)
        return text.upper()

    @manager.cache_result(ttl=30)
    def number(n: int) -> int:
        calls.append(str(n))
        return n

    other = CacheManager(backend, namespace=unique_name + "_other")

    @other.cache_result(ttl=30)
    def elsewhere() -> str:
        calls.append("elsewhere")
        return "kept"

    await word("a")
    await word("b")
    number(1)
    elsewhere()
    assert await word.invalidate("a") is True
    assert await word.invalidate("a") is False
    await word("a")
    assert calls.count("a") == 2
    assert manager.invalidate_key(number.cache_key(1)) == 1
    number(1)
    assert calls.count("1") == 2
    assert await word.invalidate_all() == 2
    await word("b")
    assert calls.count("b") == 2
    assert await manager.aclear() >= 2
    number(1)
    assert calls.count("1") == 3
    elsewhere()
    assert calls.count("elsewhere") == 1  # another namespace is untouched
    other.clear()


def test_methods_leave_self_out_and_classmethods_work(manager: CacheManager) -> None:
    calls: list[str] = []

    class Repo:
        def __init__(self, name: str) -> None:
            self.name = name

        @manager.cache_result(ttl=30)
        def find(self, item_id: int) -> str:
            calls.append(f"{self.name}:{item_id}")
            return f"item{item_id}"

        @manager.cache_result(ttl=30)
        @classmethod
        def build(cls, item_id: int) -> str:
            calls.append(f"{cls.__name__}:{item_id}")
            return f"built{item_id}"

    first, second = Repo("first"), Repo("second")
    assert first.find(1) == "item1"
    assert second.find(1) == "item1"  # self is not part of the key
    assert first.find.cache_key(1) == Repo.find.cache_key(second, 1)
    # mypy cannot see through cache_result above @classmethod (documented):
    # the runtime binding is what this test pins.
    assert Repo.build(2) == "built2"  # type: ignore[call-arg, arg-type]
    assert first.build(2) == "built2"
    assert calls == ["first:1", "Repo:2"]
    assert first.find.invalidate(1) is True
    assert Repo.build.invalidate(2) is True  # type: ignore[call-arg, arg-type]
    first.find(1)
    assert len(calls) == 3


async def test_two_hundred_concurrent_cold_calls_compute_once(manager: CacheManager) -> None:
    calls = 0

    @manager.cache_result(ttl=30)
    async def slow(n: int) -> dict[str, int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return {"n": n}

    results = await asyncio.gather(*(slow(5) for _ in range(200)))
    assert calls == 1
    assert all(r == {"n": 5} for r in results)
    results[0]["n"] = 6  # joiners got their own copies
    assert results[1] == {"n": 5}
    stats = slow.stats()
    assert stats.computations == 1
    assert stats.joined + stats.hits == 199


async def test_failing_leader_fails_its_joiners_then_the_next_call_retries(
    manager: CacheManager,
) -> None:
    attempts = 0

    @manager.cache_result(ttl=30)
    async def flaky() -> int:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.02)
        if attempts == 1:
            raise RuntimeError("boom")
        return attempts

    results = await asyncio.gather(*(flaky() for _ in range(20)), return_exceptions=True)
    assert attempts == 1
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await flaky() == 2


async def test_cancelled_leader_does_not_cancel_joiners(manager: CacheManager) -> None:
    calls = 0

    @manager.cache_result(ttl=30)
    async def slow() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.1)
        return 42

    leader = asyncio.create_task(slow())
    await asyncio.sleep(0.02)
    joiners = [asyncio.create_task(slow()) for _ in range(5)]
    await asyncio.sleep(0.01)
    leader.cancel()
    assert await asyncio.gather(*joiners) == [42] * 5
    assert calls == 2  # the leader's run was abandoned; one joiner took over


def test_threads_stampede_computes_once(manager: CacheManager) -> None:
    calls = 0
    guard = threading.Lock()

    @manager.cache_result(ttl=30)
    def slow(n: int) -> int:
        nonlocal calls
        with guard:
            calls += 1
        time.sleep(0.1)
        return n * 2

    barrier = threading.Barrier(16)
    results: list[int] = []

    def worker() -> None:
        barrier.wait()
        results.append(slow(21))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert results == [42] * 16
    assert calls == 1


async def test_corrupt_or_foreign_value_is_a_miss(
    manager: CacheManager, backend: CacheBackend, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    @manager.cache_result(ttl=30)
    async def value() -> dict[str, int]:
        nonlocal calls
        calls += 1
        return {"v": calls}

    key = value.cache_key()
    await backend.aset(key, b"\x80\x04garbage-not-json", 30)
    with caplog.at_level(logging.WARNING, logger="backend_kit.cache"):
        assert await value() == {"v": 1}
    assert "does not decode" in caplog.text
    assert await value() == {"v": 1}  # the recomputed value replaced the garbage
    assert value.stats().corrupt == 1


async def test_unserializable_result_is_returned_uncached_with_a_warning(
    manager: CacheManager, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    @manager.cache_result(ttl=30)
    async def odd() -> set[int]:
        nonlocal calls
        calls += 1
        return {1, 2}

    with caplog.at_level(logging.WARNING, logger="backend_kit.cache"):
        assert await odd() == {1, 2}
        assert await odd() == {1, 2}
    assert calls == 2
    assert "returned uncached" in caplog.text
    assert odd.stats().unserializable == 2


async def test_lock_true_in_one_process(manager: CacheManager) -> None:
    calls = 0

    @manager.cache_result(ttl=30, lock=True, lock_timeout=5)
    async def locked(n: int) -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        return n

    assert await asyncio.gather(*(locked(3) for _ in range(50))) == [3] * 50
    assert await locked(3) == 3
    assert calls == 1

    @manager.cache_result(ttl=30, lock=True, lock_timeout=5)
    def locked_sync(n: int) -> int:
        nonlocal calls
        calls += 1
        return n

    assert locked_sync(4) == 4
    assert locked_sync(4) == 4
    assert calls == 2


async def test_lock_waiter_gets_the_holders_value(
    manager: CacheManager, backend: CacheBackend
) -> None:
    """A second caller finding the lock taken waits for the value instead of computing."""
    calls = 0

    @manager.cache_result(ttl=30, lock=True, lock_timeout=5)
    async def shared() -> str:
        nonlocal calls
        calls += 1
        return "fresh"

    key = shared.cache_key()
    lock_name = key + ":lock"
    token = await backend.alock(lock_name, 5)  # type: ignore[attr-defined]
    assert token is not None  # we play the other process holding the lock

    async def other_process_finishes() -> None:
        await asyncio.sleep(0.2)
        await backend.aset(key, b'"from-holder"', 30)
        await backend.aunlock(lock_name, token)  # type: ignore[attr-defined]

    finisher = asyncio.create_task(other_process_finishes())
    assert await shared() == "from-holder"
    await finisher
    assert calls == 0
    assert await backend.alock(lock_name, 5) is not None  # type: ignore[attr-defined]  # released
    await backend.adelete(lock_name)


async def test_early_refresh_recomputes_before_expiry(manager: CacheManager) -> None:
    calls = 0

    @manager.cache_result(ttl=1.0, early_refresh=0.8)
    async def version() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert await version() == 1
    assert await version() == 1  # fresh: a hit
    await asyncio.sleep(0.3)  # now inside the refresh window
    assert await version() == 2  # this caller refreshed
    assert await version() == 2
    assert version.stats().refreshes == 1


def test_early_refresh_sync(manager: CacheManager) -> None:
    calls = 0

    @manager.cache_result(ttl=1.0, early_refresh=0.8)
    def sync_version() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert sync_version() == 1
    assert sync_version() == 1
    time.sleep(0.3)
    assert sync_version() == 2
    assert sync_version() == 2


async def test_hooks_and_stats_see_every_call(backend: CacheBackend, unique_name: str) -> None:
    recorder = Recorder()
    manager = CacheManager(backend, namespace=unique_name, hooks=recorder)

    @manager.cache_result(ttl=30)
    async def square(n: int) -> int:
        await asyncio.sleep(0.01)
        return n * n

    await square(3)
    await square(3)
    assert [e.outcome for e in recorder.events] == ["miss", "hit"]
    assert recorder.events[0].duration >= 0.01
    assert recorder.events[0].function.endswith("square")
    assert recorder.events[0].key == square.cache_key(3)
    stats = manager.stats()
    assert (stats.hits, stats.misses, stats.hit_ratio) == (1, 1, 0.5)
    await manager.aclear()


async def test_signed_pickle_round_trips_and_rejects_tampering(
    backend: CacheBackend, unique_name: str
) -> None:
    import datetime

    manager = CacheManager(backend, namespace=unique_name, serializer=PickleSerializer("s" * 32))
    calls = 0

    @manager.cache_result(ttl=30)
    async def when() -> datetime.date:
        nonlocal calls
        calls += 1
        return datetime.date(2024, 1, calls)

    assert await when() == datetime.date(2024, 1, 1)
    assert await when() == datetime.date(2024, 1, 1)
    key = when.cache_key()
    stored = await backend.aget(key)
    assert stored is not None
    await backend.aset(key, stored[:-1] + bytes([stored[-1] ^ 1]), 30)
    assert await when() == datetime.date(2024, 1, 2)  # tampered value: a miss
    await manager.aclear()


def test_cache_if_and_template_keys(manager: CacheManager, unique_name: str) -> None:
    calls: list[int] = []

    @manager.cache_result(ttl=30, cache_if=lambda result: result is not None)
    def maybe(n: int) -> int | None:
        calls.append(n)
        return n if n > 0 else None

    assert maybe(0) is None
    assert maybe(0) is None
    assert maybe(2) == 2
    assert maybe(2) == 2
    assert calls == [0, 0, 2]

    @manager.cache_result(ttl=30, key="user:{user_id}")
    def user(user_id: int) -> str:
        calls.append(user_id)
        return f"u{user_id}"

    assert user.cache_key(9) == f"{unique_name}:user:9"
    assert user(9) == user(9) == "u9"
    assert calls.count(9) == 1
    assert manager.invalidate_key(f"{unique_name}:user:9") == 1


def test_lock_holder_and_waiter_sync(manager: CacheManager) -> None:
    """Two wrappers of one function share keys but not their in-process flights:
    the second must wait on the backend lock (sync path) and read the first's value."""
    calls = 0
    started = threading.Event()

    def compute(n: int) -> int:
        nonlocal calls
        calls += 1
        started.set()
        time.sleep(0.3)
        return n * 10

    first = manager.cache_result(ttl=30, lock=True, lock_timeout=5)(compute)
    second = manager.cache_result(ttl=30, lock=True, lock_timeout=5)(compute)
    assert first.cache_key(4) == second.cache_key(4)
    results: list[int] = []
    holder = threading.Thread(target=lambda: results.append(first(4)))
    holder.start()
    assert started.wait(5)
    assert second(4) == 40  # waited for the holder instead of computing
    holder.join(timeout=5)
    assert results == [40]
    assert calls == 1
    assert second.stats().joined == 1


async def test_lock_holder_and_waiter_async(manager: CacheManager) -> None:
    calls = 0

    async def compute(n: int) -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.3)
        return n * 10

    first = manager.cache_result(ttl=30, lock=True, lock_timeout=5)(compute)
    second = manager.cache_result(ttl=30, lock=True, lock_timeout=5)(compute)
    holder = asyncio.create_task(first(5))
    await asyncio.sleep(0.05)
    assert await second(5) == 50
    assert await holder == 50
    assert calls == 1
    assert second.stats().joined == 1


async def test_lock_wait_is_bounded_then_computes(
    manager: CacheManager, backend: CacheBackend
) -> None:
    calls = 0

    @manager.cache_result(ttl=30, lock=True, lock_timeout=0.3)
    async def value() -> int:
        nonlocal calls
        calls += 1
        return 7

    lock_name = value.cache_key() + ":lock"
    assert await backend.alock(lock_name, 30) is not None  # type: ignore[attr-defined]
    started = time.monotonic()
    assert await value() == 7  # the holder never finishes: compute after the wait
    assert 0.25 <= time.monotonic() - started < 3
    assert calls == 1
    await backend.adelete(lock_name)
