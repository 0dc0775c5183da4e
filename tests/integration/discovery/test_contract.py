"""The ServiceRegistry contract, run on every backend (memory, Consul fake, live Consul)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from backend_kit.discovery import (
    BaseServiceRegistry,
    HttpCheck,
    NoHealthyInstanceError,
    ServiceInstance,
    ServiceRegistry,
    TtlCheck,
)
from backend_kit.errors import ConfigurationError
from tests.integration.discovery.conftest import wait_until

pytestmark = pytest.mark.timeout(30)


@contextlib.asynccontextmanager
async def cleanup(registry: BaseServiceRegistry, *ids: str) -> AsyncIterator[None]:
    """Deregister what a test registered, so a live agent is left as found."""
    try:
        yield
    finally:
        for service_id in ids:
            await registry.deregister_service(service_id)


def test_every_backend_is_a_service_registry(registry: BaseServiceRegistry) -> None:
    assert isinstance(registry, ServiceRegistry)


async def test_registered_instance_is_discovered_as_address_port(
    registry: BaseServiceRegistry, unique_name: str
) -> None:
    async with cleanup(registry, f"{unique_name}-1"):
        await registry.register_service(
            unique_name,
            f"{unique_name}-1",
            8080,
            address="10.1.2.3",
            tags=("v1", "primary"),
            meta={"version": "1.2.3"},
        )
        assert await registry.discover_service(unique_name) == ["10.1.2.3:8080"]
        [instance] = await registry.instances(unique_name)
        assert instance == ServiceInstance(
            service_id=f"{unique_name}-1",
            name=unique_name,
            address="10.1.2.3",
            port=8080,
            tags=("v1", "primary"),
            meta={"version": "1.2.3"},
        )
        assert instance.endpoint == "10.1.2.3:8080"


async def test_unknown_service_has_no_instances(
    registry: BaseServiceRegistry, unique_name: str
) -> None:
    assert await registry.discover_service(unique_name) == []
    with pytest.raises(NoHealthyInstanceError):
        await registry.choose(unique_name)


async def test_ttl_check_starts_critical_and_only_passing_instances_are_returned(
    registry: BaseServiceRegistry, unique_name: str
) -> None:
    ids = [f"{unique_name}-a", f"{unique_name}-b"]
    async with cleanup(registry, *ids):
        for port, service_id in enumerate(ids, start=9001):
            await registry.register_service(
                unique_name, service_id, port, address="10.0.0.9", check=TtlCheck(ttl="30s")
            )
        assert await registry.discover_service(unique_name) == []  # new TTL checks are critical
        assert await registry.update_ttl(ids[0], "passing", note="ready")
        assert await registry.update_ttl(ids[1], "passing")
        assert await registry.discover_service(unique_name) == ["10.0.0.9:9001", "10.0.0.9:9002"]
        assert await registry.update_ttl(ids[1], "critical", note="draining")
        assert await registry.discover_service(unique_name) == ["10.0.0.9:9001"]
        assert await registry.update_ttl(ids[0], "warning")
        assert await registry.discover_service(unique_name) == []


async def test_update_ttl_of_an_unknown_service_returns_false(
    registry: BaseServiceRegistry, unique_name: str
) -> None:
    assert await registry.update_ttl(f"{unique_name}-nobody") is False


async def test_re_registering_the_same_id_updates_it(
    registry: BaseServiceRegistry, unique_name: str
) -> None:
    service_id = f"{unique_name}-1"
    async with cleanup(registry, service_id):
        await registry.register_service(unique_name, service_id, 8000, address="10.0.0.1")
        await registry.register_service(
            unique_name, service_id, 8001, address="10.0.0.1", tags=("blue",)
        )
        [instance] = await registry.instances(unique_name)
        assert (instance.port, instance.tags) == (8001, ("blue",))


async def test_re_registering_keeps_a_passing_ttl_check_passing(
    registry: BaseServiceRegistry, unique_name: str
) -> None:
    service_id = f"{unique_name}-1"
    async with cleanup(registry, service_id):
        check = TtlCheck(ttl="30s")
        await registry.register_service(unique_name, service_id, 8000, check=check)
        await registry.update_ttl(service_id)
        await registry.register_service(unique_name, service_id, 8000, check=check)
        assert len(await registry.instances(unique_name)) == 1


async def test_deregister_removes_and_reports_whether_it_was_known(
    registry: BaseServiceRegistry, unique_name: str
) -> None:
    service_id = f"{unique_name}-1"
    await registry.register_service(unique_name, service_id, 8000, address="10.0.0.1")
    assert await registry.deregister_service(service_id) is True
    assert await registry.discover_service(unique_name) == []
    assert await registry.deregister_service(service_id) is False


async def test_tag_filter(registry: BaseServiceRegistry, unique_name: str) -> None:
    ids = [f"{unique_name}-blue", f"{unique_name}-green"]
    async with cleanup(registry, *ids):
        await registry.register_service(unique_name, ids[0], 1, address="10.0.0.1", tags=("blue",))
        await registry.register_service(unique_name, ids[1], 2, address="10.0.0.2", tags=("green",))
        assert await registry.discover_service(unique_name, tag="green") == ["10.0.0.2:2"]
        assert len(await registry.discover_service(unique_name)) == 2


async def test_choose_round_robin_and_random(
    registry: BaseServiceRegistry, unique_name: str
) -> None:
    ids = [f"{unique_name}-1", f"{unique_name}-2", f"{unique_name}-3"]
    async with cleanup(registry, *ids):
        for number, service_id in enumerate(ids, start=1):
            await registry.register_service(unique_name, service_id, 7000 + number, address="h")
        picked = [(await registry.choose(unique_name)).port for _ in range(6)]
        assert sorted(picked[:3]) == [7001, 7002, 7003]
        assert picked[3:] == picked[:3]  # the cycle repeats in the same order
        randoms = {(await registry.choose(unique_name, strategy="random")).port for _ in range(40)}
        assert randoms <= {7001, 7002, 7003}
        assert len(randoms) >= 2


async def test_watch_sees_a_registration_and_a_deregistration(
    registry: BaseServiceRegistry, unique_name: str
) -> None:
    service_id = f"{unique_name}-1"
    seen: list[list[str]] = []
    registered = asyncio.Event()

    async def consume() -> None:
        async for instances in registry.watch(unique_name):
            seen.append([instance.endpoint for instance in instances])
            if len(seen) == 1:
                registered.set()
            if len(seen) == 3:
                return

    async with cleanup(registry, service_id):
        watcher = asyncio.create_task(consume())
        await asyncio.wait_for(registered.wait(), 5)
        await registry.register_service(unique_name, service_id, 8000, address="10.0.0.7")
        await wait_until(lambda: _length_at_least(seen, 2))
        await registry.deregister_service(service_id)
        await asyncio.wait_for(watcher, 5)
    assert seen == [[], ["10.0.0.7:8000"], []]


async def _length_at_least(items: list[list[str]], n: int) -> bool:
    return len(items) >= n


async def test_watch_stops_cleanly_when_cancelled(
    registry: BaseServiceRegistry, unique_name: str
) -> None:
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in registry.watch(unique_name):
            started.set()

    watcher = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 5)
    watcher.cancel()
    with pytest.raises(asyncio.CancelledError):
        await watcher
    assert watcher.cancelled()


async def test_ttl_lapse_makes_an_instance_critical(
    registry: BaseServiceRegistry, unique_name: str
) -> None:
    service_id = f"{unique_name}-1"
    async with cleanup(registry, service_id):
        await registry.register_service(unique_name, service_id, 8000, check=TtlCheck(ttl="1s"))
        await registry.update_ttl(service_id)
        assert len(await registry.instances(unique_name)) == 1
        await asyncio.sleep(1.3)
        assert await registry.instances(unique_name) == []


async def test_registered_heartbeat_keeps_the_instance_passing_and_deregisters_on_exit(
    registry: BaseServiceRegistry, unique_name: str
) -> None:
    service_id = f"{unique_name}-1"
    async with registry.registered(
        unique_name, service_id, 8000, address="10.0.0.4", check=TtlCheck(ttl="1s")
    ):
        assert await registry.discover_service(unique_name) == ["10.0.0.4:8000"]
        await asyncio.sleep(1.6)  # longer than the TTL: only the heartbeat keeps it passing
        assert await registry.discover_service(unique_name) == ["10.0.0.4:8000"]
    assert await registry.discover_service(unique_name) == []
    assert await registry.deregister_service(service_id) is False


async def test_registered_deregisters_even_when_the_body_raises(
    registry: BaseServiceRegistry, unique_name: str
) -> None:
    service_id = f"{unique_name}-1"
    seen_inside: list[str] = []

    async def failing_body() -> None:
        async with registry.registered(unique_name, service_id, 8000, address="10.0.0.4"):
            seen_inside.extend(await registry.discover_service(unique_name))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await failing_body()
    assert seen_inside == ["10.0.0.4:8000"]
    assert await registry.discover_service(unique_name) == []
    assert await registry.deregister_service(service_id) is False


async def test_registered_without_a_ttl_check_has_no_heartbeat(
    registry: BaseServiceRegistry, unique_name: str
) -> None:
    service_id = f"{unique_name}-1"
    async with registry.registered(unique_name, service_id, 8000, address="h", check=None):
        assert await registry.discover_service(unique_name) == ["h:8000"]
        assert await registry.update_ttl(service_id) is False
    assert await registry.discover_service(unique_name) == []


@pytest.mark.parametrize(
    ("name", "service_id", "port"),
    [("", "x", 1), ("svc", "", 1), ("svc", "a/b", 1), ("svc", "x", 70000), ("svc", "x", -1)],
)
async def test_invalid_registrations_are_refused_before_any_request(
    registry: BaseServiceRegistry, name: str, service_id: str, port: int
) -> None:
    with pytest.raises(ConfigurationError):
        await registry.register_service(name, service_id, port)


async def test_http_check_definitions_are_accepted(
    registry: BaseServiceRegistry, unique_name: str
) -> None:
    service_id = f"{unique_name}-1"
    async with cleanup(registry, service_id):
        await registry.register_service(
            unique_name,
            service_id,
            8000,
            check=HttpCheck("http://127.0.0.1:1/health", interval="10s", timeout="1s"),
        )
        # Whether it is passing depends on the probe; the registration itself must stand.
        assert await registry.deregister_service(service_id) is True


async def test_registered_deregisters_when_the_task_is_cancelled(
    registry: BaseServiceRegistry, unique_name: str
) -> None:
    service_id = f"{unique_name}-1"
    inside = asyncio.Event()

    async def serve() -> None:
        async with registry.registered(unique_name, service_id, 8000, address="10.0.0.4"):
            inside.set()
            await asyncio.sleep(60)

    server = asyncio.create_task(serve())
    await asyncio.wait_for(inside.wait(), 5)
    assert await registry.discover_service(unique_name) == ["10.0.0.4:8000"]
    server.cancel()
    with pytest.raises(asyncio.CancelledError):
        await server
    assert await registry.discover_service(unique_name) == []
