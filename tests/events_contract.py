"""The event-bus contract: every test here runs on InMemoryEventBus and on RabbitMQ.

Test modules import these functions and provide a ``harness`` fixture (see
:class:`Harness`), so one set of assertions holds for every backend. Waits
are bounded polls (``eventually``), never sleeps that hope.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import pytest

from backend_kit.events import (
    Event,
    EventBus,
    EventHooks,
    InvalidEventError,
    NotConnectedError,
    PoisonEventError,
    UnroutableEventError,
)


class Harness(Protocol):
    """What a backend's test module gives the contract tests."""

    @property
    def bus(self) -> EventBus:
        """Connected, on a private exchange / namespace."""
        ...

    async def worker_bus(self) -> EventBus:
        """Another connected bus on the same topology (another worker process on AMQP)."""
        ...

    async def new_bus(self) -> EventBus:
        """A bus on the same topology, *not* connected yet."""
        ...

    async def send_raw(self, routing_key: str, body: bytes) -> None:
        """Publish a raw body, as a foreign producer would."""
        ...

    async def hooked_bus(self, hooks: EventHooks) -> EventBus:
        """A connected bus calling ``hooks``, with its own topology."""
        ...


async def eventually(
    check: Callable[[], bool], *, within: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``check`` every 10 ms until true; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class Recorder:
    """A handler that records what it saw; optionally fails the first N calls per event."""

    fail_times: int = 0
    always_fail: bool = False
    delay: float = 0.0
    events: list[Event] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)

    async def __call__(self, event: Event) -> None:
        self.calls[event.id] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.always_fail or self.calls[event.id] <= self.fail_times:
            raise RuntimeError(f"handler failed on call {self.calls[event.id]}")
        self.events.append(event)

    def ids(self) -> set[str]:
        return {event.id for event in self.events}


def _handler(recorder: Recorder) -> Callable[[Event], Awaitable[None]]:
    return recorder.__call__


async def test_round_trip_keeps_every_envelope_field(harness: Harness) -> None:
    seen = Recorder()
    await harness.bus.subscribe("order.created", seen, group="billing")
    sent = await harness.bus.publish_event(
        "order.created",
        {"order_id": 42, "total": "9.90", "items": [1, 2]},
        correlation_id="flow-1",
        causation_id="cmd-7",
        version=2,
        headers={"tenant": "acme"},
    )
    await eventually(lambda: len(seen.events) == 1, what="the event")
    assert seen.events[0] == sent
    assert seen.events[0].occurred_at == sent.occurred_at
    assert dict(seen.events[0].headers) == {"tenant": "acme"}


async def test_topic_patterns_route_like_amqp(harness: Harness) -> None:
    star, hash_, created = Recorder(), Recorder(), Recorder()
    await harness.bus.subscribe("order.*", star, group="star")
    await harness.bus.subscribe("order.#", hash_, group="hash")
    await harness.bus.subscribe("*.created", created, group="created")
    types = ["order.created", "order.item.added", "order", "user.created"]
    for event_type in types:
        await harness.bus.publish_event(event_type, {})
    await eventually(
        lambda: (len(star.events), len(hash_.events), len(created.events)) == (1, 3, 2),
        what="every routed event",
    )
    await asyncio.sleep(0.1)  # nothing else trickles in
    assert [e.type for e in star.events] == ["order.created"]
    assert sorted(e.type for e in hash_.events) == ["order", "order.created", "order.item.added"]
    assert sorted(e.type for e in created.events) == ["order.created", "user.created"]


async def test_two_groups_each_receive_every_event(harness: Harness) -> None:
    billing, shipping = Recorder(), Recorder()
    await harness.bus.subscribe("order.*", billing, group="billing")
    await harness.bus.subscribe("order.*", shipping, group="shipping")
    sent = {(await harness.bus.publish_event("order.created", {"n": n})).id for n in range(20)}
    await eventually(lambda: billing.ids() == sent and shipping.ids() == sent, what="both groups")
    assert len(billing.events) == len(shipping.events) == 20


async def test_three_workers_of_one_group_split_the_work(harness: Harness) -> None:
    workers = [Recorder(delay=0.005) for _ in range(3)]
    for worker in workers:
        bus = await harness.worker_bus()
        await bus.subscribe("job.run", worker, group="runners", prefetch=1)
    events = [Event.create("job.run", {"n": n}) for n in range(60)]
    await harness.bus.publish_many(events)
    expected = {event.id for event in events}
    await eventually(
        lambda: set().union(*(w.ids() for w in workers)) == expected, what="all 60 jobs"
    )
    counts = [len(worker.events) for worker in workers]
    assert sum(counts) == 60, counts  # each job once: a group shares, never duplicates
    assert all(count >= 5 for count in counts), counts  # and everyone took a share


