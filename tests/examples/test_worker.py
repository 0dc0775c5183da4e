"""The worker example on the in-memory bus and on RabbitMQ: handle, retry, dead-letter, dedupe."""

from __future__ import annotations

import pytest
from examples.common import Settings
from examples.worker import (
    USER_CREATED,
    WELCOME_EMAIL_GROUP,
    LoggingMailer,
    PoisonEventError,
    WelcomeEmailWorker,
)
from examples.worker.runner import RunningWorker, open_worker

from backend_kit.events import Event
from tests.examples.conftest import eventually

ADA = {"id": "u-1", "email": "ada@example.com", "name": "Ada Lovelace"}


async def dead_letter_errors(running: RunningWorker) -> list[str]:
    letters = await running.bus.dead_letters(USER_CREATED, group=WELCOME_EMAIL_GROUP)
    return [letter.error or "" for letter in letters]


async def test_a_refused_mail_relay_is_retried_inside_the_handler(settings: Settings) -> None:
    mailer = LoggingMailer(refusals=1)
    async with open_worker(settings, mailer) as running:
        await running.bus.publish_event(USER_CREATED, ADA)
        await eventually(lambda: mailer.sent)
        assert [sent.to for sent in mailer.sent] == ["ada@example.com"]
        assert "Ada Lovelace" in mailer.sent[0].body
        assert mailer.attempts == 2  # refused once, retried at once
        assert running.subscription.retried == 0  # the bus never had to redeliver
        assert await dead_letter_errors(running) == []


async def test_a_relay_down_longer_than_the_retries_is_redelivered_by_the_bus(
    settings: Settings,
) -> None:
    # Three attempts per delivery (RetryPreset.FAST): the first delivery fails
    # all three, the bus redelivers, and the fifth attempt goes through.
    mailer = LoggingMailer(refusals=4)
    async with open_worker(settings, mailer) as running:
        await running.bus.publish_event(USER_CREATED, ADA)
        await eventually(lambda: mailer.sent)
        assert mailer.attempts == 5
        assert running.subscription.retried == 1
        assert await dead_letter_errors(running) == []


async def test_a_poison_event_is_dead_lettered_and_the_worker_carries_on(
    settings: Settings,
) -> None:
    mailer = LoggingMailer()
    async with open_worker(settings, mailer) as running:
        await running.bus.publish_event(USER_CREATED, {"id": "u-2", "name": "no email"})
        errors = await eventually(lambda: dead_letter_errors(running))
        assert len(errors) == 1
        assert errors[0].startswith("PoisonEventError")
        letters = await running.bus.dead_letters(USER_CREATED, group=WELCOME_EMAIL_GROUP)
        assert letters[0].attempts == 1  # never retried: it cannot get better
        assert letters[0].reason == "poison"
        assert letters[0].event is not None
        assert letters[0].event.data == {"id": "u-2", "name": "no email"}

        await running.bus.publish_event(USER_CREATED, ADA)
        await eventually(lambda: mailer.sent)
        assert [sent.to for sent in mailer.sent] == ["ada@example.com"]


async def test_a_redelivered_event_sends_one_email(settings: Settings) -> None:
    mailer = LoggingMailer()
    async with open_worker(settings, mailer) as running:
        event = Event(type=USER_CREATED, data=ADA)
        await running.bus.publish(event)
        await eventually(lambda: running.subscription.handled >= 1)
        await running.bus.publish(event)  # at least once: the same event again
        await eventually(lambda: running.subscription.handled >= 2)
        assert [sent.to for sent in mailer.sent] == ["ada@example.com"]
        assert running.worker.handled == 1


@pytest.mark.parametrize("data", [{}, {"email": 42, "name": "x"}, {"email": "a@b.c"}])
async def test_poison_shapes_are_refused_without_echoing_data(data: dict[str, object]) -> None:
    worker = WelcomeEmailWorker(LoggingMailer())
    event = Event(type=USER_CREATED, data=data)
    with pytest.raises(PoisonEventError) as raised:
        await worker.handle(event)
    assert "a@b.c" not in str(raised.value)
