"""``AmqpEventBus``: the event bus on RabbitMQ, with aio-pika (extra ``amqp``).

Topology (``exchange="events"``, group ``billing``, pattern ``order.*``)::

    publish(order.created) ──► exchange "events" (topic, durable)
                                   │ binding "order.*"
                                   ▼
                     queue "events.billing.order.*"  (durable; x-dead-letter → ".dead")
                        │ handler ok → ack
                        │ handler raised, retries left → copy to
                        ▼
          "events.billing.order.*.retry.1000ms"  (x-message-ttl=1000,
                        │                          dead-letters back to the work queue)
                        ▼ after the TTL
                     queue "events.billing.order.*"  (attempt n + 1)
                        │ no retries left, or not an envelope → copy to
                        ▼
                     queue "events.billing.order.*.dead"  (reason and error in headers)

Why retry queues with a queue-wide TTL instead of a requeue with a delay:
RabbitMQ has no delayed requeue; a per-message TTL only expires at the head
of a queue (a 30 s retry would block a 1 s one behind it), while a queue-wide
TTL keeps expiry order equal to arrival order. One retry queue per distinct
delay, dead-lettering back to the group's own queue through the default
exchange, so a retry reaches only the group that failed, never the others.
The failed copy is republished with confirms *before* the original is acked,
so a crash in between duplicates the message rather than losing it.

Connections: one for publishing, one for consuming (a consumer flood never
slows publishing, and flow control on one does not block the other), both
robust (aio-pika reconnects and re-declares what it still references: the bus
holds every channel, exchange and queue for that reason; aio-pika keeps its
channels in a ``WeakSet``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Self, cast
from urllib.parse import urlsplit

from backend_kit._optional import import_optional

import_optional("aio_pika", extra="amqp")

import aio_pika  # noqa: E402 - after import_optional, which names the extra if missing
import aiormq  # noqa: E402
from aio_pika.abc import (  # noqa: E402
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustExchange,
    AbstractRobustQueue,
)
from aiormq.abc import DeliveredMessage  # noqa: E402
from pamqp.commands import Basic  # noqa: E402

from backend_kit._redact import redact_url  # noqa: E402
from backend_kit.errors import (  # noqa: E402
    ConfigurationError,
    InvalidEventError,
    NotConnectedError,
    PoisonEventError,
    PublishError,
    PublishNackedError,
    PublishTimeoutError,
    UnroutableEventError,
)
from backend_kit.events._event import Event  # noqa: E402
from backend_kit.events._hooks import EventHooks, call_hook  # noqa: E402
from backend_kit.events._serialization import CONTENT_TYPE, decode_event, encode_event  # noqa: E402
from backend_kit.events._subscription import (  # noqa: E402
    ATTEMPTS_HEADER,
    ERROR_HEADER,
    FAILED_AT_HEADER,
    QUEUE_HEADER,
    REASON_HANDLER_FAILED,
    REASON_HEADER,
    REASON_INVALID_ENVELOPE,
    REASON_POISON,
    REASON_REJECTED,
    ROUTING_KEY_HEADER,
    DeadLetter,
    EventHandler,
    RetryPolicy,
    Subscription,
    describe_error,
    work_queue_name,
)

__all__ = ["AmqpEventBus"]

logger = logging.getLogger("backend_kit.events")

_PERSISTENT = 2  # AMQP delivery mode: written to disk by durable queues

# Failures that mean "the connection or channel went away": the publish is
# retried on the restored channel until the publish timeout. DeliveryError
# (a nack or a return) is an answer from the broker and is handled first.
_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    OSError,
)


@dataclass(slots=True, eq=False)
class _Consumer:
    """Everything one subscription holds on to (so aio-pika can restore it)."""

    subscription: Subscription
    channel: AbstractRobustChannel
    exchange: AbstractRobustExchange | None
    queue: AbstractRobustQueue
    side_queues: tuple[AbstractRobustQueue, ...]  # dead-letter and retry queues
    retry_queue_for: dict[float, str]  # delay in seconds -> retry queue name
    consumer_tag: str = ""
    on_message: Callable[[DeliveredMessage], Coroutine[Any, Any, None]] | None = None
    restart: Callable[[Any], Awaitable[None]] | None = None


def _retry_queue_name(queue: str, delay: float) -> str:
    # The delay is in the name: a queue's TTL cannot change once declared, so
    # a new delay means a new queue (the old one still drains into the work queue).
    return f"{queue}.retry.{round(delay * 1000)}ms"


def _header_int(headers: Mapping[str, Any], key: str) -> int:
    value = headers.get(key, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _header_str(headers: Mapping[str, Any], key: str) -> str | None:
    value = headers.get(key)
    if isinstance(value, bytes):  # AMQP long strings may arrive as bytes
        return value.decode(errors="replace")
    return value if isinstance(value, str) else None


def _x_death_routing_key(headers: Mapping[str, Any]) -> str | None:
    deaths = headers.get("x-death")
    if not isinstance(deaths, list) or not deaths or not isinstance(deaths[-1], Mapping):
        return None
    keys = deaths[-1].get("routing-keys")  # the oldest death is last
    if not isinstance(keys, list) or not keys:
        return None
    key = keys[0]
    if isinstance(key, bytes):
        return key.decode(errors="replace")
    return key if isinstance(key, str) else None


def _delivery_tag(message: DeliveredMessage) -> int:
    tag = message.delivery_tag
    if tag is None:  # pragma: no cover - a Basic.Deliver always carries one
        raise aiormq.exceptions.ChannelInvalidStateError("delivery without a tag")
    return tag


async def _ack(message: DeliveredMessage) -> None:
    # wait=False: queue the ack frame without waiting for the socket to drain.
    # Frames leave in order; if the connection dies first, the broker simply
    # redelivers the message (at-least-once either way), and the handler's
    # task is freed a loop turn earlier (aio-pika's message.ack() waits).
    await message.channel.basic_ack(_delivery_tag(message), wait=False)


def _current_task_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class AmqpEventBus:
    """An :class:`~backend_kit.events.EventBus` on RabbitMQ: confirmed, acked, robust.

    Args:
        url: ``amqp://user:password@host:5672/vhost`` (``amqps://`` for TLS).
            Credentials come from here or the environment (:meth:`from_env`), never defaults.
        exchange: Durable topic exchange to publish to (``"events"``). ``""``
            uses the default exchange: the routing key (event type) is a queue
            name, and subscriptions take a literal event type.
        publish_timeout: Seconds a publish may take, *including* waiting for a
            lost connection to come back, before ``PublishTimeoutError`` (10 s).
        confirm_window: Confirms ``publish_many`` keeps in flight (500).
        connect_timeout: Seconds ``connect()`` waits for the broker (10 s).
        reconnect_interval: Seconds between reconnection attempts (1 s).
        shutdown_timeout: Seconds ``close()`` lets running handlers finish (10 s).
        name: Shown as the connection name in the RabbitMQ UI (``"backend-kit"``).
        hooks: :class:`~backend_kit.events.EventHooks` to call as events flow.

    Raises:
        ConfigurationError: the URL is not an ``amqp://``/``amqps://`` URL, or a
            number is out of range.
    """

    def __init__(
        self,
        url: str,
        *,
        exchange: str = "events",
        publish_timeout: float = 10.0,
        confirm_window: int = 500,
        connect_timeout: float = 10.0,
        reconnect_interval: float = 1.0,
        shutdown_timeout: float = 10.0,
        name: str = "backend-kit",
        hooks: EventHooks | None = None,
    ) -> None:
        if not url.startswith(("amqp://", "amqps://")):
            raise ConfigurationError("the AMQP URL must start with amqp:// or amqps://")
        try:
            urlsplit(url).port  # noqa: B018 - a bad host or port raises here, not in connect()
        except ValueError:
            raise ConfigurationError("malformed AMQP URL (bad host or port)") from None
        if publish_timeout <= 0 or connect_timeout <= 0 or reconnect_interval <= 0:
            raise ConfigurationError("timeouts and the reconnect interval must be > 0 seconds")
        if confirm_window < 1:
            raise ConfigurationError("confirm_window must be >= 1")
        self._url = url
        self.exchange = exchange
        self.publish_timeout = publish_timeout
        self.confirm_window = confirm_window
        self.connect_timeout = connect_timeout
        self.reconnect_interval = reconnect_interval
        self.shutdown_timeout = shutdown_timeout
        self.name = name
        self.hooks = hooks
        self._publisher: AbstractRobustConnection | None = None
        self._publish_channel: AbstractRobustChannel | None = None
        self._exchange: AbstractRobustExchange | None = None
        self._consumer_connection: AbstractRobustConnection | None = None
        self._consumers: dict[Subscription, _Consumer] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    @classmethod
    def from_env(cls, **kwargs: Any) -> AmqpEventBus:
        """Build from ``AMQP_URL`` (other settings as keyword arguments).

        Raises:
            ConfigurationError: ``AMQP_URL`` is not set.
        """
        url = os.environ.get("AMQP_URL")
        if not url:
            raise ConfigurationError("AMQP_URL is not set (amqp://user:password@host:5672/vhost)")
        return cls(url, **kwargs)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "connected" if self._publisher else "new"
        return f"<AmqpEventBus {redact_url(self._url)} exchange={self.exchange!r} {state}>"

    # -------------------------------------------------------------- lifecycle
    async def _open_connection(self, role: str) -> AbstractRobustConnection:
        try:
            return await aio_pika.connect_robust(
                self._url,
                timeout=self.connect_timeout,
                reconnect_interval=self.reconnect_interval,
                client_properties={"connection_name": f"{self.name} {role}"},
            )
        except (*aio_pika.exceptions.CONNECTION_EXCEPTIONS, TimeoutError) as exc:
            raise NotConnectedError(
                f"cannot connect to the broker at {redact_url(self._url)} ({type(exc).__name__})"
            ) from exc

    async def connect(self) -> None:
        """Open the publishing connection and declare the exchange (idempotent).

        The consuming connection opens with the first ``subscribe()``.

        Raises:
            NotConnectedError: the broker cannot be reached within
                ``connect_timeout``, or the bus was closed.
            ConfigurationError: the exchange exists with another type.
        """
        async with self._lock:
            if self._closed:
                raise NotConnectedError("the event bus is closed; create a new one")
            if self._publisher is not None:
                return
            connection = await self._open_connection("publisher")
            try:
                # on_return_raises: an unroutable mandatory publish fails its
                # confirm future with aiormq's PublishError (pinned in tests).
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                if self.exchange:
                    self._exchange = await channel.declare_exchange(
                        self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
                    )
            except aiormq.exceptions.ChannelPreconditionFailed as exc:
                await connection.close()
                raise ConfigurationError(
                    f"exchange {self.exchange!r} exists with other settings (not a durable topic exchange)"
                ) from exc
            except BaseException:
                await connection.close()
                raise
            self._publisher = connection
            self._publish_channel = channel

    async def close(self) -> None:
        """Stop consuming, let running handlers finish (``shutdown_timeout``), disconnect.

        Idempotent. Messages whose handlers did not finish are redelivered later.
        """
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(sub.cancel() for sub in list(self._consumers)))
        for connection in (self._consumer_connection, self._publisher):
            if connection is not None:
                with contextlib.suppress(*_TRANSIENT_ERRORS):
                    await connection.close()
        self._consumer_connection = None
        self._publisher = None
        self._publish_channel = None
        self._exchange = None

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def ping(self) -> bool:
        """True when the publishing connection is up right now (no round trip)."""
        connection, channel = self._publisher, self._publish_channel
        return (
            connection is not None
            and channel is not None
            and not connection.is_closed
            and connection.connected.is_set()
            and not channel.is_closed
        )

    # -------------------------------------------------------------- publishing
    def _properties(self, event: Event) -> Basic.Properties:
        return Basic.Properties(
            content_type=CONTENT_TYPE,
            delivery_mode=_PERSISTENT,
            message_id=event.id,
            correlation_id=event.correlation_id,
            timestamp=event.occurred_at,
            message_type=event.type,
            app_id=self.name,
        )

    def _require_publish_channel(self) -> AbstractRobustChannel:
        channel = self._publish_channel
        if channel is None or self._closed:
            state = "closed" if self._closed else "not connected (call connect() first)"
            raise NotConnectedError(f"the event bus is {state}")
        return channel

    async def _send(
        self,
        channel: AbstractRobustChannel,
        routing_key: str,
        body: bytes,
        properties: Basic.Properties,
        event_ids: tuple[str, ...],
    ) -> None:
        """Publish with confirm and ``mandatory``; ride out reconnections until the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout
        attempt = 0
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise PublishTimeoutError(
                    f"event {routing_key!r} not confirmed within {self.publish_timeout:g} s "
                    "(broker unreachable or overloaded)",
                    event_ids=event_ids,
                )
            try:
                if self._closed:
                    raise NotConnectedError("the event bus is closed")
                connection = self._publisher
                if connection is None:
                    raise NotConnectedError("the event bus is closed")
                if channel.is_closed or not connection.connected.is_set():
                    # Reconnecting: wait for the robust channel, within the timeout.
                    async with asyncio.timeout(remaining):
                        await channel.ready()
                        underlay = await channel.get_underlay_channel()
                else:  # the hot path: no timer to arm
                    underlay = await channel.get_underlay_channel()
                await underlay.basic_publish(
                    body,
                    exchange=self.exchange,
                    routing_key=routing_key,
                    properties=properties,
                    mandatory=True,
                    timeout=remaining,
                )
                return
            except TimeoutError:
                continue  # the loop head raises PublishTimeoutError
            except aiormq.exceptions.PublishError as exc:  # a Basic.Return
                raise UnroutableEventError(
                    f"no queue is bound for routing key {routing_key!r}", event_ids=event_ids
                ) from exc
            except aiormq.exceptions.DeliveryError as exc:  # a Basic.Nack
                raise PublishNackedError(
                    f"the broker refused event {routing_key!r}", event_ids=event_ids
                ) from exc
            except asyncio.CancelledError:
                # aiormq cancels pending confirms when the channel closes under
                # them; only a cancellation aimed at us is passed on.
                if _current_task_cancelled():
                    raise
                exc_name = "CancelledError"
            except _TRANSIENT_ERRORS as exc:
                exc_name = type(exc).__name__
            # The connection or channel went away with the message in flight:
            # it may or may not be stored, so send it again once the robust
            # channel is back (same message id: consumers deduplicate).
            attempt += 1
            logger.debug("publish of %r interrupted (%s); retrying", routing_key, exc_name)
            await asyncio.sleep(min(0.05 * attempt, 0.5, max(deadline - loop.time(), 0)))

    async def publish_event(self, event_type: str, data: Mapping[str, Any], **meta: Any) -> Event:
        """Build an :class:`Event` (``meta``: its optional fields), publish it, return it."""
        event = Event.create(event_type, data, **meta)
        await self.publish(event)
        return event

    async def publish(self, event: Event) -> None:
        """Publish ``event`` persistently; returns once the broker confirmed it.

        Raises:
            NotConnectedError: before ``connect()`` or after ``close()``.
            UnroutableEventError: no queue is bound for ``event.type`` (``mandatory``).
            PublishNackedError: the broker refused it.
            PublishTimeoutError: not confirmed within ``publish_timeout`` (this
                includes waiting for a lost connection to come back).
            InvalidEventError: ``event.data`` is not JSON-serializable.
        """
        channel = self._require_publish_channel()
        body = encode_event(event)
        await self._send(channel, event.type, body, self._properties(event), (event.id,))
        call_hook("on_published", self.hooks, event)

    async def publish_many(self, events: Iterable[Event]) -> None:
        """Publish in order, keeping up to ``confirm_window`` confirms in flight.

        Every event is serialized first, so invalid data fails before anything
        is sent. At the first failure no further event is sent; once those in
        flight settle, the first error is raised with ``event_ids`` naming every
        event not confirmed.
        """
        channel = self._require_publish_channel()
        batch = [(event, encode_event(event)) for event in events]
        window = asyncio.Semaphore(self.confirm_window)
        hooks = self.hooks
        failures: list[tuple[int, PublishError]] = []
        loop = asyncio.get_running_loop()

        async def send_one(index: int, event: Event, body: bytes) -> None:
            try:
                await self._send(channel, event.type, body, self._properties(event), (event.id,))
            except PublishError as exc:
                failures.append((index, exc))
            else:
                call_hook("on_published", hooks, event)
            finally:
                window.release()

        tasks: list[asyncio.Task[None]] = []
        try:
            for index, (event, body) in enumerate(batch):
                await window.acquire()
                if failures:
                    window.release()
                    break
                tasks.append(loop.create_task(send_one(index, event, body)))
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        if failures:
            failures.sort(key=lambda item: item[0])
            failed = {index for index, _ in failures}
            unconfirmed = tuple(
                event.id
                for index, (event, _) in enumerate(batch)
                if index in failed or index >= len(tasks)
            )
            first = failures[0][1]
            raise type(first)(str(first), event_ids=unconfirmed) from first

    # -------------------------------------------------------------- consuming
    async def _consumer_conn(self) -> AbstractRobustConnection:
        async with self._lock:
            if self._closed:
                raise NotConnectedError("the event bus is closed")
            if self._publisher is None:
                raise NotConnectedError("the event bus is not connected (call connect() first)")
            if self._consumer_connection is None:
                self._consumer_connection = await self._open_connection("consumer")
            return self._consumer_connection

    async def subscribe(
        self,
        pattern: str,
        handler: EventHandler,
        *,
        group: str,
        prefetch: int = 100,
        max_retries: int = 3,
        retry_delay: float | Sequence[float] = 1.0,
    ) -> Subscription:
        """Declare the group's queues, bind ``pattern`` and start consuming.

        Declares (durable, idempotent): the work queue
        ``"{exchange}.{group}.{pattern}"`` bound to the exchange with
        ``pattern``, its ``.dead`` queue, and one ``.retry.{ms}ms`` queue per
        distinct retry delay. Several processes subscribing with the same group
        and pattern share the work; another group gets its own copy of every event.

        Args:
            pattern: AMQP topic pattern (``*`` one word, ``#`` zero or more).
            handler: ``async def handler(event)``; raising means "retry me".
            group: The consuming service's name.
            prefetch: Unacknowledged messages (so running handlers) at most.
            max_retries: Retries after the first attempt before dead-lettering.
            retry_delay: Seconds before a retry, or one per retry (the last repeats).

        Raises:
            NotConnectedError: before ``connect()`` or after ``close()``.
            ConfigurationError: bad arguments, or the queues exist with other settings.
        """
        if prefetch < 1:
            raise ConfigurationError("prefetch must be >= 1")
        retry = RetryPolicy.build(max_retries, retry_delay)
        queue_name = work_queue_name(self.exchange, group, pattern)
        connection = await self._consumer_conn()
        subscription = Subscription(
            pattern=pattern,
            group=group,
            queue=queue_name,
            handler=handler,
            prefetch=prefetch,
            retry=retry,
            cancel=self._cancel,
        )
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        try:
            await channel.set_qos(prefetch_count=prefetch)
            exchange = None
            if self.exchange:
                exchange = await channel.declare_exchange(
                    self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
                )
            dead = await channel.declare_queue(subscription.dead_letter_queue, durable=True)
            queue = await channel.declare_queue(
                queue_name,
                durable=True,
                arguments={
                    # A message we cannot republish (_republish_then_ack) still ends up
                    # in the dead letters, never dropped.
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": subscription.dead_letter_queue,
                },
            )
            retry_queue_for: dict[float, str] = {}
            side_queues = [dead]
            for delay in sorted(set(retry.delays)):
                name = _retry_queue_name(queue_name, delay)
                retry_queue_for[delay] = name
                side_queues.append(
                    await channel.declare_queue(
                        name,
                        durable=True,
                        arguments={
                            "x-message-ttl": round(delay * 1000),
                            "x-dead-letter-exchange": "",
                            "x-dead-letter-routing-key": queue_name,
                        },
                    )
                )
            if exchange is not None:
                await queue.bind(exchange, routing_key=pattern)
            consumer = _Consumer(
                subscription=subscription,
                channel=channel,
                exchange=exchange,
                queue=queue,
                side_queues=tuple(side_queues),
                retry_queue_for=retry_queue_for,
            )
            consumer.on_message = self._on_message_for(consumer)
            consumer.restart = self._restart_for(consumer)
            await self._start_consuming(consumer)
            # After a reconnection the robust channel re-declares the queues
            # and bindings, then calls its reopen callbacks: consume again.
            channel.reopen_callbacks.add(consumer.restart)
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            with contextlib.suppress(*_TRANSIENT_ERRORS):
                await channel.close()
            raise ConfigurationError(
                f"queue {queue_name!r} (or its retry/dead queues) exists with other "
                "settings; delete it or use another group"
            ) from exc
        except BaseException:
            with contextlib.suppress(*_TRANSIENT_ERRORS):
                await channel.close()
            raise
        self._consumers[subscription] = consumer
        return subscription

    async def _cancel(self, subscription: Subscription, grace: float | None) -> None:
        consumer = self._consumers.pop(subscription, None)
        if consumer is None:
            return
        if consumer.restart is not None:
            consumer.channel.reopen_callbacks.discard(consumer.restart)  # never restart it
        try:
            # Stop deliveries first, then let the running handlers finish. A
            # closed channel has no consumer left to cancel.
            if not consumer.channel.is_closed:
                underlay = cast(
                    aiormq.Channel,
                    await asyncio.wait_for(consumer.channel.get_underlay_channel(), 5),
                )
                if consumer.consumer_tag in underlay.consumers:
                    await underlay.basic_cancel(consumer.consumer_tag, timeout=5)
        except _TRANSIENT_ERRORS as exc:  # includes TimeoutError (an OSError)
            logger.debug("cancelling consumer on %s: %s", subscription.queue, type(exc).__name__)
        await subscription.drain(self.shutdown_timeout if grace is None else grace)
        # Unacked messages (handlers cut short) go back to the queue.
        with contextlib.suppress(*_TRANSIENT_ERRORS):
            await consumer.channel.close()

    async def _start_consuming(self, consumer: _Consumer) -> None:
        underlay = cast(aiormq.Channel, await consumer.channel.get_underlay_channel())
        if consumer.consumer_tag and consumer.consumer_tag in underlay.consumers:
            return  # already consuming on this channel
        assert consumer.on_message is not None  # noqa: S101 - set by subscribe()
        ok = await underlay.basic_consume(
            consumer.queue.name,
            consumer.on_message,
            no_ack=False,
            consumer_tag=consumer.consumer_tag or None,
            timeout=self.publish_timeout,
        )
        consumer.consumer_tag = ok.consumer_tag or consumer.consumer_tag

    def _restart_for(self, consumer: _Consumer) -> Callable[[Any], Awaitable[None]]:
        async def restart(_channel: Any) -> None:
            # aio-pika gathers reopen callbacks with return_exceptions=True, so
            # a failure here would vanish: retry while the channel stays open
            # (if it closes, the next reopen calls us again).
            for attempt in range(1, 11):
                if self._closed or not consumer.subscription.active or consumer.channel.is_closed:
                    return
                try:
                    await self._start_consuming(consumer)
                except _TRANSIENT_ERRORS as exc:
                    logger.warning(
                        "could not resume consuming %s (%s), attempt %d",
                        consumer.subscription.queue,
                        type(exc).__name__,
                        attempt,
                    )
                    await asyncio.sleep(min(0.2 * attempt, 2.0))
                else:
                    logger.info("resumed consuming %s", consumer.subscription.queue)
                    return
            logger.error("gave up resuming consumer on %s", consumer.subscription.queue)

        return restart

    def _on_message_for(
        self, consumer: _Consumer
    ) -> Callable[[DeliveredMessage], Coroutine[Any, Any, None]]:
        subscription = consumer.subscription
        handler = subscription.handler

        async def on_message(message: DeliveredMessage) -> None:
            # aiormq runs each delivery in its own task already (aio-pika's
            # queue.consume would add a second task and an IncomingMessage
            # copy per message; going direct is the hot-path saving).
            task = asyncio.current_task()
            if task is not None:
                subscription.track(task)
            try:
                try:
                    event = decode_event(message.body)
                except InvalidEventError as exc:
                    logger.error(
                        "message on %s is not a valid event envelope; dead-lettered: %s",
                        subscription.queue,
                        exc,
                    )
                    await self._dead_letter(consumer, message, REASON_INVALID_ENVELOPE, exc, 0)
                    return
                started = time.perf_counter()
                try:
                    await handler(event)
                except Exception as exc:  # noqa: BLE001 - any handler failure is retried, then dead-lettered
                    await self._retry_or_dead_letter(consumer, message, event, exc)
                    return
                await _ack(message)
                subscription.handled += 1
                if self.hooks is not None:
                    call_hook(
                        "on_handled",
                        self.hooks,
                        event,
                        subscription.queue,
                        time.perf_counter() - started,
                    )
            except _TRANSIENT_ERRORS as exc:
                # The channel went away under us: the broker redelivers the
                # unacked message once the consumer is restored.
                logger.info(
                    "lost the channel while handling a message on %s (%s); it will be redelivered",
                    subscription.queue,
                    type(exc).__name__,
                )

        return on_message

    def _failure_properties(
        self,
        message: DeliveredMessage,
        headers: dict[str, Any],
    ) -> Basic.Properties:
        original = message.header.properties
        return Basic.Properties(
            content_type=original.content_type,
            delivery_mode=_PERSISTENT,
            message_id=original.message_id,
            correlation_id=original.correlation_id,
            timestamp=original.timestamp,
            message_type=original.message_type,
            app_id=original.app_id,
            headers=headers,
        )

    async def _republish_then_ack(
        self,
        consumer: _Consumer,
        message: DeliveredMessage,
        routing_key: str,
        headers: dict[str, Any],
    ) -> Literal["moved", "rejected", "requeued"]:
        """Copy the message to ``routing_key`` (a queue) with confirm, then ack the original.

        Both go through the channel the message arrived on: if that channel
        is gone, both fail at once and the broker redelivers the original,
        instead of a copy being made on the new channel *and* the original
        coming back. ``"rejected"`` when the broker refused the copy (returned
        or nacked): the original is then rejected into the dead letters by the
        work queue's dead-letter exchange. ``"requeued"`` on a publish timeout:
        the original goes back to the queue to be tried again.
        """
        channel = message.channel
        try:
            await channel.basic_publish(
                message.body,
                exchange="",
                routing_key=routing_key,
                properties=self._failure_properties(message, headers),
                mandatory=True,
                timeout=self.publish_timeout,
            )
        except aiormq.exceptions.DeliveryError as exc:
            logger.error(
                "could not move a message from %s to %s (%s); rejecting it to the dead letters",
                consumer.subscription.queue,
                routing_key,
                type(exc).__name__,
            )
            await channel.basic_reject(_delivery_tag(message), requeue=False)
            return "rejected"
        except TimeoutError:
            logger.warning(
                "moving a message from %s to %s timed out; requeueing it",
                consumer.subscription.queue,
                routing_key,
            )
            await channel.basic_nack(_delivery_tag(message), requeue=True)
            return "requeued"
        await _ack(message)
        return "moved"

    def _base_headers(
        self, consumer: _Consumer, message: DeliveredMessage, attempts: int, exc: Exception
    ) -> dict[str, Any]:
        headers = dict(message.header.properties.headers or {})
        headers[ATTEMPTS_HEADER] = attempts
        headers[ERROR_HEADER] = describe_error(exc)
        headers[FAILED_AT_HEADER] = datetime.now(UTC).isoformat()
        headers[QUEUE_HEADER] = consumer.subscription.queue
        headers.setdefault(ROUTING_KEY_HEADER, message.routing_key or "")
        return headers

    async def _retry_or_dead_letter(
        self,
        consumer: _Consumer,
        message: DeliveredMessage,
        event: Event,
        exc: Exception,
    ) -> None:
        subscription = consumer.subscription
        attempts = _header_int(message.header.properties.headers or {}, ATTEMPTS_HEADER) + 1
        retry = subscription.retry
        if isinstance(exc, PoisonEventError):
            logger.error(
                "handler for %s on %s refused event %s as poison; dead-lettering it without retries: %s",
                event.type,
                subscription.queue,
                event.id,
                describe_error(exc),
            )
            await self._dead_letter(consumer, message, REASON_POISON, exc, attempts)
            return
        if attempts > retry.max_retries:
            logger.error(
                "handler for %s on %s failed %d time(s); dead-lettering event %s: %s",
                event.type,
                subscription.queue,
                attempts,
                event.id,
                describe_error(exc),
            )
            await self._dead_letter(consumer, message, REASON_HANDLER_FAILED, exc, attempts)
            return
        delay = retry.delay_for(attempts)
        logger.warning(
            "handler for %s on %s failed (attempt %d of %d), retrying in %.3g s: %s",
            event.type,
            subscription.queue,
            attempts,
            retry.max_retries + 1,
            delay,
            describe_error(exc),
        )
        headers = self._base_headers(consumer, message, attempts, exc)
        outcome = await self._republish_then_ack(
            consumer, message, consumer.retry_queue_for[delay], headers
        )
        if outcome == "moved":
            subscription.retried += 1
            call_hook(
                "on_retry", self.hooks, event, subscription.queue, attempts, describe_error(exc)
            )
        elif outcome == "rejected":
            subscription.dead_lettered += 1
            call_hook(
                "on_dead_letter",
                self.hooks,
                event,
                subscription.queue,
                REASON_REJECTED,
                describe_error(exc),
            )

    async def _dead_letter(
        self,
        consumer: _Consumer,
        message: DeliveredMessage,
        reason: str,
        exc: Exception,
        attempts: int,
    ) -> None:
        headers = self._base_headers(consumer, message, attempts, exc)
        headers[REASON_HEADER] = reason
        outcome = await self._republish_then_ack(
            consumer, message, consumer.subscription.dead_letter_queue, headers
        )
        if outcome != "requeued":
            consumer.subscription.dead_lettered += 1
            try:
                event: Event | None = decode_event(message.body)
            except InvalidEventError:
                event = None
            call_hook(
                "on_dead_letter",
                self.hooks,
                event,
                consumer.subscription.queue,
                reason if outcome == "moved" else REASON_REJECTED,
                describe_error(exc),
            )

    # -------------------------------------------------------------- dead letters
    async def dead_letters(self, pattern: str, *, group: str, limit: int = 100) -> list[DeadLetter]:
        """Look at up to ``limit`` dead letters of the group's queue, oldest first.

        Messages are read without acknowledgement and released when the
        temporary channel closes, so they stay in the ``.dead`` queue.
        """
        connection = self._publisher
        if connection is None or self._closed:
            raise NotConnectedError("the event bus is not connected")
        queue_name = work_queue_name(self.exchange, group, pattern) + ".dead"
        letters: list[DeadLetter] = []
        channel = await connection.channel(publisher_confirms=False)
        try:
            try:
                queue = await channel.declare_queue(queue_name, passive=True, robust=False)
            except aiormq.exceptions.ChannelNotFoundEntity:
                return []
            while len(letters) < limit:
                message = await queue.get(no_ack=False, fail=False, timeout=self.publish_timeout)
                if message is None:
                    break
                letters.append(self._to_dead_letter(message, queue_name))
        finally:
            with contextlib.suppress(*_TRANSIENT_ERRORS):
                await channel.close()  # unacked: back in the queue
        return letters

    async def replay_dead_letters(self, pattern: str, *, group: str, limit: int = 100) -> int:
        """Move up to ``limit`` dead letters back to the group's queue, attempts reset.

        For after a fix is deployed. Each message is republished to the work
        queue with confirm, then removed from ``.dead`` (a crash in between
        duplicates it, never loses it). Returns how many were moved.
        """
        connection = self._publisher
        if connection is None or self._closed:
            raise NotConnectedError("the event bus is not connected")
        work_queue = work_queue_name(self.exchange, group, pattern)
        moved = 0
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        try:
            try:
                queue = await channel.declare_queue(
                    work_queue + ".dead", passive=True, robust=False
                )
            except aiormq.exceptions.ChannelNotFoundEntity:
                return 0
            while moved < limit:
                message = await queue.get(no_ack=False, fail=False, timeout=self.publish_timeout)
                if message is None:
                    break
                headers = {
                    key: value
                    for key, value in (message.headers or {}).items()
                    if not key.startswith("x-bk-") and key != "x-death"
                }
                await channel.default_exchange.publish(
                    aio_pika.Message(
                        message.body,
                        headers=headers,
                        content_type=message.content_type,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        message_id=message.message_id,
                        correlation_id=message.correlation_id,
                        timestamp=message.timestamp,
                        type=message.type,
                        app_id=message.app_id,
                    ),
                    routing_key=work_queue,
                    timeout=self.publish_timeout,
                )
                await message.ack()
                moved += 1
        finally:
            with contextlib.suppress(*_TRANSIENT_ERRORS):
                await channel.close()
        if moved:
            logger.info("replayed %d dead letter(s) into %s", moved, work_queue)
        return moved

    @staticmethod
    def _to_dead_letter(message: AbstractIncomingMessage, queue: str) -> DeadLetter:
        headers = message.headers or {}
        try:
            event: Event | None = decode_event(message.body)
        except InvalidEventError:
            event = None
        failed_at_text = _header_str(headers, FAILED_AT_HEADER)
        failed_at = None
        if failed_at_text:
            with contextlib.suppress(ValueError):
                failed_at = datetime.fromisoformat(failed_at_text)
        routing_key = _header_str(headers, ROUTING_KEY_HEADER)
        if routing_key is None:
            # Dead-lettered by the broker (a rejection): RabbitMQ records the
            # original routing keys in the x-death header.
            routing_key = _x_death_routing_key(headers) or message.routing_key or ""
        return DeadLetter(
            event=event,
            body=message.body,
            reason=_header_str(headers, REASON_HEADER) or REASON_REJECTED,
            error=_header_str(headers, ERROR_HEADER),
            attempts=_header_int(headers, ATTEMPTS_HEADER),
            queue=_header_str(headers, QUEUE_HEADER) or queue.removesuffix(".dead"),
            routing_key=routing_key,
            failed_at=failed_at,
        )
