"""The event-bus contract on the real RabbitMQ (the same tests run on InMemoryEventBus).

Each test gets its own exchange (so its own queues) and deletes them afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aio_pika
import pytest

from backend_kit.events import EventBus, EventHooks, Subscription
from tests.events_contract import *  # noqa: F403 - the contract's tests run here
from tests.events_contract import Harness
from tests.integration.events_support import TrackingAmqpEventBus, delete_topology, queues_of


class AmqpHarness:
    def __init__(self, url: str, exchange: str) -> None:
        self.url = url
        self.exchange = exchange
        self.declared: list[Subscription] = []
        self._buses: list[TrackingAmqpEventBus] = []
        self.bus = self._make()

    def _make(self, hooks: EventHooks | None = None) -> TrackingAmqpEventBus:
        bus = TrackingAmqpEventBus(
            self.url,
            declared=self.declared,
            exchange=self.exchange,
            publish_timeout=5.0,
            shutdown_timeout=2.0,
            hooks=hooks,
        )
        self._buses.append(bus)
        return bus

    async def worker_bus(self) -> EventBus:
        bus = self._make()  # its own connections: another worker process
        await bus.connect()
        return bus

    async def new_bus(self) -> EventBus:
        return self._make()

    async def hooked_bus(self, hooks: EventHooks) -> EventBus:
        bus = self._make(hooks)
        await bus.connect()
        return bus

    async def send_raw(self, routing_key: str, body: bytes) -> None:
        connection = await aio_pika.connect(self.url, timeout=10)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(self.exchange)
            await exchange.publish(aio_pika.Message(body), routing_key=routing_key)

    async def aclose(self) -> None:
        for bus in self._buses:
            await bus.close()
        queues = [name for sub in self.declared for name in queues_of(sub)]
        await delete_topology(self.url, self.exchange, queues)


@pytest.fixture
async def harness(amqp_url: str, unique_name: str) -> AsyncIterator[Harness]:
    kit = AmqpHarness(amqp_url, unique_name)
    await kit.bus.connect()
    try:
        yield kit
    finally:
        await kit.aclose()
