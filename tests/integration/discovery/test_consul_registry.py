"""ConsulServiceRegistry on the fake agent, over real sockets: what only Consul has.

Failure behaviour (agent down, hanging, refusing), caching, blocking-query
details, the address fallback, HTTP checks and token handling.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import warnings
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from backend_kit.discovery import HttpCheck, ServiceInstance, TtlCheck
from backend_kit.discovery.consul import ConsulServiceRegistry
from backend_kit.errors import ConfigurationError, DiscoveryError, RegistryUnavailableError
from backend_kit.resilience import CircuitBreaker, CircuitState
from tests.fakes.consul_agent import FakeConsulAgent
from tests.integration.discovery.conftest import (
    FAST,
    ManualClock,
    quick_breaker,
    state_of,
    wait_until,
)

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def consul_registry(fake_agent: FakeConsulAgent) -> AsyncIterator[ConsulServiceRegistry]:
    async with ConsulServiceRegistry(
        fake_agent.address, **FAST, breaker=quick_breaker()
    ) as registry:
        yield registry


# ------------------------------------------------------------------ discovery
async def test_empty_service_address_falls_back_to_the_node_address(
    fake_agent: FakeConsulAgent, consul_registry: ConsulServiceRegistry
) -> None:
    await consul_registry.register_service("api", "api-1", 8080, address="10.9.9.9")
    fake_agent.blank_service_address("api-1")
    assert await consul_registry.discover_service("api") == ["127.0.0.1:8080"]
    # And a service registered without an address is advertised at the node's.
    await consul_registry.register_service("web", "web-1", 80)
    assert await consul_registry.discover_service("web") == ["127.0.0.1:80"]


async def test_a_check_the_agent_marks_critical_is_excluded(
    fake_agent: FakeConsulAgent, consul_registry: ConsulServiceRegistry
) -> None:
    await consul_registry.register_service("api", "api-1", 1, address="a", check=TtlCheck("30s"))
    await consul_registry.register_service("api", "api-2", 2, address="b", check=TtlCheck("30s"))
    await consul_registry.update_ttl("api-1")
    await consul_registry.update_ttl("api-2")
    fake_agent.set_check_status("service:api-2", "critical")
    assert await consul_registry.discover_service("api") == ["a:1"]
    assert fake_agent.check_status("service:api-1") == "passing"


async def test_registration_body_follows_consul_documentation(
    fake_agent: FakeConsulAgent, consul_registry: ConsulServiceRegistry
) -> None:
    await consul_registry.register_service(
        "api", "api-1", 8080, check=TtlCheck(ttl="15s", deregister_after="1m")
    )
    [request] = [r for r in fake_agent.requests if r.path == "/v1/agent/service/register"]
    assert request.method == "PUT"
    assert "replace-existing-checks" in request.query  # idempotent re-registration
    assert fake_agent.service_ids() == ["api-1"]
    assert fake_agent.check_status("service:api-1") == "critical"


async def test_http_check_follows_the_probed_endpoint(
    fake_agent: FakeConsulAgent, consul_registry: ConsulServiceRegistry
) -> None:
    healthy = {"value": True}

    async def health(_: web.Request) -> web.Response:
        return web.Response(status=200 if healthy["value"] else 503)

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        check = HttpCheck(f"http://127.0.0.1:{port}/health", interval="100ms", timeout="1s")
        await consul_registry.register_service("api", "api-1", port, check=check)

        async def discovered() -> bool:
            return await consul_registry.discover_service("api") == [f"127.0.0.1:{port}"]

        await wait_until(discovered)
        healthy["value"] = False

        async def gone() -> bool:
            return await consul_registry.discover_service("api") == []

        await wait_until(gone)
    finally:
        await runner.cleanup()


async def test_malformed_answer_is_a_discovery_error() -> None:
    async def broken(_: web.Request) -> web.Response:
        return web.json_response(
            [{"Node": {}, "Service": {"no": "id"}}], headers={"X-Consul-Index": "5"}
        )

    app = web.Application()
    app.router.add_get("/v1/health/service/{name}", broken)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        async with ConsulServiceRegistry(f"127.0.0.1:{port}", **FAST) as registry:
            with pytest.raises(DiscoveryError, match="malformed"):
                await registry.instances("api")
    finally:
        await runner.cleanup()


# -------------------------------------------------------------------- caching
async def test_fresh_answers_come_from_the_cache(fake_agent: FakeConsulAgent) -> None:
    async with ConsulServiceRegistry(fake_agent.address, cache_ttl=10) as registry:
        await registry.register_service("api", "api-1", 1, address="a")
        for _ in range(5):
            assert await registry.discover_service("api") == ["a:1"]
        assert len(fake_agent.health_requests("api")) == 1
        # Our own write invalidates the cached answer: read-your-writes.
        await registry.register_service("api", "api-2", 2, address="b")
        assert await registry.discover_service("api") == ["a:1", "b:2"]
        assert len(fake_agent.health_requests("api")) == 2


async def test_concurrent_misses_share_one_request(fake_agent: FakeConsulAgent) -> None:
    async with ConsulServiceRegistry(fake_agent.address, cache_ttl=10) as registry:
        await registry.register_service("api", "api-1", 1, address="a")
        results = await asyncio.gather(*(registry.discover_service("api") for _ in range(20)))
        assert results == [["a:1"]] * 20
        assert len(fake_agent.health_requests("api")) == 1


async def test_stale_answer_is_served_while_the_agent_is_down_then_the_bound_raises(
    fake_agent: FakeConsulAgent, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("consul", failure_threshold=3, reset_timeout=5.0, clock=clock)
    async with ConsulServiceRegistry(
        fake_agent.address, cache_ttl=0.05, max_stale=0.6, request_timeout=1, breaker=breaker
    ) as registry:
        await registry.register_service("api", "api-1", 1, address="a")
        assert await registry.discover_service("api") == ["a:1"]
        await fake_agent.stop()
        await asyncio.sleep(0.1)  # past the cache TTL: the registry must ask the agent
        with caplog.at_level(logging.WARNING, logger="backend_kit.discovery"):
            assert await registry.discover_service("api") == ["a:1"]
        assert any("serving the cached answer" in r.getMessage() for r in caplog.records)
        await asyncio.sleep(0.6)  # past max_stale
        with pytest.raises(RegistryUnavailableError, match="unreachable"):
            await registry.discover_service("api")
        # Without any cached answer the error comes at once.
        with pytest.raises(RegistryUnavailableError):
            await registry.discover_service("never-seen")
        # Three failed requests opened the breaker: the agent is not asked
        # again until its reset timeout, even once it is back.
        assert state_of(breaker) is CircuitState.OPEN
        await fake_agent.start()
        requests_before = len(fake_agent.requests)
        for _ in range(2):
            with pytest.raises(RegistryUnavailableError, match="circuit breaker open"):
                await registry.discover_service("api")
        assert len(fake_agent.requests) == requests_before
        # The agent comes back: after the reset timeout a trial request gets a
        # fresh answer and closes the breaker.
        clock.now += 5.0
        assert await registry.discover_service("api") == ["a:1"]
        assert state_of(breaker) is CircuitState.CLOSED


# ------------------------------------------------------------------- failures
async def test_registration_against_a_stopped_agent_fails_promptly(
    fake_agent: FakeConsulAgent, consul_registry: ConsulServiceRegistry
) -> None:
    await fake_agent.stop()
    started = time.monotonic()
    with pytest.raises(RegistryUnavailableError) as caught:
        await consul_registry.register_service("api", "api-1", 1)
    assert time.monotonic() - started < 2.0
    assert fake_agent.address in str(caught.value)
    for call in (
        consul_registry.deregister_service("api-1"),
        consul_registry.update_ttl("api-1"),
        consul_registry.aping(),
    ):
        with pytest.raises(RegistryUnavailableError):
            await call


async def test_an_agent_that_never_answers_times_out_as_unavailable() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections (in the backlog) and never answers
    try:
        port = listener.getsockname()[1]
        async with ConsulServiceRegistry(f"127.0.0.1:{port}", request_timeout=0.3) as registry:
            started = time.monotonic()
            with pytest.raises(RegistryUnavailableError, match="did not answer"):
                await registry.register_service("api", "api-1", 1)
            assert time.monotonic() - started < 2.0
    finally:
        listener.close()


async def test_server_errors_are_unavailable_and_client_errors_are_not() -> None:
    async def leaderless(_: web.Request) -> web.Response:
        return web.Response(status=500, text="No cluster leader")

    async def forbidden(_: web.Request) -> web.Response:
        return web.Response(status=400, text="Invalid service address")

    app = web.Application()
    app.router.add_get("/v1/health/service/{name}", leaderless)
    app.router.add_put("/v1/agent/service/register", forbidden)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        async with ConsulServiceRegistry(f"127.0.0.1:{port}", **FAST) as registry:
            with pytest.raises(RegistryUnavailableError, match="No cluster leader"):
                await registry.instances("api")
            with pytest.raises(DiscoveryError, match="Invalid service address") as caught:
                await registry.register_service("api", "api-1", 1)
            assert not isinstance(caught.value, RegistryUnavailableError)
    finally:
        await runner.cleanup()


async def test_a_stopped_agent_makes_aping_fail_and_a_running_one_pass(
    fake_agent: FakeConsulAgent, consul_registry: ConsulServiceRegistry
) -> None:
    assert await consul_registry.aping() is True
    await fake_agent.stop()
    with pytest.raises(RegistryUnavailableError):
        await consul_registry.aping()


# ---------------------------------------------------------------------- token
async def test_the_token_is_sent_and_a_wrong_one_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "from-the-environment")
    async with FakeConsulAgent(acl_token="s3cret") as agent:
        async with ConsulServiceRegistry(agent.address, token="s3cret", **FAST) as registry:
            await registry.register_service("api", "api-1", 1, address="a")
            assert await registry.discover_service("api") == ["a:1"]
        assert {r.token for r in agent.requests} == {"s3cret"}
        async with ConsulServiceRegistry(agent.address, token="wrong", **FAST) as registry:
            with pytest.raises(DiscoveryError, match="permission denied") as caught:
                await registry.register_service("api", "api-2", 1)
            assert "wrong" not in str(caught.value)
        monkeypatch.setenv("CONSUL_HTTP_ADDR", agent.address.removeprefix("http://"))
        monkeypatch.setenv("CONSUL_HTTP_TOKEN", "s3cret")
        async with ConsulServiceRegistry.from_env(**FAST) as registry:
            assert await registry.discover_service("api") == ["a:1"]


async def test_py_consul_lets_the_environment_token_override_its_argument(
    fake_agent: FakeConsulAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pinned: py-consul 1.8 reads ``os.getenv("CONSUL_HTTP_TOKEN", token)``.

    Its docstring says the token argument is used for every request; in fact
    the environment wins. ConsulServiceRegistry overrides it (test above).
    """
    import consul.aio

    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "from-the-environment")
    with warnings.catch_warnings():  # py-consul passes aiohttp's deprecated ssl arguments
        warnings.simplefilter("ignore", DeprecationWarning)
        client = consul.aio.Consul(host="127.0.0.1", port=fake_agent.port, token="from-argument")
    try:
        await client.agent.services()
    finally:
        await client.close()
    assert fake_agent.requests[-1].token == "from-the-environment"


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:8500", "http://127.0.0.1:8500"),
        ("consul.internal", "http://consul.internal:8500"),
        ("https://consul.internal", "https://consul.internal:8501"),
        ("http://[::1]:8500", "http://[::1]:8500"),
    ],
)
def test_addresses_are_parsed_like_the_consul_cli(address: str, expected: str) -> None:
    assert ConsulServiceRegistry(address).address == expected


