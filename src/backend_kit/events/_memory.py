"""``InMemoryEventBus``: the same routing, groups, retries and dead letters, in one process.

Meant for tests and single-process apps. Messages go through the same JSON
envelope as on the wire (so non-serializable data fails here too) and are
routed with AMQP topic semantics. Nothing survives the process: use
:class:`~backend_kit.events.amqp.AmqpEventBus` for durability.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from backend_kit.errors import (
    ConfigurationError,
    InvalidEventError,
    NotConnectedError,
    PoisonEventError,
    PublishError,
    UnroutableEventError,
)
from backend_kit.events._event import Event
from backend_kit.events._hooks import EventHooks, call_hook
from backend_kit.events._serialization import decode_event, encode_event
from backend_kit.events._subscription import (
    REASON_HANDLER_FAILED,
    REASON_INVALID_ENVELOPE,
    REASON_POISON,
    DeadLetter,
    EventHandler,
    RetryPolicy,
    Subscription,
    describe_error,
    work_queue_name,
)
from backend_kit.events._topic import topic_matches

__all__ = ["InMemoryEventBus"]

logger = logging.getLogger("backend_kit.events")


@dataclass(frozen=True, slots=True)
class _Message:
    body: bytes
    routing_key: str
    attempts: int = 0  # handler attempts that failed so far


@dataclass(slots=True, eq=False)
class _Consumer:
    subscription: Subscription
    credit: int  # how many more messages it may hold (prefetch minus in flight)


@dataclass(slots=True, eq=False)
class _Queue:
    name: str
    pattern: str
    messages: deque[_Message] = field(default_factory=deque)
    consumers: list[_Consumer] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    next_consumer: int = 0  # round-robin position, as RabbitMQ dispatches


class InMemoryEventBus:
    """An :class:`~backend_kit.events.EventBus` in memory, following the AMQP bus's rules.

    - a group's queue is created by its first ``subscribe`` and stays (like a
      durable queue): events published while nobody consumes it wait there;
    - publishing an event no queue is bound for raises ``UnroutableEventError``;
    - subscribers of one group take turns (round robin, ``prefetch`` at most each);
    - a failing handler is retried after the delay, then dead-lettered;
      an invalid envelope is dead-lettered at once.

    Args:
        exchange: Name used in queue names (``"{exchange}.{group}.{pattern}"``),
            as on AMQP.
        shutdown_timeout: Seconds ``close()``/``cancel()`` wait for running handlers.
        hooks: :class:`EventHooks` to call as events flow (metrics, tracing).
    """

    def __init__(
        self,
        *,
        exchange: str = "events",
        shutdown_timeout: float = 10.0,
        hooks: EventHooks | None = None,
    ) -> None:
        if not exchange:
            raise ConfigurationError("InMemoryEventBus needs an exchange name (topic routing)")
        self.exchange = exchange
        self.shutdown_timeout = shutdown_timeout
        self.hooks = hooks
        self._queues: dict[str, _Queue] = {}
        self._subscriptions: list[Subscription] = []
        self._retry_timers: set[asyncio.TimerHandle] = set()
        self._connected = False
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "connected" if self._connected else "new"
        return f"<InMemoryEventBus exchange={self.exchange!r} {state}>"

    # -------------------------------------------------------------- lifecycle
    async def connect(self) -> None:
        """Mark the bus usable (idempotent). Raises ``NotConnectedError`` after ``close()``."""
        if self._closed:
            raise NotConnectedError("the event bus is closed; create a new one")
        self._connected = True

    async def close(self) -> None:
        """Cancel every subscription (handlers get ``shutdown_timeout`` s) and pending retries."""
        if self._closed:
            return
        self._closed = True
        self._connected = False
        for timer in self._retry_timers:
            timer.cancel()
        self._retry_timers.clear()
        await asyncio.gather(*(sub.cancel() for sub in list(self._subscriptions)))

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
        """True between ``connect()`` and ``close()``."""
        return self._connected

    def _ensure_connected(self) -> None:
        if not self._connected:
            state = "closed" if self._closed else "not connected (call connect() first)"
            raise NotConnectedError(f"the event bus is {state}")

    # -------------------------------------------------------------- publishing
    async def publish_event(self, event_type: str, data: Mapping[str, Any], **meta: Any) -> Event:
        """Build an :class:`Event` (``meta``: its optional fields), publish it, return it."""
        event = Event.create(event_type, data, **meta)
        await self.publish(event)
        return event

    async def publish(self, event: Event) -> None:
        """Route ``event`` to every bound queue (see :meth:`EventBus.publish` for errors)."""
        self._ensure_connected()
        self._route(event.type, encode_event(event), event_ids=(event.id,))
        call_hook("on_published", self.hooks, event)

    async def publish_many(self, events: Iterable[Event]) -> None:
        """Publish in order; at the first failure raise it with every unsent id."""
        self._ensure_connected()
        pending = list(events)
        bodies = [encode_event(event) for event in pending]  # all valid before any is sent
        for index, (event, body) in enumerate(zip(pending, bodies, strict=True)):
            try:
                self._route(event.type, body, event_ids=(event.id,))
            except PublishError as exc:
                exc.event_ids = tuple(e.id for e in pending[index:])
                raise
            call_hook("on_published", self.hooks, event)

    async def publish_raw(self, routing_key: str, body: bytes) -> None:
        """Route a raw body as if another producer sent it (to test poison messages)."""
        self._ensure_connected()
        self._route(routing_key, body, event_ids=())

    def _route(self, routing_key: str, body: bytes, *, event_ids: tuple[str, ...]) -> None:
        targets = [q for q in self._queues.values() if topic_matches(q.pattern, routing_key)]
        if not targets:
            raise UnroutableEventError(
                f"no queue is bound for routing key {routing_key!r}", event_ids=event_ids
            )
        message = _Message(body=body, routing_key=routing_key)
        for queue in targets:
            queue.messages.append(message)
            self._dispatch(queue)

    # -------------------------------------------------------------- consuming
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
        """Consume the group's queue for ``pattern`` (see :meth:`EventBus.subscribe`)."""
        self._ensure_connected()
        if prefetch < 1:
            raise ConfigurationError("prefetch must be >= 1")
        retry = RetryPolicy.build(max_retries, retry_delay)
        name = work_queue_name(self.exchange, group, pattern)
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = _Queue(name=name, pattern=pattern)
        subscription = Subscription(
            pattern=pattern,
            group=group,
            queue=name,
            handler=handler,
            prefetch=prefetch,
            retry=retry,
            cancel=self._cancel,
        )
        queue.consumers.append(_Consumer(subscription, credit=prefetch))
        self._subscriptions.append(subscription)
        self._dispatch(queue)
        return subscription

    async def _cancel(self, subscription: Subscription, grace: float | None) -> None:
        queue = self._queues.get(subscription.queue)
        if queue is not None:
            queue.consumers = [c for c in queue.consumers if c.subscription is not subscription]
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
        await subscription.drain(self.shutdown_timeout if grace is None else grace)

    def _dispatch(self, queue: _Queue) -> None:
        """Hand queued messages to consumers with credit, taking turns."""
        consumers = queue.consumers
        while queue.messages and consumers:
            count = len(consumers)
            for step in range(count):
                consumer = consumers[(queue.next_consumer + step) % count]
                if consumer.credit > 0:
                    queue.next_consumer = (queue.next_consumer + step + 1) % count
                    break
            else:
                return  # everyone is busy: dispatched again when a handler finishes
            consumer.credit -= 1
            message = queue.messages.popleft()
            task = asyncio.get_running_loop().create_task(self._handle(queue, consumer, message))
            consumer.subscription.track(task)

    async def _handle(self, queue: _Queue, consumer: _Consumer, message: _Message) -> None:
        subscription = consumer.subscription
        try:
            try:
                event = decode_event(message.body)
            except InvalidEventError as exc:
                self._dead_letter(queue, subscription, message, None, REASON_INVALID_ENVELOPE, exc)
                return
            started = time.perf_counter()
            try:
                await subscription.handler(event)
            except Exception as exc:  # noqa: BLE001 - any handler failure is retried, then dead-lettered
                self._retry_or_dead_letter(queue, subscription, message, event, exc)
                return
            subscription.handled += 1
            call_hook("on_handled", self.hooks, event, queue.name, time.perf_counter() - started)
        except asyncio.CancelledError:
            # Shutdown cut the handler short: like an unacked AMQP message, it
            # goes back to the queue for the group's next subscriber.
            queue.messages.appendleft(message)
            raise
        finally:
            consumer.credit += 1
            if consumer in queue.consumers:
                self._dispatch(queue)

    def _retry_or_dead_letter(
        self,
        queue: _Queue,
        subscription: Subscription,
        message: _Message,
        event: Event,
        exc: Exception,
    ) -> None:
        failed = replace(message, attempts=message.attempts + 1)
        if isinstance(exc, PoisonEventError):
            logger.error(
                "handler for %s on %s refused event %s as poison; dead-lettering it without retries: %s",
                event.type,
                queue.name,
                event.id,
                describe_error(exc),
            )
            self._dead_letter(queue, subscription, failed, event, REASON_POISON, exc)
            return
        if failed.attempts > subscription.retry.max_retries:
            logger.error(
                "handler for %s on %s failed %d time(s); dead-lettering event %s: %s",
                event.type,
                queue.name,
                failed.attempts,
                event.id,
                describe_error(exc),
            )
            self._dead_letter(queue, subscription, failed, event, REASON_HANDLER_FAILED, exc)
            return
        delay = subscription.retry.delay_for(failed.attempts)
        logger.warning(
            "handler for %s on %s failed (attempt %d of %d), retrying in %.3g s: %s",
            event.type,
            queue.name,
            failed.attempts,
            subscription.retry.max_retries + 1,
            delay,
            describe_error(exc),
        )
        subscription.retried += 1
        call_hook("on_retry", self.hooks, event, queue.name, failed.attempts, describe_error(exc))
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle | None = None

        def requeue() -> None:
            if timer is not None:
                self._retry_timers.discard(timer)
            queue.messages.append(failed)
            self._dispatch(queue)

        timer = loop.call_later(delay, requeue)
        self._retry_timers.add(timer)

    def _dead_letter(
        self,
        queue: _Queue,
        subscription: Subscription,
        message: _Message,
        event: Event | None,
        reason: str,
        exc: Exception,
    ) -> None:
        if event is None:
            logger.error(
                "message on %s is not a valid event envelope; dead-lettered: %s",
                queue.name,
                exc,
            )
        subscription.dead_lettered += 1
        call_hook("on_dead_letter", self.hooks, event, queue.name, reason, describe_error(exc))
        queue.dead.append(
            DeadLetter(
                event=event,
                body=message.body,
                reason=reason,
                error=describe_error(exc),
                attempts=message.attempts,
                queue=queue.name,
                routing_key=message.routing_key,
                failed_at=datetime.now(UTC),
            )
        )

    async def dead_letters(self, pattern: str, *, group: str, limit: int = 100) -> list[DeadLetter]:
        """The group's dead letters for ``pattern``, oldest first (up to ``limit``)."""
        queue = self._queues.get(work_queue_name(self.exchange, group, pattern))
        return [] if queue is None else list(queue.dead[:limit])

    async def replay_dead_letters(self, pattern: str, *, group: str, limit: int = 100) -> int:
        """Move up to ``limit`` dead letters back to the group's queue, attempts reset."""
        self._ensure_connected()
        queue = self._queues.get(work_queue_name(self.exchange, group, pattern))
        if queue is None:
            return 0
        letters, queue.dead = queue.dead[:limit], queue.dead[limit:]
        for letter in letters:
            queue.messages.append(_Message(body=letter.body, routing_key=letter.routing_key))
        self._dispatch(queue)
        if letters:
            logger.info("replayed %d dead letter(s) into %s", len(letters), queue.name)
        return len(letters)

    async def wait_idle(self, max_wait: float = 5.0) -> None:
        """Wait until no message is queued, running or waiting for a retry (for tests).

        Messages in queues nobody consumes do not count. Raises ``TimeoutError``.
        """
        async with asyncio.timeout(max_wait):
            # Idleness spans queues, handler tasks and retry timers; polling
            # each millisecond is simpler than an Event kept right by all three.
            while self._busy():  # noqa: ASYNC110
                await asyncio.sleep(0.001)

    def _busy(self) -> bool:
        if self._retry_timers:
            return True
        for queue in self._queues.values():
            if queue.consumers and queue.messages:
                return True
            if any(c.subscription.in_flight for c in queue.consumers):
                return True
        return False
