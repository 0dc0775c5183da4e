"""Rate limits: parsing; sliding-window and GCRA semantics on the memory limiter
(fake clock); headers."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend_kit.errors import ConfigurationError, RateLimitExceededError
from backend_kit.resilience import (
    MemoryRateLimiter,
    RateLimit,
    RateLimitAlgorithm,
    RateLimiter,
    RateLimitResult,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "amount", "period"),
    [
        ("100/minute", 100, 60.0),
        ("100/minutes", 100, 60.0),
        ("10 per second", 10, 1.0),
        ("5/30s", 5, 30.0),
        ("5/30 secs", 5, 30.0),
        ("1000/2 hours", 1000, 7200.0),
        ("3/h", 3, 3600.0),
        ("7/day", 7, 86400.0),
        (" 2 / 1.5 m ", 2, 90.0),
        ("1/D", 1, 86400.0),
    ],
)
def test_parse(text: str, amount: int, period: float) -> None:
    limit = RateLimit.parse(text)
    assert (limit.amount, limit.period, limit.burst) == (amount, period, amount)
    assert limit.algorithm == "sliding_window"
    assert limit.interval == pytest.approx(period / amount)


@pytest.mark.parametrize(
    "text", ["", "100", "100/", "minute", "0/minute", "10/ms", "10/fortnight", "-1/s", "1/0s"]
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ConfigurationError):
        RateLimit.parse(text)


def test_limits_are_values_and_the_algorithm_is_explicit() -> None:
    assert RateLimit.parse("100/minute") == RateLimit(100, 60.0)
    assert RateLimit(100, 60.0, algorithm="gcra") != RateLimit(100, 60.0)
    gcra = RateLimit(100, 60.0, burst=10, algorithm="gcra")
    assert gcra != RateLimit(100, 60.0, algorithm="gcra")
    assert RateLimit.parse("100/minute", algorithm="gcra", burst=10) == gcra
    assert RateLimit(100, 60.0, algorithm="gcra").burst == 100
    assert str(RateLimit(100, 60.0)) == "100/minute"
    assert str(RateLimit(5, 30.0)) == "5/30s"
    assert str(RateLimit(100, 60.0, algorithm="gcra")) == "100/minute (gcra)"
    assert str(gcra) == "100/minute (gcra, burst 10)"
    assert len({RateLimit(1, 1.0), RateLimit(1, 1.0)}) == 1
    # Two algorithms on one key keep apart in storage (a sorted set and a string on Redis).
    assert RateLimit(5, 1.0).key_part != RateLimit(5, 1.0, algorithm="gcra").key_part
    assert RateLimit(5, 1.0, burst=5).burst == 5, "a burst equal to the amount is harmless"


@pytest.mark.parametrize(
    "make",
    [
        lambda: RateLimit(100, 60.0, burst=10),  # burst is GCRA's: say so
        lambda: RateLimit.parse("100/minute", burst=10),
        lambda: RateLimit(100, 60.0, algorithm="leaky"),  # type: ignore[arg-type]
        lambda: RateLimit(100, 60.0, burst=-1, algorithm="gcra"),
    ],
)
def test_bad_limits_are_refused(make: Callable[[], RateLimit]) -> None:
    with pytest.raises(ConfigurationError):
        make()


# ------------------------------------------------------------- sliding window
def test_window_refuses_the_call_over_the_limit_with_retry_after_and_headers() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)
    limit = RateLimit.parse("3/minute")
    results = [limiter.hit("alice", limit) for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0]
    assert [r.reset_after for r in results] == pytest.approx([60.0] * 4)
    refused = results[-1]
    assert refused.retry_after == pytest.approx(60.0)
    assert refused.headers() == {
        "RateLimit-Limit": "3",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "60",
        "RateLimit-Policy": "3;w=60",
        "Retry-After": "60",
    }
    assert "Retry-After" not in results[0].headers()
    with pytest.raises(RateLimitExceededError) as raised:
        refused.raise_if_refused()
    assert raised.value.retry_after == pytest.approx(60.0)
    results[0].raise_if_refused()  # allowed: no error


def test_window_slides_call_by_call() -> None:
    """Each call leaves the window exactly one period after it was made."""
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)
    limit = RateLimit(3, 60.0)
    for _ in range(3):  # at 0, 20 and 40 s
        assert limiter.hit("k", limit).allowed
        clock.now += 20.0
    clock.now -= 10.0  # 50 s
    refused = limiter.hit("k", limit)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(10.0), "the call at 0 s leaves at 60 s"
    assert refused.reset_after == pytest.approx(50.0), "the call at 40 s leaves at 100 s"
    clock.now += 10.0  # 60 s: the window (0, 60] no longer holds the call at 0 s
    allowed = limiter.hit("k", limit)
    assert (allowed.allowed, allowed.remaining) == (True, 0)
    assert not limiter.hit("k", limit).allowed
    clock.now += 60.0  # 120 s: every call so far has left
    assert [limiter.hit("k", limit).allowed for _ in range(4)] == [True, True, True, False]


def test_window_admits_the_amount_where_gcra_admits_almost_twice() -> None:
    """One try every 0.1 s for 59.9 s (inside one 60 s window): N against 2N - 1."""
    for limit, most in ((RateLimit(10, 60.0), 10), (RateLimit(10, 60.0, algorithm="gcra"), 19)):
        clock = FakeClock()
        limiter = MemoryRateLimiter(clock=clock)
        admitted = 0
        for _ in range(600):
            admitted += limiter.hit("k", limit).allowed
            clock.now += 0.1
        assert admitted == most, limit


def test_window_costs_and_peeks() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)
    limit = RateLimit(10, 10.0)
    assert limiter.hit("k", limit, cost=7).remaining == 3
    clock.now += 4.0
    assert limiter.hit("k", limit, cost=2).remaining == 1
    peek = limiter.hit("k", limit, cost=0)
    assert (peek.allowed, peek.remaining) == (True, 1)
    assert peek.reset_after == pytest.approx(10.0)
    refused = limiter.hit("k", limit, cost=3)
    assert (refused.allowed, refused.remaining) == (False, 1)
    # 2 more units must leave: both are in the cost-7 call, which leaves in 6 s.
    assert refused.retry_after == pytest.approx(6.0)
    clock.now += 6.0
    assert limiter.hit("k", limit, cost=3).remaining == 5
    with pytest.raises(ConfigurationError):
        limiter.hit("k", limit, cost=11)
    with pytest.raises(ConfigurationError):
        limiter.hit("k", limit, cost=-1)


# ----------------------------------------------------------------------- GCRA
def test_gcra_burst_then_refused_with_retry_after() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)
    limit = RateLimit.parse("3/minute", algorithm="gcra")
    results = [limiter.hit("alice", limit) for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0]
    assert [r.reset_after for r in results] == pytest.approx([20.0, 40.0, 60.0, 60.0])
    refused = results[-1]
    assert refused.retry_after == pytest.approx(20.0)
    assert refused.headers()["Retry-After"] == "20"


def test_gcra_refill_is_continuous_one_call_per_interval() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)
    limit = RateLimit(4, 2.0, algorithm="gcra")  # one call every 0.5 s, bursts of 4
    assert all(limiter.hit("k", limit).allowed for _ in range(4))
    assert not limiter.hit("k", limit).allowed
    clock.now += 0.49
    assert not limiter.hit("k", limit).allowed
    clock.now += 0.01
    assert limiter.hit("k", limit).allowed
    assert not limiter.hit("k", limit).allowed
    clock.now += 2.0
    results = [limiter.hit("k", limit) for _ in range(5)]
    assert [r.allowed for r in results] == [True, True, True, True, False]


def test_gcra_cost_zero_peeks_and_large_costs() -> None:
    limiter = MemoryRateLimiter(clock=FakeClock())
    limit = RateLimit(10, 10.0, algorithm="gcra")
    assert limiter.hit("k", limit, cost=7).remaining == 3
    peek = limiter.hit("k", limit, cost=0)
    assert (peek.allowed, peek.remaining) == (True, 3)
    refused = limiter.hit("k", limit, cost=4)
    assert (refused.allowed, refused.remaining) == (False, 3)
    assert refused.retry_after == pytest.approx(1.0)
    with pytest.raises(ConfigurationError):
        limiter.hit("k", limit, cost=11)


# ------------------------------------------------------------------ both
def test_keys_and_limits_are_counted_apart() -> None:
    limiter = MemoryRateLimiter(clock=FakeClock())
    per_second = RateLimit(1, 1.0)
    per_minute = RateLimit(1, 60.0)
    assert limiter.hit("a", per_second).allowed
    assert limiter.hit("b", per_second).allowed
    assert limiter.hit("a", per_minute).allowed
    assert limiter.hit("a", RateLimit(1, 1.0, algorithm="gcra")).allowed
    assert not limiter.hit("a", per_second).allowed


@pytest.mark.parametrize("algorithm", ["sliding_window", "gcra"])
async def test_async_and_reset(algorithm: RateLimitAlgorithm) -> None:
    limiter = MemoryRateLimiter(clock=FakeClock())
    limit = RateLimit(1, 60.0, algorithm=algorithm)
    assert (await limiter.ahit("k", limit)).allowed
    assert not (await limiter.ahit("k", limit)).allowed
    await limiter.areset("k", limit)
    assert (await limiter.ahit("k", limit)).allowed
    limiter.reset("k", limit)
    assert limiter.hit("k", limit).allowed


@pytest.mark.parametrize("algorithm", ["sliding_window", "gcra"])
def test_replenished_keys_are_swept(algorithm: RateLimitAlgorithm) -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock, sweep_every=10)
    limit = RateLimit(5, 1.0, algorithm=algorithm)
    for i in range(9):
        limiter.hit(f"ip{i}", limit)
    assert len(limiter) == 9
    clock.now += 1.0
    limiter.hit("last", limit)  # the 10th check sweeps
    assert len(limiter) == 1


def test_memory_limiter_satisfies_the_protocol() -> None:
    assert isinstance(MemoryRateLimiter(), RateLimiter)


@pytest.mark.parametrize("algorithm", ["sliding_window", "gcra"])
def test_threads_get_exactly_the_limit(algorithm: RateLimitAlgorithm) -> None:
    limiter = MemoryRateLimiter()
    limit = RateLimit(100, 3600.0, algorithm=algorithm)
    allowed: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        mine = [limiter.hit("shared", limit).allowed for _ in range(50)]
        with lock:
            allowed.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sum(allowed) == 100
    assert len(allowed) == 400


_STEPS = st.lists(st.tuples(st.floats(0.0, 4.0, allow_nan=False), st.integers(0, 3)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(amount=st.integers(1, 8), period=st.sampled_from([1.0, 3.0, 10.0]), steps=_STEPS)
def test_window_never_holds_more_than_the_amount(
    amount: int, period: float, steps: list[tuple[float, int]]
) -> None:
    """Against a reference log of the admitted calls, whatever the arrivals:

    * a call is allowed exactly when the calls of the last period plus its
      cost fit in the amount (never refused for nothing, never admitted over);
    * ``remaining`` is what the window has left; ``retry_after`` is exactly
      when that call would be admitted;
    * no window [t, t + period) ever holds more than ``amount`` admitted units.
    """
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)
    limit = RateLimit(amount, period)
    admitted: list[tuple[float, int]] = []  # (time, cost)
    for wait, wanted in steps:
        clock.now += wait
        now = clock.now
        cost = min(wanted, amount)
        in_window = sum(c for t, c in admitted if t + period > now)
        result = limiter.hit("k", limit, cost=cost)
        assert result.allowed == (in_window + cost <= amount)
        if result.allowed:
            admitted.append((now, cost))
            assert result.retry_after == 0.0
            assert result.remaining == amount - in_window - cost
        else:
            assert result.remaining == amount - in_window
            assert result.retry_after > 0
            later = MemoryRateLimiter(clock=clock)
            later._windows = {slot: deque(w) for slot, w in limiter._windows.items()}
            clock.now = now + result.retry_after - 1e-6
            assert not later.hit("k", limit, cost=cost).allowed
            clock.now = now + result.retry_after + 1e-9
            assert later.hit("k", limit, cost=cost).allowed
            clock.now = now
    for start, _ in admitted:
        held = sum(c for t, c in admitted if start <= t < start + period)
        assert held <= amount, f"the window from {start} holds {held} > {amount}"


@settings(max_examples=200, deadline=None)
@given(
    amount=st.integers(1, 8),
    period=st.sampled_from([1.0, 3.0, 10.0]),
    burst=st.integers(0, 8),
    steps=_STEPS,
)
def test_gcra_never_exceeds_its_rate(
    amount: int, period: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    """Whatever the arrivals: admitted cost up to time t <= burst + rate * t, and
    a refusal's retry_after is exactly when that call would be admitted."""
    clock = FakeClock()
    start = clock.now
    limiter = MemoryRateLimiter(clock=clock)
    limit = RateLimit(amount, period, burst=burst, algorithm="gcra")
    admitted = 0
    for wait, wanted in steps:
        clock.now += wait
        cost = min(wanted, limit.burst)
        result = limiter.hit("k", limit, cost=cost)
        assert isinstance(result, RateLimitResult)
        assert 0 <= result.remaining <= limit.burst
        if result.allowed:
            admitted += cost
            assert result.retry_after == 0.0
        else:
            assert result.retry_after > 0
            later = MemoryRateLimiter(clock=clock)
            later._tats = dict(limiter._tats)
            now = clock.now
            clock.now = now + result.retry_after - 1e-6
            assert not later.hit("k", limit, cost=cost).allowed
            clock.now = now + result.retry_after + 1e-9
            assert later.hit("k", limit, cost=cost).allowed
            clock.now = now
        elapsed = clock.now - start
        assert admitted <= limit.burst + elapsed / limit.interval + 1e-6