@pytest.mark.parametrize("address", ["ftp://x:1", "http://user:pw@x:1", "http://x:notaport", ""])
def test_bad_addresses_are_configuration_errors_without_the_secret(address: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        ConsulServiceRegistry(address)
    assert "pw" not in str(caught.value)


def test_from_env_reads_the_consul_cli_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "consul.internal:8501")
    monkeypatch.setenv("CONSUL_HTTP_SSL", "true")
    monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)
    registry = ConsulServiceRegistry.from_env()
    assert registry.address == "https://consul.internal:8501"
    assert "consul.internal" in repr(registry)


# ---------------------------------------------------------------------- watch
async def _collect(
    registry: ConsulServiceRegistry, name: str, into: list[list[ServiceInstance]]
) -> None:
    async for instances in registry.watch(name):
        into.append(instances)  # noqa: PERF401 - the watch never ends; read while it runs


async def test_watch_blocks_with_index_and_wait_and_ignores_same_index_answers(
    fake_agent: FakeConsulAgent, consul_registry: ConsulServiceRegistry
) -> None:
    seen: list[list[ServiceInstance]] = []
    watcher = asyncio.create_task(_collect(consul_registry, "api", seen))
    try:
        await asyncio.sleep(2.3)  # two wait=1s rounds run out with the same index
        requests = fake_agent.health_requests("api")
        assert len(requests) >= 3
        assert "index" not in requests[0].query  # the first read does not block
        assert all(r.query["wait"] == ["1s"] and r.query["passing"] for r in requests[1:])
        assert len(seen) == 1  # same index: no change reported
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