async def test_failing_handler_is_retried_then_dead_lettered(harness: Harness) -> None:
    failing = Recorder(always_fail=True)
    subscription = await harness.bus.subscribe(
        "payment.failed", failing, group="ledger", max_retries=2, retry_delay=(0.05, 0.1)
    )
    event = await harness.bus.publish_event("payment.failed", {"amount": 5})
    await eventually(lambda: subscription.dead_lettered == 1, what="the dead letter")
    assert failing.calls[event.id] == 3  # first attempt + 2 retries
    assert subscription.retried == 2
    assert subscription.handled == 0
    letters = await harness.bus.dead_letters("payment.failed", group="ledger")
    assert len(letters) == 1
    letter = letters[0]
    assert letter.event == event
    assert letter.reason == "handler-failed"
    assert letter.attempts == 3
    assert letter.error == "RuntimeError: handler failed on call 3"
    assert letter.routing_key == "payment.failed"
    assert letter.queue == subscription.queue
    assert letter.failed_at is not None


async def test_a_retry_that_succeeds_is_handled_once_and_not_dead_lettered(
    harness: Harness,
) -> None:
    flaky = Recorder(fail_times=2)
    subscription = await harness.bus.subscribe(
        "mail.send", flaky, group="mailer", max_retries=3, retry_delay=0.05
    )
    event = await harness.bus.publish_event("mail.send", {"to": "a@example.com"})
    await eventually(lambda: subscription.handled == 1, what="the third attempt")
    assert flaky.calls[event.id] == 3
    assert flaky.ids() == {event.id}
    assert subscription.retried == 2
    assert await harness.bus.dead_letters("mail.send", group="mailer") == []


async def test_zero_retries_dead_letters_after_one_attempt(harness: Harness) -> None:
    failing = Recorder(always_fail=True)
    subscription = await harness.bus.subscribe(
        "sms.send", failing, group="sms", max_retries=0, retry_delay=0.01
    )
    event = await harness.bus.publish_event("sms.send", {})
    await eventually(lambda: subscription.dead_lettered == 1, what="the dead letter")
    assert failing.calls[event.id] == 1
    assert subscription.retried == 0


async def test_a_handler_raising_poison_event_error_is_dead_lettered_without_retries(
    harness: Harness,
) -> None:
    handled: list[str] = []

    async def handler(event: Event) -> None:
        if event.data.get("email") is None:
            raise PoisonEventError("no email: this event can never be sent")
        handled.append(event.id)

    subscription = await harness.bus.subscribe(
        "mail.send", handler, group="mailer", max_retries=5, retry_delay=0.05
    )
    poison = await harness.bus.publish_event("mail.send", {"email": None})
    good = await harness.bus.publish_event("mail.send", {"email": "ada@example.com"})
    await eventually(lambda: subscription.dead_lettered == 1, what="the poison dead letter")
    await eventually(lambda: handled == [good.id], what="the good event after the poison")
    assert subscription.retried == 0  # never retried, although max_retries=5
    letters = await harness.bus.dead_letters("mail.send", group="mailer")
    assert len(letters) == 1
    letter = letters[0]
    assert letter.event is not None
    assert letter.event.id == poison.id
    assert letter.reason == "poison"
    assert letter.attempts == 1
    assert letter.error == "PoisonEventError: no email: this event can never be sent"


async def test_poison_message_goes_straight_to_dead_letters_and_consumer_goes_on(
    harness: Harness,
) -> None:
    seen = Recorder()
    subscription = await harness.bus.subscribe(
        "order.*", seen, group="billing", max_retries=5, retry_delay=0.05
    )
    await harness.send_raw("order.created", b"\x80 this is not json")
    await harness.send_raw("order.created", b'{"id": "x", "type": "order.created"}')
    good = await harness.bus.publish_event("order.created", {"ok": True})
    await eventually(lambda: seen.ids() == {good.id}, what="the good event after the poison")
    await eventually(lambda: subscription.dead_lettered == 2, what="two dead letters")
    assert subscription.retried == 0  # never retried: it cannot get better
    letters = await harness.bus.dead_letters("order.*", group="billing")
    assert sorted(letter.body for letter in letters) == sorted(
        [b"\x80 this is not json", b'{"id": "x", "type": "order.created"}']
    )
    for letter in letters:
        assert letter.event is None
        assert letter.reason == "invalid-envelope"
        assert letter.attempts == 0
        assert letter.error is not None
        assert letter.error.startswith("InvalidEventError: ")
    assert any("missing data, occurred_at" in (letter.error or "") for letter in letters)


