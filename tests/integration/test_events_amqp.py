"""RabbitMQ-only behaviour of AmqpEventBus: outages, typed errors, topology, aio-pika pins.

Outages here are network cuts through a local TCP proxy, so the shared broker
keeps running (the broker restart lives in ``test_events_fault.py``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import time
import weakref
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import aiormq
import pytest

from backend_kit.errors import (
    ConfigurationError,
    NotConnectedError,
    PublishNackedError,
    PublishTimeoutError,
    UnroutableEventError,
)
from backend_kit.events import Event, Subscription
from backend_kit.events.amqp import AmqpEventBus
from tests.events_contract import Recorder, eventually
from tests.integration.events_support import TrackingAmqpEventBus, delete_topology, queues_of
from tests.integration.tcp_proxy import TcpProxy


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    auth = netloc[0] + "@" if len(netloc) == 2 else ""
    return urlunsplit((parts.scheme, f"{auth}127.0.0.1:{port}", parts.path, "", ""))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def declared(amqp_url: str, unique_name: str) -> AsyncIterator[list[Subscription]]:
    """Subscriptions made by the test; their queues and the exchange are deleted afterwards."""
    subscriptions: list[Subscription] = []
    yield subscriptions
    queues = [name for sub in subscriptions for name in queues_of(sub)]
    await delete_topology(amqp_url, unique_name, queues)


@pytest.fixture
async def proxy(amqp_url: str) -> AsyncIterator[TcpProxy]:
    parts = urlsplit(amqp_url)
    tcp = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    await tcp.start()
    yield tcp
    await tcp.close()


async def test_publishing_during_an_outage_fails_fast_then_recovers_by_itself(
    amqp_url: str, unique_name: str, declared: list[Subscription], proxy: TcpProxy
) -> None:
    bus = TrackingAmqpEventBus(
        _via(amqp_url, proxy.port),
        declared=declared,
        exchange=unique_name,
        publish_timeout=1.0,
        reconnect_interval=0.2,
        shutdown_timeout=1.0,
    )
    seen = Recorder()
    async with bus:
        await bus.subscribe("order.*", seen, group="billing")
        before = await bus.publish_event("order.created", {"n": 1})
        await eventually(lambda: seen.ids() == {before.id}, what="the first event")

        proxy.cut()
        started = time.monotonic()
        with pytest.raises(PublishTimeoutError) as caught:
            await bus.publish_event("order.created", {"n": 2})
        elapsed = time.monotonic() - started
        assert 0.9 <= elapsed < 3.0, elapsed  # waited for the connection, then gave up
        assert len(caught.value.event_ids) == 1
        assert await bus.ping() is False

        proxy.restore()
        # No call from the test: the robust connections come back, the
        # topology is re-declared and the consumer resumes.
        after = Event.create("order.created", {"n": 3})
        deadline = time.monotonic() + 15
        while True:
            try:
                await bus.publish(after)
                break
            except PublishTimeoutError:
                assert time.monotonic() < deadline, "the bus never reconnected"
        await eventually(lambda: after.id in seen.ids(), what="consumption to resume")
        assert await bus.ping() is True


async def test_a_publish_in_flight_when_the_connection_drops_is_resent(
    amqp_url: str, unique_name: str, declared: list[Subscription], proxy: TcpProxy
) -> None:
    bus = TrackingAmqpEventBus(
        _via(amqp_url, proxy.port),
        declared=declared,
        exchange=unique_name,
        publish_timeout=15.0,
        reconnect_interval=0.2,
    )
    seen = Recorder()
    async with bus:
        await bus.subscribe("tick", seen, group="ticks")
        events = [Event.create("tick", {"n": n}) for n in range(2000)]
        publishing = asyncio.create_task(bus.publish_many(events))
        await asyncio.sleep(0.05)
        proxy.cut()
        await asyncio.sleep(0.5)
        proxy.restore()
        await asyncio.wait_for(publishing, 30)  # every event confirmed in the end
        await eventually(lambda: seen.ids() == {e.id for e in events}, within=30, what="all")


async def test_connect_to_an_unreachable_broker_fails_with_a_redacted_message() -> None:
    bus = AmqpEventBus(f"amqp://app:s3cret-pw@127.0.0.1:{_free_port()}/", connect_timeout=2.0)
    started = time.monotonic()
    with pytest.raises(NotConnectedError) as caught:
        await bus.connect()
    assert time.monotonic() - started < 5
    assert "s3cret-pw" not in str(caught.value)
    assert "app:***@127.0.0.1" in str(caught.value)
    assert "s3cret-pw" not in repr(bus)
    await bus.close()


async def test_an_exchange_of_another_type_is_a_configuration_error(
    amqp_url: str, unique_name: str, declared: list[Subscription]
) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_exchange(unique_name, aio_pika.ExchangeType.DIRECT)
    bus = AmqpEventBus(amqp_url, exchange=unique_name)
    with pytest.raises(ConfigurationError, match="exists with other settings"):
        await bus.connect()
    await bus.close()


async def test_a_queue_declared_with_other_settings_is_a_configuration_error(
    amqp_url: str, unique_name: str, declared: list[Subscription]
) -> None:
    queue = f"{unique_name}.billing.order.+"
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(queue, durable=False)
    async with AmqpEventBus(amqp_url, exchange=unique_name) as bus:
        with pytest.raises(ConfigurationError, match="exists with other settings"):
            await bus.subscribe("order.*", Recorder(), group="billing")
    await delete_topology(amqp_url, unique_name, [queue, queue + ".dead"])


async def test_a_publish_the_broker_nacks_raises_publish_nacked_error(
    amqp_url: str, unique_name: str, declared: list[Subscription]
) -> None:
    """A full queue with ``x-overflow=reject-publish`` makes RabbitMQ nack the publish."""
    full = f"{unique_name}.full"
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            unique_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(
            full, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
        )
        await queue.bind(exchange, "audit.#")
    async with AmqpEventBus(amqp_url, exchange=unique_name) as bus:
        await bus.publish_event("audit.login", {"n": 1})  # fills the queue
        event = Event.create("audit.login", {"n": 2})
        with pytest.raises(PublishNackedError) as caught:
            await bus.publish(event)
        assert caught.value.event_ids == (event.id,)
    await delete_topology(amqp_url, unique_name, [full])


async def test_a_copy_the_broker_refuses_is_rejected_into_the_dead_letters(
    amqp_url: str, unique_name: str, declared: list[Subscription]
) -> None:
    """The work queue's x-dead-letter-exchange catches what we could not republish."""
    failing = Recorder(always_fail=True)
    async with TrackingAmqpEventBus(amqp_url, declared=declared, exchange=unique_name) as bus:
        subscription = await bus.subscribe(
            "order.*", failing, group="billing", max_retries=3, retry_delay=0.05
        )
        retry_queue = queues_of(subscription)[2]
        await delete_topology(amqp_url, "", [retry_queue])  # the retry copy will be returned
        event = await bus.publish_event("order.created", {})
        await eventually(lambda: subscription.dead_lettered == 1, what="the rejection")
        letters = await bus.dead_letters("order.*", group="billing")
        assert [letter.event for letter in letters] == [event]
        assert letters[0].reason == "rejected"
        assert letters[0].routing_key == "order.created"
        assert failing.calls[event.id] == 1