async def test_watch_resets_an_index_that_goes_backwards_and_never_sends_below_1(
    fake_agent: FakeConsulAgent, consul_registry: ConsulServiceRegistry
) -> None:
    seen: list[list[ServiceInstance]] = []
    await consul_registry.register_service("api", "api-1", 1, address="a")
    watcher = asyncio.create_task(_collect(consul_registry, "api", seen))
    try:
        await wait_until(lambda: _has(seen, 1))
        fake_agent.force_index("api", 0)  # a buggy agent: index 0 (below the one we hold)
        await asyncio.sleep(1.3)  # the blocked query runs out and answers with index 0
        indexes = [r.query.get("index") for r in fake_agent.health_requests("api")]
        assert ["1"] in indexes  # reset, and 1 rather than 0
        assert all(index is None or int(index[0]) >= 1 for index in indexes)
        await consul_registry.register_service("api", "api-2", 2, address="b")
        await wait_until(lambda: _has(seen, 2))
        assert [i.endpoint for i in seen[-1]] == ["a:1", "b:2"]
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


async def _has(items: list[list[ServiceInstance]], n: int) -> bool:
    return len(items) >= n


async def test_watch_is_rate_limited_against_an_agent_that_does_not_block(
    fake_agent: FakeConsulAgent,
) -> None:
    # The index moves every 10 ms with nothing else changing: each blocking
    # request comes back at once, and the watch must pace itself.
    async with ConsulServiceRegistry(
        fake_agent.address, watch_wait=1, watch_min_interval=0.2
    ) as registry:
        seen: list[list[ServiceInstance]] = []
        watcher = asyncio.create_task(_collect(registry, "api", seen))

        async def flip() -> None:
            for value in range(200):
                fake_agent.force_index("api", 1_000 + value)
                await asyncio.sleep(0.01)

        flipper = asyncio.create_task(flip())
        await asyncio.sleep(1.0)
        watcher.cancel()
        flipper.cancel()
        await asyncio.gather(watcher, flipper, return_exceptions=True)
        assert len(fake_agent.health_requests("api")) <= 7  # 1 s / 0.2 s, plus the first
        assert len(seen) == 1


