"""The circuit breaker in front of the Consul agent, on the fake agent over real sockets.

The breakers here run on a manual clock: the tests move time past the reset
timeout instead of sleeping through it, and count the requests that reached
the agent.
"""

from __future__ import annotations

import logging
import socket
import time

import pytest

from backend_kit.discovery import ServiceInstance, TtlCheck
from backend_kit.discovery.consul import ConsulServiceRegistry
from backend_kit.errors import CircuitOpenError, DiscoveryError, RegistryUnavailableError
from backend_kit.resilience import CircuitBreaker, CircuitState, StateChange
from tests.fakes.consul_agent import FakeConsulAgent
from tests.integration.discovery.conftest import ManualClock, state_of

pytestmark = pytest.mark.timeout(30)


async def test_a_failing_agent_opens_the_breaker_and_discovery_serves_stale_without_asking(
    fake_agent: FakeConsulAgent, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    changes: list[StateChange] = []
    breaker = CircuitBreaker(
        "consul",
        failure_threshold=3,
        reset_timeout=5.0,
        clock=clock,
        on_state_change=changes.append,
    )
    async with ConsulServiceRegistry(
        fake_agent.address, cache_ttl=0, max_stale=60, breaker=breaker
    ) as registry:
        await registry.register_service("api", "api-1", 1, address="a")
        assert await registry.discover_service("api") == ["a:1"]
        fake_agent.leaderless = True  # every catalog read now answers 500
        with caplog.at_level(logging.WARNING):
            for _ in range(3):  # each one asks the agent, fails, serves the last answer
                assert await registry.discover_service("api") == ["a:1"]
        assert len(fake_agent.health_requests("api")) == 4
        assert state_of(breaker) is CircuitState.OPEN
        assert "opened: 3 consecutive failures" in caplog.text

        # Open: answers come from the cache and nothing reaches the agent.
        sent = len(fake_agent.requests)
        for _ in range(50):
            assert await registry.discover_service("api") == ["a:1"]
        started = time.monotonic()
        with pytest.raises(RegistryUnavailableError, match="circuit breaker open") as caught:
            await registry.register_service("api", "api-2", 2, address="b")
        assert time.monotonic() - started < 0.5
        assert isinstance(caught.value.__cause__, CircuitOpenError)
        assert "next attempt in 5.0 s" in str(caught.value)
        assert len(fake_agent.requests) == sent

        # Past the reset timeout one trial goes out; the agent still fails: open again.
        clock.now += 5.0
        assert await registry.discover_service("api") == ["a:1"]
        assert len(fake_agent.requests) == sent + 1
        assert state_of(breaker) is CircuitState.OPEN

        # The agent recovers: the next trial closes the breaker, answers are fresh.
        fake_agent.leaderless = False
        clock.now += 5.0
        assert await registry.discover_service("api") == ["a:1"]
        assert len(fake_agent.requests) == sent + 2
        assert state_of(breaker) is CircuitState.CLOSED
        await registry.register_service("api", "api-2", 2, address="b")
        assert await registry.discover_service("api") == ["a:1", "b:2"]
    assert [(c.old.value, c.new.value) for c in changes] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


async def test_an_agent_that_never_answers_costs_a_timeout_only_until_the_breaker_opens() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections (in the backlog) and never answers
    breaker = CircuitBreaker("consul", failure_threshold=2, reset_timeout=60.0)
    try:
        port = listener.getsockname()[1]
        async with ConsulServiceRegistry(
            f"127.0.0.1:{port}", request_timeout=0.3, breaker=breaker
        ) as registry:
            for _ in range(2):
                started = time.monotonic()
                with pytest.raises(RegistryUnavailableError, match="did not answer"):
                    await registry.register_service("api", "api-1", 1)
                assert time.monotonic() - started >= 0.3
            started = time.monotonic()
            for _ in range(20):
                with pytest.raises(RegistryUnavailableError, match="circuit breaker open"):
                    await registry.register_service("api", "api-1", 1)
            # 20 refusals in far less than one timeout (they would take 6 s).
            assert time.monotonic() - started < 0.3
    finally:
        listener.close()


async def test_refusals_from_an_answering_agent_do_not_open_the_breaker() -> None:
    async with FakeConsulAgent(acl_token="s3cret") as agent:
        breaker = CircuitBreaker("consul", failure_threshold=2, clock=ManualClock())
        async with ConsulServiceRegistry(
            agent.address, token="wrong", cache_ttl=0, breaker=breaker
        ) as registry:
            for _ in range(5):
                with pytest.raises(DiscoveryError, match="permission denied") as caught:
                    await registry.discover_service("api")
                assert not isinstance(caught.value, RegistryUnavailableError)
            assert state_of(breaker) is CircuitState.CLOSED
            assert len(agent.requests) == 5


async def test_deregistration_on_exit_is_sent_even_while_the_breaker_is_open(
    fake_agent: FakeConsulAgent,
) -> None:
    breaker = CircuitBreaker("consul", clock=ManualClock())
    async with ConsulServiceRegistry(fake_agent.address, cache_ttl=0, breaker=breaker) as registry:
        async with registry.registered("api", "api-1", 1, address="a", check=TtlCheck("30s")):
            assert fake_agent.service_ids() == ["api-1"]
            breaker.trip()  # as after an outage that just ended
            with pytest.raises(RegistryUnavailableError, match="circuit breaker open"):
                await registry.discover_service("api")
        assert fake_agent.service_ids() == []  # the last chance to leave cleanly was taken


async def test_watch_does_not_go_through_the_breaker(fake_agent: FakeConsulAgent) -> None:
    breaker = CircuitBreaker("consul", clock=ManualClock())
    async with ConsulServiceRegistry(
        fake_agent.address, watch_wait=1, watch_min_interval=0.05, breaker=breaker
    ) as registry:
        await registry.register_service("api", "api-1", 1, address="a")
        breaker.trip()
        first: list[ServiceInstance] = []
        async for instances in registry.watch("api"):
            first = instances
            break
        assert [i.endpoint for i in first] == ["a:1"]
        assert state_of(breaker) is CircuitState.OPEN  # a blocking query holds no trial slot