async def test_dead_letters_can_be_read_twice(
    amqp_url: str, unique_name: str, declared: list[Subscription]
) -> None:
    async with TrackingAmqpEventBus(amqp_url, declared=declared, exchange=unique_name) as bus:
        subscription = await bus.subscribe(
            "order.*", Recorder(always_fail=True), group="billing", max_retries=0
        )
        for n in range(3):
            await bus.publish_event("order.created", {"n": n})
        await eventually(lambda: subscription.dead_lettered == 3, what="three dead letters")
        first = await bus.dead_letters("order.*", group="billing")
        second = await bus.dead_letters("order.*", group="billing", limit=2)
        assert [letter.event for letter in first][:2] == [letter.event for letter in second]
        assert len(first) == 3
        assert [letter.event.data["n"] for letter in first if letter.event] == [0, 1, 2]
        assert await bus.dead_letters("nobody.*", group="billing") == []


async def test_default_exchange_mode_routes_by_queue_name(
    amqp_url: str, unique_name: str, declared: list[Subscription]
) -> None:
    event_type = f"{unique_name}.created"
    seen = Recorder()
    async with TrackingAmqpEventBus(amqp_url, declared=declared, exchange="") as bus:
        with pytest.raises(UnroutableEventError):
            await bus.publish_event(event_type, {})  # no queue of that name yet
        subscription = await bus.subscribe(event_type, seen, group="ignored")
        assert subscription.queue == event_type
        sent = await bus.publish_event(event_type, {"n": 1})
        await eventually(lambda: seen.ids() == {sent.id}, what="the event")
        with pytest.raises(ConfigurationError):
            await bus.subscribe("order.*", seen, group="x")