async def test_watch_survives_an_agent_restart(
    fake_agent: FakeConsulAgent, consul_registry: ConsulServiceRegistry
) -> None:
    seen: list[list[ServiceInstance]] = []
    watcher = asyncio.create_task(_collect(consul_registry, "api", seen))
    try:
        await wait_until(lambda: _has(seen, 1))
        await fake_agent.stop()
        await asyncio.sleep(0.5)  # the watch retries with backoff meanwhile
        await fake_agent.start()
        await consul_registry.register_service("api", "api-1", 1, address="a")
        await wait_until(lambda: _has(seen, 2))
        assert [i.endpoint for i in seen[-1]] == ["a:1"]
        assert not watcher.done()
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


async def test_watch_feeds_the_cache(fake_agent: FakeConsulAgent) -> None:
    async with ConsulServiceRegistry(fake_agent.address, cache_ttl=10, watch_wait=1) as registry:
        await registry.register_service("api", "api-1", 1, address="a")
        seen: list[list[ServiceInstance]] = []
        watcher = asyncio.create_task(_collect(registry, "api", seen))
        await wait_until(lambda: _has(seen, 1))
        before = len(fake_agent.health_requests("api"))
        assert await registry.discover_service("api") == ["a:1"]
        assert len(fake_agent.health_requests("api")) == before
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


# ------------------------------------------------------------------ heartbeat
async def test_heartbeat_registers_again_when_the_agent_lost_the_service(
    fake_agent: FakeConsulAgent, consul_registry: ConsulServiceRegistry
) -> None:
    async with consul_registry.registered(
        "api", "api-1", 1, address="a", check=TtlCheck("1s"), heartbeat_interval=0.1
    ):
        fake_agent.forget_everything()
        assert await consul_registry.discover_service("api") == []

        async def back() -> bool:
            return await consul_registry.discover_service("api") == ["a:1"]

        await wait_until(back)
    assert fake_agent.service_ids() == []


async def test_heartbeat_rides_out_an_agent_outage(
    fake_agent: FakeConsulAgent,
    consul_registry: ConsulServiceRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="backend_kit.discovery"):
        async with consul_registry.registered(
            "api", "api-1", 1, address="a", check=TtlCheck("2s"), heartbeat_interval=0.1
        ):
            await fake_agent.stop()
            await asyncio.sleep(0.35)
            await fake_agent.start()
            await asyncio.sleep(0.3)

            async def back() -> bool:
                # The breaker (opened by the failed heartbeats) lets a trial through first.
                try:
                    return await consul_registry.discover_service("api") == ["a:1"]
                except RegistryUnavailableError:
                    return False

            await wait_until(back)
    assert any("heartbeat for api-1 failed" in r.getMessage() for r in caplog.records)
    assert fake_agent.service_ids() == []


async def test_failed_deregistration_on_exit_is_logged_not_raised(
    fake_agent: FakeConsulAgent,
    consul_registry: ConsulServiceRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="backend_kit.discovery"):
        async with consul_registry.registered("api", "api-1", 1, check=TtlCheck("5s")):
            await fake_agent.stop()
    assert any("could not deregister api-1" in r.getMessage() for r in caplog.records)