async def test_unroutable_publish_is_reported(harness: Harness) -> None:
    await harness.bus.subscribe("order.*", Recorder(), group="billing")
    event = Event.create("nobody.listens", {"n": 1})
    with pytest.raises(UnroutableEventError) as caught:
        await harness.bus.publish(event)
    assert caught.value.event_ids == (event.id,)


async def test_publish_many_reports_every_unconfirmed_event(harness: Harness) -> None:
    seen = Recorder()
    await harness.bus.subscribe("order.*", seen, group="billing")
    routable = [Event.create("order.created", {"n": n}) for n in range(3)]
    stray = Event.create("stray.event", {})
    after = [Event.create("order.created", {"n": n}) for n in range(3, 5)]
    with pytest.raises(UnroutableEventError) as caught:
        await harness.bus.publish_many([*routable, stray, *after])
    # The stray one failed; those after it may or may not have been sent
    # (up to a window is in flight), but each is either delivered or named.
    assert stray.id in caught.value.event_ids
    await eventually(lambda: {e.id for e in routable} <= seen.ids(), what="the routable events")
    await asyncio.sleep(0.1)
    for event in after:
        assert (event.id in seen.ids()) != (event.id in caught.value.event_ids)


async def test_publish_many_delivers_all(harness: Harness) -> None:
    seen = Recorder()
    await harness.bus.subscribe("metric.#", seen, group="metrics")
    events = [Event.create("metric.cpu", {"n": n}) for n in range(300)]
    await harness.bus.publish_many(events)
    await eventually(lambda: seen.ids() == {e.id for e in events}, what="300 events")


async def test_invalid_data_is_refused_before_anything_is_sent(harness: Harness) -> None:
    seen = Recorder()
    await harness.bus.subscribe("order.*", seen, group="billing")
    good = Event.create("order.created", {"n": 1})
    bad = Event.create("order.created", {"blob": object()})
    with pytest.raises(InvalidEventError):
        await harness.bus.publish_many([good, bad])
    with pytest.raises(InvalidEventError):
        await harness.bus.publish(bad)
    await asyncio.sleep(0.2)
    assert seen.events == []


async def test_using_a_bus_before_connect_or_after_close_raises(harness: Harness) -> None:
    bus = await harness.new_bus()
    with pytest.raises(NotConnectedError):
        await bus.publish_event("order.created", {})
    with pytest.raises(NotConnectedError):
        await bus.subscribe("order.*", Recorder(), group="billing")
    assert await bus.ping() is False
    await bus.connect()
    assert await bus.ping() is True
    await bus.close()
    assert await bus.ping() is False
    with pytest.raises(NotConnectedError):
        await bus.publish_event("order.created", {})
    with pytest.raises(NotConnectedError):
        await bus.connect()
    await bus.close()  # idempotent


async def test_close_lets_running_handlers_finish(harness: Harness) -> None:
    bus = await harness.worker_bus()
    slow = Recorder(delay=0.3)
    subscription = await bus.subscribe("report.build", slow, group="reports")
    event = await harness.bus.publish_event("report.build", {})
    await eventually(lambda: slow.calls[event.id] == 1, what="the handler to start")
    await bus.close()
    assert slow.ids() == {event.id}  # it finished before close() returned
    assert subscription.handled == 1
    assert not subscription.active


async def test_cancelled_subscription_keeps_its_queue_for_the_group(harness: Harness) -> None:
    first = Recorder()
    subscription = await harness.bus.subscribe("invoice.sent", first, group="crm")
    await subscription.cancel()
    assert not subscription.active
    # The group's queue stays bound: the event waits for the next subscriber.
    event = await harness.bus.publish_event("invoice.sent", {})
    second = Recorder()
    await harness.bus.subscribe("invoice.sent", second, group="crm")
    await eventually(lambda: second.ids() == {event.id}, what="the waiting event")
    assert first.events == []