async def test_from_env_reads_amqp_url(monkeypatch: pytest.MonkeyPatch, amqp_url: str) -> None:
    monkeypatch.setenv("AMQP_URL", amqp_url)
    async with AmqpEventBus.from_env(exchange="") as bus:
        assert await bus.ping() is True


# ------------------------------------------------ what aio-pika really does (pins)
async def test_pin_aio_pika_restores_only_channels_still_referenced(
    amqp_url: str, unique_name: str, proxy: TcpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """The known trap, as aio-pika 10.2.1 really behaves (its docs are vague here).

    A RobustConnection registers its channels in a ``WeakSet`` (issue #594;
    PR #666 only made queues and exchanges strong *inside* a channel). While
    connected, aiormq holds the open channel; once the connection is lost,
    nothing does, the channel (with its queue and consumer) is collected, and
    the reconnection restores nothing. Anything else holding a reference hides
    the trap: pytest's log capture does (aio-pika logs the channel's bound
    ``_on_close`` when the connection drops), so aio-pika's logs are muted here.
    AmqpEventBus keeps explicit references to every channel, queue and exchange.
    """
    caplog.set_level(logging.CRITICAL, logger="aio_pika")
    caplog.set_level(logging.CRITICAL, logger="aiormq")
    url = _via(amqp_url, proxy.port)
    connection = await aio_pika.connect_robust(url, reconnect_interval=0.2)
    received: list[bytes] = []

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        received.append(message.body)
        await message.ack()

    async def consume_without_keeping_references() -> None:
        channel = await connection.channel()
        queue = await channel.declare_queue(unique_name, auto_delete=False)
        await queue.consume(on_message)

    try:
        await consume_without_keeping_references()
        gc.collect()
        publisher = await aio_pika.connect(amqp_url)
        async with publisher:
            out = await publisher.channel()
            await out.default_exchange.publish(aio_pika.Message(b"before"), unique_name)
            await eventually(lambda: received == [b"before"], what="the first message")

            proxy.cut()
            await asyncio.sleep(0.5)
            gc.collect()  # only the WeakSet refers to the channel now
            proxy.restore()
            await asyncio.wait_for(connection.connected.wait(), 10)
            await asyncio.sleep(0.5)
            await out.default_exchange.publish(aio_pika.Message(b"after"), unique_name)
            await asyncio.sleep(1.0)
            assert received == [b"before"]  # the consumer was not restored
            declared = await out.declare_queue(unique_name, passive=True)
            assert declared.declaration_result.consumer_count == 0
            await out.queue_delete(unique_name)
        registry = vars(connection)["_RobustConnection__channels"]
        assert isinstance(registry, weakref.WeakSet)
    finally:
        await connection.close()


async def test_pin_aio_pika_unroutable_mandatory_publish_raises_publish_error(
    amqp_url: str, unique_name: str
) -> None:
    """With ``on_return_raises=True`` a Basic.Return fails the publish with aiormq's
    PublishError (a DeliveryError subclass, hence caught before nacks)."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.declare_exchange(
            unique_name, aio_pika.ExchangeType.TOPIC, auto_delete=True
        )
        with pytest.raises(aiormq.exceptions.PublishError) as caught:
            await exchange.publish(aio_pika.Message(b"x"), "no.binding", mandatory=True)
        assert isinstance(caught.value, aiormq.exceptions.DeliveryError)
        await exchange.delete()
