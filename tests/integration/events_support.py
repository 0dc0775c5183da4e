"""Helpers for the RabbitMQ event tests: a bus that remembers what it declared, and cleanup."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import aio_pika
import aiormq

from backend_kit.events import EventHandler, Subscription
from backend_kit.events.amqp import AmqpEventBus, _retry_queue_name


class TrackingAmqpEventBus(AmqpEventBus):
    """An AmqpEventBus that records its subscriptions, so a test can delete their queues."""

    def __init__(self, url: str, *, declared: list[Subscription], **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self._declared = declared

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
        subscription = await super().subscribe(
            pattern,
            handler,
            group=group,
            prefetch=prefetch,
            max_retries=max_retries,
            retry_delay=retry_delay,
        )
        self._declared.append(subscription)
        return subscription


def queues_of(subscription: Subscription) -> list[str]:
    """Every queue a subscription declared: work, dead letters, one per retry delay."""
    retry = [_retry_queue_name(subscription.queue, d) for d in set(subscription.retry.delays)]
    return [subscription.queue, subscription.dead_letter_queue, *retry]


async def delete_topology(url: str, exchange: str, queues: Sequence[str]) -> None:
    """Delete queues and the exchange (missing ones are fine), on a fresh connection."""
    connection = await aio_pika.connect(url, timeout=10)
    try:
        for name in [*dict.fromkeys(queues), None]:
            channel = await connection.channel()
            try:
                if name is None:
                    if exchange:
                        await channel.exchange_delete(exchange)
                else:
                    await channel.queue_delete(name)
            except aiormq.exceptions.AMQPError:
                pass  # already gone; a failed delete closes the channel, so one each
            finally:
                with contextlib.suppress(aiormq.exceptions.AMQPError, RuntimeError):
                    await channel.close()
    finally:
        await connection.close()
