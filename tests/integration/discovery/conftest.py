"""Discovery fixtures: one registry fixture over every backend, and the fake agent.

``registry`` is parametrized over the in-memory registry, the Consul registry
on the fake agent, and, only when ``CONSUL_HTTP_ADDR`` names a real agent, the
Consul registry on that agent (marked ``live``). Without the variable the live
case is not generated at all, so nothing is skipped to look green.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypedDict

import pytest

from backend_kit.discovery import BaseServiceRegistry, InMemoryServiceRegistry
from backend_kit.resilience import CircuitBreaker, CircuitState
from tests.fakes.consul_agent import FakeConsulAgent


class FastOptions(TypedDict, total=False):
    cache_ttl: float
    request_timeout: float
    watch_wait: float
    watch_min_interval: float
    watch_max_backoff: float


# Short timings keep the suite fast: watches wake up within a second.
FAST: FastOptions = {
    "cache_ttl": 0.0,
    "request_timeout": 2.0,
    "watch_wait": 1.0,
    "watch_min_interval": 0.05,
    "watch_max_backoff": 0.2,
}


class ManualClock:
    """A clock for a breaker's ``clock=``: time moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def state_of(breaker: CircuitBreaker) -> CircuitState:
    """``breaker.state``, read through a call so mypy does not narrow it between reads."""
    return breaker.state


def quick_breaker() -> CircuitBreaker:
    """The default breaker's threshold (3 failures), but a trial after 0.2 s instead of 5 s.

    For tests that stop and restart the agent and expect it to be used again
    soon after, without waiting out the production reset timeout.
    """
    return CircuitBreaker("consul (tests)", failure_threshold=3, reset_timeout=0.2)


BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("consul-fake", id="consul-fake"),
]
if os.environ.get("CONSUL_HTTP_ADDR"):
    BACKENDS.append(pytest.param("consul-live", id="consul-live", marks=pytest.mark.live))


@pytest.fixture
async def fake_agent() -> AsyncIterator[FakeConsulAgent]:
    async with FakeConsulAgent() as agent:
        yield agent


@pytest.fixture(params=BACKENDS)
async def registry(request: pytest.FixtureRequest) -> AsyncIterator[BaseServiceRegistry]:
    kind: str = request.param
    if kind == "memory":
        yield InMemoryServiceRegistry()
        return
    from backend_kit.discovery.consul import ConsulServiceRegistry

    if kind == "consul-live":
        async with ConsulServiceRegistry.from_env(**FAST, breaker=quick_breaker()) as live:
            yield live
        return
    async with (
        FakeConsulAgent() as agent,
        ConsulServiceRegistry(agent.address, **FAST, breaker=quick_breaker()) as fake,
    ):
        yield fake


async def wait_until(predicate: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    """Poll ``predicate`` every 20 ms until it holds; fail after ``within`` seconds."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