async def test_handlers_run_concurrently_up_to_prefetch(harness: Harness) -> None:
    running = 0
    peak = 0
    done = 0

    async def handler(event: Event) -> None:
        nonlocal running, peak, done
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        done += 1

    await harness.bus.subscribe("thumb.make", handler, group="thumbs", prefetch=4)
    await harness.bus.publish_many([Event.create("thumb.make", {"n": n}) for n in range(12)])
    await eventually(lambda: done == 12, what="12 handlers")
    assert 2 <= peak <= 4


async def test_a_handler_cut_short_by_cancel_is_redelivered_to_the_group(harness: Harness) -> None:
    hanging = Recorder(delay=30.0)
    first_bus = await harness.worker_bus()
    subscription = await first_bus.subscribe("video.encode", hanging, group="encoders")
    event = await harness.bus.publish_event("video.encode", {})
    await eventually(lambda: hanging.calls[event.id] == 1, what="the handler to start")
    started = time.monotonic()
    await subscription.cancel(grace=0.2)
    assert time.monotonic() - started < 3.0  # the grace bounds the wait
    assert hanging.events == []
    successor = Recorder()
    second_bus = await harness.worker_bus()
    await second_bus.subscribe("video.encode", successor, group="encoders")
    await eventually(lambda: successor.ids() == {event.id}, what="the redelivery")


class RecordingHooks(EventHooks):
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def on_published(self, event: Event) -> None:
        self.calls.append(("published", event.type))

    def on_handled(self, event: Event, queue: str, seconds: float) -> None:
        assert seconds >= 0
        self.calls.append(("handled", event.type))

    def on_retry(self, event: Event, queue: str, attempt: int, error: str) -> None:
        self.calls.append(("retry", f"{attempt} {error}"))

    def on_dead_letter(self, event: Event | None, queue: str, reason: str, error: str) -> None:
        self.calls.append(("dead", reason))


class BrokenHooks(EventHooks):
    def on_handled(self, event: Event, queue: str, seconds: float) -> None:
        raise RuntimeError("metrics backend down")


async def test_hooks_see_the_flow(harness: Harness) -> None:
    hooks = RecordingHooks()
    bus = await harness.hooked_bus(hooks)
    ok = Recorder()
    failing = Recorder(always_fail=True)
    await bus.subscribe("ok.event", ok, group="hooks")
    failing_sub = await bus.subscribe(
        "bad.event", failing, group="hooks", max_retries=1, retry_delay=0.02
    )
    await bus.publish_event("ok.event", {})
    await bus.publish_many([Event.create("bad.event", {})])
    await eventually(lambda: failing_sub.dead_lettered == 1 and len(ok.events) == 1)
    assert sorted(hooks.calls) == sorted(
        [
            ("published", "ok.event"),
            ("published", "bad.event"),
            ("handled", "ok.event"),
            ("retry", "1 RuntimeError: handler failed on call 1"),
            ("dead", "handler-failed"),
        ]
    )


async def test_a_broken_hook_does_not_stop_delivery(harness: Harness) -> None:
    bus = await harness.hooked_bus(BrokenHooks())
    seen = Recorder()
    subscription = await bus.subscribe("ok.event", seen, group="hooks")
    await bus.publish_event("ok.event", {})
    await bus.publish_event("ok.event", {})
    await eventually(lambda: subscription.handled == 2, what="both events, hook or not")


async def test_dead_letters_can_be_replayed_after_a_fix(harness: Harness) -> None:
    broken = True
    handled: list[Event] = []

    async def handler(event: Event) -> None:
        if broken:
            raise RuntimeError("bug")
        handled.append(event)

    subscription = await harness.bus.subscribe(
        "order.paid", handler, group="ledger", max_retries=1, retry_delay=0.02
    )
    events = [await harness.bus.publish_event("order.paid", {"n": n}) for n in range(3)]
    await eventually(lambda: subscription.dead_lettered == 3, what="three dead letters")
    broken = False  # "deploy the fix"
    assert await harness.bus.replay_dead_letters("order.paid", group="ledger", limit=2) == 2
    await eventually(lambda: len(handled) == 2, what="the replayed events")
    assert await harness.bus.replay_dead_letters("order.paid", group="ledger") == 1
    await eventually(lambda: {e.id for e in handled} == {e.id for e in events}, what="all")
    assert await harness.bus.dead_letters("order.paid", group="ledger") == []
    assert await harness.bus.replay_dead_letters("nobody.*", group="ledger") == 0
