"""SyncConsulServiceRegistry (py-consul's requests client) against the fake agent.

The agent runs on its own event loop in a background thread, so these tests
can block the way a synchronous application does.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from backend_kit.discovery import NoHealthyInstanceError, TtlCheck
from backend_kit.discovery.consul import SyncConsulServiceRegistry
from backend_kit.errors import (
    CircuitOpenError,
    ConfigurationError,
    DiscoveryError,
    RegistryUnavailableError,
)
from backend_kit.resilience import CircuitBreaker, CircuitState
from tests.fakes.consul_agent import FakeConsulAgent
from tests.integration.discovery.conftest import ManualClock, state_of

pytestmark = pytest.mark.timeout(30)

T = TypeVar("T")


class ThreadedAgent:
    """A FakeConsulAgent on an event loop of its own, driven from blocking code."""

    def __init__(self, acl_token: str | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.agent = self.run(self._make(acl_token))
        self.run(self.agent.start())

    @staticmethod
    async def _make(acl_token: str | None) -> FakeConsulAgent:
        return FakeConsulAgent(acl_token=acl_token)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def call(self, function: Any, *args: Any) -> None:
        async def in_loop() -> None:
            function(*args)

        self.run(in_loop())

    def close(self) -> None:
        self.run(self.agent.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


@pytest.fixture
def threaded() -> Iterator[ThreadedAgent]:
    agent = ThreadedAgent()
    try:
        yield agent
    finally:
        agent.close()


@pytest.fixture
def sync_registry(threaded: ThreadedAgent) -> Iterator[SyncConsulServiceRegistry]:
    with SyncConsulServiceRegistry(
        threaded.agent.address, cache_ttl=0, request_timeout=2
    ) as registry:
        yield registry


def test_register_discover_choose_and_deregister(
    threaded: ThreadedAgent, sync_registry: SyncConsulServiceRegistry
) -> None:
    sync_registry.register_service("api", "api-1", 1, address="a", check=TtlCheck("30s"))
    sync_registry.register_service("api", "api-2", 2, address="b", tags=("blue",))
    assert sync_registry.discover_service("api") == ["b:2"]  # api-1's TTL check is critical
    assert sync_registry.update_ttl("api-1")
    assert sync_registry.discover_service("api") == ["a:1", "b:2"]
    assert sync_registry.discover_service("api", tag="blue") == ["b:2"]
    assert [sync_registry.choose("api").port for _ in range(4)] == [1, 2, 1, 2]
    threaded.call(threaded.agent.blank_service_address, "api-2")
    assert sync_registry.discover_service("api", tag="blue") == ["127.0.0.1:2"]
    assert sync_registry.deregister_service("api-2") is True
    assert sync_registry.deregister_service("api-2") is False
    assert sync_registry.update_ttl("nobody") is False
    assert sync_registry.ping() is True
    sync_registry.deregister_service("api-1")
    with pytest.raises(NoHealthyInstanceError):
        sync_registry.choose("api")
    with pytest.raises(ConfigurationError):
        sync_registry.register_service("api", "api-3", 99999)


def test_requests_errors_map_to_registry_unavailable(
    threaded: ThreadedAgent, sync_registry: SyncConsulServiceRegistry
) -> None:
    threaded.run(threaded.agent.stop())
    started = time.monotonic()
    with pytest.raises(RegistryUnavailableError, match="unreachable") as caught:
        sync_registry.register_service("api", "api-1", 1)
    assert time.monotonic() - started < 2.0
    assert caught.value.__cause__ is not None
    assert type(caught.value.__cause__).__module__.startswith("requests")
    with pytest.raises(RegistryUnavailableError):
        sync_registry.ping()


def test_a_hanging_agent_times_out_as_unavailable() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        port = listener.getsockname()[1]
        with SyncConsulServiceRegistry(f"127.0.0.1:{port}", request_timeout=0.3) as registry:
            started = time.monotonic()
            with pytest.raises(RegistryUnavailableError, match="did not answer"):
                registry.discover_service("api")
            assert time.monotonic() - started < 2.0
    finally:
        listener.close()


def test_stale_answers_while_down_then_the_bound(
    threaded: ThreadedAgent, caplog: pytest.LogCaptureFixture
) -> None:
    with SyncConsulServiceRegistry(
        threaded.agent.address, cache_ttl=0.05, max_stale=0.5, request_timeout=1
    ) as registry:
        registry.register_service("api", "api-1", 1, address="a")
        assert registry.discover_service("api") == ["a:1"]
        threaded.run(threaded.agent.stop())
        time.sleep(0.1)
        with caplog.at_level(logging.WARNING, logger="backend_kit.discovery"):
            assert registry.discover_service("api") == ["a:1"]
        assert "serving the cached answer" in caplog.text
        time.sleep(0.5)
        with pytest.raises(RegistryUnavailableError):
            registry.discover_service("api")


def test_registered_heartbeats_in_a_thread_and_deregisters_on_error(
    threaded: ThreadedAgent, sync_registry: SyncConsulServiceRegistry
) -> None:
    def serve() -> None:
        with sync_registry.registered("api", "api-1", 1, address="a", check=TtlCheck("1s")):
            assert sync_registry.discover_service("api") == ["a:1"]
            time.sleep(1.5)  # past the TTL: only the heartbeat keeps it passing
            assert sync_registry.discover_service("api") == ["a:1"]
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        serve()
    assert threaded.agent.service_ids() == []
    assert not [t for t in threading.enumerate() if t.name.endswith("heartbeat api-1")]


def test_token_argument_wins_and_refusals_are_discovery_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "from-the-environment")
    agent = ThreadedAgent(acl_token="s3cret")
    try:
        with SyncConsulServiceRegistry(agent.agent.address, token="s3cret") as registry:
            registry.register_service("api", "api-1", 1, address="a")
        assert {r.token for r in agent.agent.requests} == {"s3cret"}
        with SyncConsulServiceRegistry(agent.agent.address, token="wrong") as registry:
            with pytest.raises(DiscoveryError, match="permission denied") as caught:
                registry.discover_service("api")
            assert not isinstance(caught.value, RegistryUnavailableError)
        monkeypatch.setenv("CONSUL_HTTP_ADDR", agent.agent.address)
        monkeypatch.setenv("CONSUL_HTTP_TOKEN", "s3cret")
        with SyncConsulServiceRegistry.from_env(cache_ttl=0) as registry:
            assert registry.discover_service("api") == ["a:1"]
    finally:
        agent.close()


def test_the_breaker_stops_requests_to_a_failing_agent_until_a_trial_succeeds(
    threaded: ThreadedAgent,
) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("consul", failure_threshold=3, reset_timeout=5.0, clock=clock)
    with SyncConsulServiceRegistry(
        threaded.agent.address, cache_ttl=0, max_stale=60, breaker=breaker
    ) as registry:
        assert registry.breaker is breaker
        registry.register_service("api", "api-1", 1, address="a")
        assert registry.discover_service("api") == ["a:1"]
        threaded.agent.leaderless = True  # catalog reads answer 500 "No cluster leader"
        for _ in range(3):
            assert registry.discover_service("api") == ["a:1"]  # stale, after a failed request
        assert state_of(breaker) is CircuitState.OPEN
        sent = len(threaded.agent.requests)
        for _ in range(20):
            assert registry.discover_service("api") == ["a:1"]  # stale, nothing sent
        with pytest.raises(RegistryUnavailableError, match="circuit breaker open") as caught:
            registry.ping()
        assert isinstance(caught.value.__cause__, CircuitOpenError)
        assert len(threaded.agent.requests) == sent
        threaded.agent.leaderless = False
        clock.now += 5.0
        assert registry.ping() is True  # the trial
        assert state_of(breaker) is CircuitState.CLOSED
        assert len(threaded.agent.requests) == sent + 1
