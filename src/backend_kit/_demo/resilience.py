"""Demo part: a circuit breaker opening and closing, a rate limit refusing a call, health."""

from __future__ import annotations

import os
import uuid

from backend_kit._demo._report import Report
from backend_kit._redact import redact_url
from backend_kit.health import HealthCheck, HealthStatus
from backend_kit.resilience import (
    CircuitBreaker,
    CircuitOpenError,
    MemoryRateLimiter,
    RateLimit,
    RateLimiter,
    StateChange,
)


class _DemoClock:
    """A clock the demo moves by hand, so a 30 s reset timeout takes no time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _PaymentsDownError(ConnectionError):
    pass


async def run(report: Report) -> None:
    url = os.environ.get("REDIS_URL")
    limiter: RateLimiter
    if url:
        from backend_kit.resilience.redis import RedisRateLimiter

        redis_limiter = RedisRateLimiter(url, key_prefix=f"bk_demo:{uuid.uuid4().hex[:8]}:")
        limiter = redis_limiter
        report.part("resilience", f"Redis rate limiter at {redact_url(url)}")
    else:
        redis_limiter = None
        limiter = MemoryRateLimiter()
        report.part("resilience", "in-memory rate limiter; breaker on an injected clock")
    try:
        await _breaker(report)
        await _rate_limit(report, limiter)
        await _health(report, redis_limiter)
    finally:
        if redis_limiter is not None:
            await redis_limiter.aclose()


async def _breaker(report: Report) -> None:
    clock = _DemoClock()
    changes: list[StateChange] = []
    breaker = CircuitBreaker(
        "payments",
        failure_threshold=3,
        reset_timeout=30.0,
        on_state_change=changes.append,
        clock=clock,
    )
    payments_up = False

    @breaker
    async def charge(amount: int) -> str:
        if not payments_up:
            raise _PaymentsDownError("payments service refused the connection")
        return f"charged {amount}"

    for attempt in range(1, 4):
        try:
            await charge(10)
        except _PaymentsDownError:
            report.step(
                f"call {attempt}: payments down (ConnectionError); breaker is {breaker.state}"
            )
    try:
        await charge(10)
    except CircuitOpenError as exc:
        report.step(f"call 4 refused without calling payments: {exc}")
    clock.now += 30.0
    payments_up = True
    report.step(f"30 s later (injected clock) the breaker is {breaker.state}")
    result = await charge(10)
    report.step(f"the trial call succeeded ({result}); breaker is {breaker.state}")
    path = " -> ".join([changes[0].old.value, *(change.new.value for change in changes)])
    report.step(f"hooks saw: {path}")


async def _rate_limit(report: Report, limiter: RateLimiter) -> None:
    limit = RateLimit.parse("3/minute")
    answers = [await limiter.ahit("client:203.0.113.7", limit) for _ in range(4)]
    allowed = ", ".join("allowed" if a.allowed else "refused" for a in answers)
    report.step(
        f"rate limit {limit} (at most {limit.amount} in any {limit.period:g} s), "
        f"4 calls from one client: {allowed}"
    )
    refused = answers[-1]
    headers = refused.headers()
    report.step(
        f"the refused call gets HTTP 429 with Retry-After: {headers['Retry-After']} s "
        f"and RateLimit-Remaining: {headers['RateLimit-Remaining']}"
    )
    await limiter.areset("client:203.0.113.7", limit)


async def _health(report: Report, redis_limiter: object | None) -> None:
    health = HealthCheck(default_timeout=1.0)
    health.add("event-loop", lambda: True, liveness=True)
    aping = getattr(redis_limiter, "aping", None)
    if aping is not None:
        health.add("redis", aping)

    async def search_index() -> HealthStatus:
        return HealthStatus.WARN  # a degraded, non-critical dependency

    health.add("search", search_index, critical=False)
    live = await health.liveness()
    ready = await health.readiness()
    checks = ", ".join(f"{c.name}={c.status}" for c in ready.checks)
    report.step(
        f"health: liveness {live.status}; readiness {ready.status} ({checks}), "
        f"HTTP {ready.http_status}"
    )
