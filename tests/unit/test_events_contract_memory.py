"""The event-bus contract on InMemoryEventBus (the same tests run on RabbitMQ)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from backend_kit.events import EventBus, EventHooks, InMemoryEventBus
from tests.events_contract import *  # noqa: F403 - the contract's tests run here
from tests.events_contract import Harness


class MemoryHarness:
    """One in-memory bus is one broker: workers subscribe on the same bus."""

    def __init__(self) -> None:
        self.bus = InMemoryEventBus(shutdown_timeout=2.0)
        self._buses: list[InMemoryEventBus] = [self.bus]

    async def worker_bus(self) -> EventBus:
        return self.bus

    async def new_bus(self) -> EventBus:
        bus = InMemoryEventBus()
        self._buses.append(bus)
        return bus

    async def send_raw(self, routing_key: str, body: bytes) -> None:
        await self.bus.publish_raw(routing_key, body)

    async def hooked_bus(self, hooks: EventHooks) -> EventBus:
        bus = InMemoryEventBus(hooks=hooks)
        self._buses.append(bus)
        await bus.connect()
        return bus

    async def aclose(self) -> None:
        for bus in self._buses:
            await bus.close()


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    kit = MemoryHarness()
    await kit.bus.connect()
    try:
        yield kit
    finally:
        await kit.aclose()
