"""The cache's fail-open path on ``backend_kit.resilience``'s CircuitBreaker.

Time is a manual clock given to the breaker, never a sleep: the breaker is
what decides when the backend is tried again.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from backend_kit.cache import CacheBackendError, CacheManager, MemoryCache
from backend_kit.resilience import CircuitBreaker, CircuitState, StateChange


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def state_of(breaker: CircuitBreaker) -> CircuitState:
    """``breaker.state``, read through a call so mypy does not narrow it between reads."""
    return breaker.state


class FlakyBackend(MemoryCache):
    """A MemoryCache that fails every call while ``broken``; counts what reached it."""

    def __init__(self, *, delay: float = 0.0) -> None:
        super().__init__()
        self.broken = True
        self.gets = 0
        self.sets = 0
        self.delay = delay  # seconds each async call takes, so calls can overlap
        self.unexpected: BaseException | None = None

    def get(self, key: str) -> bytes | None:
        self.gets += 1
        if self.unexpected is not None:
            raise self.unexpected
        if self.broken:
            raise CacheBackendError("Redis GET failed: ConnectionError")
        return super().get(key)

    def set(self, key: str, value: bytes, ttl: float) -> None:
        self.sets += 1
        if self.broken:
            raise CacheBackendError("Redis SET failed: ConnectionError")
        super().set(key, value, ttl)

    async def aget(self, key: str) -> bytes | None:
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.get(key)

    async def aset(self, key: str, value: bytes, ttl: float) -> None:
        self.set(key, value, ttl)


def test_cooldown_is_the_default_breakers_reset_timeout() -> None:
    manager = CacheManager(MemoryCache(), namespace="users", cooldown=7)
    assert manager.breaker.reset_timeout == 7.0
    assert state_of(manager.breaker) is CircuitState.CLOSED
    assert "users" in manager.breaker.name
    assert CacheManager(MemoryCache()).breaker.reset_timeout == 5.0
    assert CacheManager.from_url("memory://", cooldown=2).breaker.reset_timeout == 2.0
    mine = CircuitBreaker("mine")
    assert CacheManager(MemoryCache(), breaker=mine).breaker is mine
    assert CacheManager.from_url("memory://", breaker=mine).breaker is mine
    with pytest.raises(ValueError, match="either cooldown= or breaker="):
        CacheManager(MemoryCache(), cooldown=1, breaker=mine)
    with pytest.raises(ValueError, match="cooldown"):
        CacheManager(MemoryCache(), cooldown=-1)


def test_default_breaker_opens_at_the_first_failure_and_a_trial_closes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = FlakyBackend()
    manager = CacheManager(backend, cooldown=5)
    clock = ManualClock()
    # The default breaker reads time.monotonic through its clock attribute.
    monkeypatch.setattr(manager.breaker, "_clock", clock)

    @manager.cache_result(ttl=60)
    def double(n: int) -> int:
        return n * 2

    assert [double(n) for n in range(50)] == [n * 2 for n in range(50)]
    assert (backend.gets, backend.sets) == (1, 0)  # one failure, then the backend is left alone
    assert state_of(manager.breaker) is CircuitState.OPEN
    clock.now += 4.9
    assert double(1) == 2
    assert backend.gets == 1  # still open
    backend.broken = False
    clock.now += 0.1
    assert double(1) == 2  # the trial: a miss that stores the value
    assert (backend.gets, backend.sets) == (2, 1)
    assert state_of(manager.breaker) is CircuitState.CLOSED
    assert double(1) == 2
    stats = double.stats()
    assert (stats.errors, stats.bypassed, stats.hits, stats.computations) == (1, 50, 1, 52)


def test_an_injected_breaker_decides_when_the_backend_is_skipped() -> None:
    clock = ManualClock()
    changes: list[StateChange] = []
    breaker = CircuitBreaker(
        "cache-redis",
        failure_threshold=3,
        reset_timeout=10.0,
        clock=clock,
        on_state_change=changes.append,
    )
    backend = FlakyBackend()
    manager = CacheManager(backend, breaker=breaker)

    @manager.cache_result(ttl=60)
    def double(n: int) -> int:
        return n * 2

    # Below the threshold every call still tries the backend (and fails open).
    assert [double(n) for n in range(3)] == [0, 2, 4]
    assert backend.gets == 3
    assert backend.sets == 0  # a call whose GET failed does not try to SET
    assert state_of(breaker) is CircuitState.OPEN
    # Open: no call reaches the backend.
    assert [double(n) for n in range(100)] == [n * 2 for n in range(100)]
    assert backend.gets == 3
    assert double.stats().bypassed == 100
    # Reset timeout elapsed, backend still down: one trial, open again.
    clock.now += 10.0
    assert [double(n) for n in range(10)] == [n * 2 for n in range(10)]
    assert backend.gets == 4
    assert state_of(breaker) is CircuitState.OPEN
    # Backend back: the next trial closes the breaker and caching resumes.
    backend.broken = False
    clock.now += 10.0
    assert double(7) == 14
    assert double(7) == 14
    assert double.stats().hits == 1
    assert state_of(breaker) is CircuitState.CLOSED
    assert [(c.old.value, c.new.value) for c in changes] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


def test_hits_reset_a_consecutive_failure_count() -> None:
    breaker = CircuitBreaker("cache", failure_threshold=3, clock=ManualClock())
    backend = FlakyBackend()
    backend.broken = False
    manager = CacheManager(backend, breaker=breaker)

    @manager.cache_result(ttl=60)
    def double(n: int) -> int:
        return n * 2

    double(1)  # cached
    backend.broken = True
    double(2)
    double(3)
    backend.broken = False
    assert double(1) == 2  # a hit: the backend answered, the count starts over
    backend.broken = True
    double(4)
    double(5)
    assert state_of(breaker) is CircuitState.CLOSED  # 2 consecutive failures, not 4
    double(6)
    assert state_of(breaker) is CircuitState.OPEN


def test_a_ratio_breaker_sees_every_hit() -> None:
    breaker = CircuitBreaker(
        "cache", failure_ratio=0.5, window=4, minimum_calls=4, clock=ManualClock()
    )
    backend = FlakyBackend()
    backend.broken = False
    manager = CacheManager(backend, breaker=breaker)

    @manager.cache_result(ttl=60)
    def double(n: int) -> int:
        return n * 2

    double(1)  # a miss: the GET answered (1 success)
    double(1)  # a hit (2 successes)
    backend.broken = True
    double(2)  # 1 failure of 3 calls
    assert state_of(breaker) is CircuitState.CLOSED
    double(3)  # 2 failures of the last 4 calls: half of them
    assert state_of(breaker) is CircuitState.OPEN


async def test_async_one_trial_while_half_open_and_concurrent_callers_skip() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("cache", failure_threshold=1, reset_timeout=1.0, clock=clock)
    backend = FlakyBackend(delay=0.02)
    manager = CacheManager(backend, breaker=breaker)

    @manager.cache_result(ttl=60)
    async def double(n: int) -> int:
        return n * 2

    assert await double(0) == 0
    assert state_of(breaker) is CircuitState.OPEN
    results = await asyncio.gather(*(double(n) for n in range(20)))
    assert results == [n * 2 for n in range(20)]
    assert backend.gets == 1  # open: nobody touched the backend
    backend.broken = False
    clock.now += 1.0
    # Half-open: the first caller is the trial; the others, arriving while
    # its GET is in flight, run their function without the cache.
    results = await asyncio.gather(*(double(n) for n in range(20)))
    assert results == [n * 2 for n in range(20)]
    assert backend.gets == 2
    assert state_of(breaker) is CircuitState.CLOSED
    assert await double(0) == 0
    assert double.stats().hits == 1


async def test_a_cancelled_trial_hands_its_slot_back() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("cache", failure_threshold=1, reset_timeout=1.0, clock=clock)
    backend = FlakyBackend()
    manager = CacheManager(backend, breaker=breaker)

    @manager.cache_result(ttl=60)
    async def double(n: int) -> int:
        return n * 2

    await double(1)
    assert state_of(breaker) is CircuitState.OPEN
    backend.broken = False
    backend.delay = 10.0  # the trial's GET hangs ...
    clock.now += 1.0
    trial = asyncio.create_task(double(1))
    await asyncio.sleep(0.01)
    assert not trial.done()  # ... still in flight ...
    trial.cancel()  # ... and its caller gives up
    with pytest.raises(asyncio.CancelledError):
        await trial
    backend.delay = 0.0
    # Had the slot leaked, the breaker would refuse every call for good.
    assert await double(1) == 2
    assert backend.gets == 2
    assert state_of(breaker) is CircuitState.CLOSED


def test_an_unexpected_backend_error_during_a_trial_propagates_and_frees_the_slot() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("cache", failure_threshold=1, reset_timeout=1.0, clock=clock)
    backend = FlakyBackend()
    manager = CacheManager(backend, breaker=breaker)

    @manager.cache_result(ttl=60)
    def double(n: int) -> int:
        return n * 2

    double(1)
    clock.now += 1.0
    backend.unexpected = KeyboardInterrupt()  # not a backend failure: not swallowed
    with pytest.raises(KeyboardInterrupt):
        double(1)
    backend.unexpected = None
    backend.broken = False
    assert double(1) == 2  # the slot came back: this call is the trial
    assert state_of(breaker) is CircuitState.CLOSED


def test_one_warning_per_interval_and_an_info_line_on_recovery(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = FlakyBackend()
    manager = CacheManager(backend, cooldown=30)
    clock = ManualClock()
    monkeypatch.setattr(manager.breaker, "_clock", clock)

    @manager.cache_result(ttl=60)
    def double(n: int) -> int:
        return n * 2

    with caplog.at_level(logging.INFO):
        for n in range(20):
            double(n)
        backend.broken = False
        clock.now += 30.0
        double(1)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    # One line for the outage, from the cache, naming the operation and the
    # error; the default breaker does not repeat it in its own words.
    assert [r.name for r in warnings] == ["backend_kit.cache"]
    assert "failed on get (CacheBackendError" in warnings[0].getMessage()
    assert "for 30.0 s" in warnings[0].getMessage()
    assert "caching resumed" in caplog.text
    assert "circuit" not in caplog.text
