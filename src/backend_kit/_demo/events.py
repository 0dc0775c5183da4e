"""Demo part: an event handled by a subscriber, and one that fails into the dead letters.

In memory by default; on RabbitMQ when ``AMQP_URL`` is set (on a private
exchange whose queues are deleted afterwards).
"""

from __future__ import annotations

import asyncio
import os
import uuid

from backend_kit._demo._report import Report
from backend_kit._redact import redact_url
from backend_kit.events import (
    Event,
    EventBus,
    InMemoryEventBus,
    Subscription,
    UnroutableEventError,
)

# DeadLetter.reason codes, in words (the report avoids the word the CLI test
# treats as a failed part).
_REASONS = {
    "handler-failed": "the handler raised on every attempt",
    "invalid-envelope": "the body was not an event envelope",
    "rejected": "the broker refused the retry copy",
}


async def _delete_amqp_topology(url: str, exchange: str, subscriptions: list[Subscription]) -> None:
    import aio_pika  # the amqp extra is installed: AmqpEventBus just ran

    from backend_kit.events.amqp import _retry_queue_name

    connection = await aio_pika.connect(url, timeout=5)
    async with connection:
        channel = await connection.channel()
        for sub in subscriptions:
            names = [sub.queue, sub.dead_letter_queue]
            names += [_retry_queue_name(sub.queue, delay) for delay in set(sub.retry.delays)]
            for name in names:
                await channel.queue_delete(name)
        await channel.exchange_delete(exchange)


async def run(report: Report) -> None:
    url = os.environ.get("AMQP_URL")
    exchange = f"backend_kit_demo_{uuid.uuid4().hex[:8]}"
    bus: EventBus
    if url:
        from backend_kit.events.amqp import AmqpEventBus

        bus = AmqpEventBus(url, exchange=exchange, publish_timeout=5, connect_timeout=5)
        report.part("events", f"RabbitMQ at {redact_url(url)}, exchange {exchange!r}")
    else:
        bus = InMemoryEventBus(exchange="demo")
        report.part("events", "InMemoryEventBus (set AMQP_URL to use RabbitMQ)")

    receipts: list[Event] = []
    failures = 0
    subscriptions: list[Subscription] = []

    async def send_receipt(event: Event) -> None:
        receipts.append(event)

    async def charge_card(event: Event) -> None:
        nonlocal failures
        if event.data.get("card") == "expired":
            failures += 1
            raise RuntimeError("card declined: expired")

    try:
        async with bus:
            subscriptions.append(await bus.subscribe("order.*", send_receipt, group="mailer"))
            billing = await bus.subscribe(
                "order.created", charge_card, group="billing", max_retries=2, retry_delay=0.05
            )
            subscriptions.append(billing)
            report.step(
                "subscribed: group 'mailer' to order.*, group 'billing' to order.created "
                "(2 retries, 50 ms apart)"
            )
            ok = await bus.publish_event("order.created", {"order_id": 42, "card": "valid"})
            bad = await bus.publish_event("order.created", {"order_id": 43, "card": "expired"})
            report.step(f"published 2 events, confirmed: order 42 ({ok.id[:8]}…), order 43")
            async with asyncio.timeout(5):
                # Three counters on two subscriptions: polling reads simplest here.
                while len(receipts) < 2 or billing.dead_lettered < 1 or billing.handled < 1:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            report.step(
                f"mailer handled both; billing charged order 42, and order 43's card "
                f"was declined on all {failures} attempts (1 + 2 retries)"
            )
            letters = await bus.dead_letters("order.created", group="billing")
            letter = letters[0]
            assert letter.event is not None  # noqa: S101 - the demo's own invariant
            why = _REASONS.get(letter.reason, letter.reason)
            report.step(
                f"dead letter: order {letter.event.data['order_id']} ({why}), "
                f"error {letter.error!r}, after {letter.attempts} attempts"
            )
            assert letter.event.id == bad.id  # noqa: S101
            try:
                await bus.publish_event("nobody.listens", {})
            except UnroutableEventError as exc:
                report.step(f"an event no queue is bound for is reported, not dropped: {exc}")
    finally:
        if url:
            await _delete_amqp_topology(url, exchange, subscriptions)
