"""Run the welcome-email worker on the bus the settings name.

:func:`open_worker` connects the bus and subscribes the worker's group;
:func:`main` (``python -m examples.worker``) runs it until interrupted on
RabbitMQ, or, on the in-memory bus, feeds it a short demonstration (two
sign-ups and one poison event) and reports what happened.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from stamina.instrumentation import RetryDetails, set_on_retry_hooks

from backend_kit.events import EventBus, InMemoryEventBus, Subscription
from examples.common import Settings
from examples.common.components import create_event_bus
from examples.worker.handlers import (
    USER_CREATED,
    WELCOME_EMAIL_GROUP,
    LoggingMailer,
    Mailer,
    WelcomeEmailWorker,
)

__all__ = ["RunningWorker", "main", "open_worker"]

logger = logging.getLogger("examples.worker")


@dataclass(frozen=True, slots=True)
class RunningWorker:
    """A connected bus with the worker subscribed to ``user.created``."""

    bus: EventBus
    worker: WelcomeEmailWorker
    subscription: Subscription
    where: str


@asynccontextmanager
async def open_worker(settings: Settings, mailer: Mailer) -> AsyncIterator[RunningWorker]:
    """Connect the bus, subscribe the worker's group; cancel and close on exit.

    Retries and dead letters follow ``settings.worker_max_retries`` and
    ``settings.worker_retry_delay``.
    """
    bus, where = create_event_bus(settings)
    async with bus:
        worker = WelcomeEmailWorker(mailer)
        subscription = await bus.subscribe(
            USER_CREATED,
            worker.handle,
            group=WELCOME_EMAIL_GROUP,
            max_retries=settings.worker_max_retries,
            retry_delay=settings.worker_retry_delay,
        )
        logger.info("consuming %s from %s (queue %s)", USER_CREATED, where, subscription.queue)
        yield RunningWorker(bus, worker, subscription, where)


async def _demonstrate(running: RunningWorker, mailer: LoggingMailer) -> None:
    """On the in-memory bus nobody else publishes: show a short run, then report."""
    bus = running.bus
    for email, name in (("ada@example.com", "Ada Lovelace"), ("grace@example.com", "Grace Hopper")):
        await bus.publish_event(USER_CREATED, {"id": email, "email": email, "name": name})
    await bus.publish_event(USER_CREATED, {"id": "broken", "name": "no email at all"})
    if isinstance(bus, InMemoryEventBus):
        # Every delivery, retry and dead letter has been processed.
        await bus.wait_idle(max_wait=30.0)
    dead = await bus.dead_letters(USER_CREATED, group=WELCOME_EMAIL_GROUP)
    logger.info("welcome emails sent: %s", ", ".join(sent.to for sent in mailer.sent))
    logger.info("mail relay attempts: %d (the refused ones were retried)", mailer.attempts)
    for letter in dead:
        logger.info("dead-lettered after %d attempts: %s", letter.attempts, letter.error)


async def _run(settings: Settings) -> None:
    # The first send is refused, so the retry shows in the log.
    mailer = LoggingMailer(refusals=1)
    async with open_worker(settings, mailer) as running:
        if settings.amqp_url is None:
            await _demonstrate(running, mailer)
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        logger.info("Ctrl+C stops the worker")
        await stop.wait()


def _log_retry(details: RetryDetails) -> None:
    """Say what is retried and why: stamina's own hook puts that in log extras only."""
    logger.warning(
        "retrying %s (retry %d) in %.2f s after %s",
        details.name,
        details.retry_num,
        details.wait_for,
        type(details.caused_by).__name__,
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    set_on_retry_hooks([_log_retry])
    asyncio.run(_run(Settings.from_env()))
