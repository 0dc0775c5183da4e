"""The event envelope, its JSON form, topic matching and queue naming (no network)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend_kit.errors import ConfigurationError, InvalidEventError
from backend_kit.events import (
    Event,
    InMemoryEventBus,
    RetryPolicy,
    decode_event,
    encode_event,
    topic_matches,
)
from backend_kit.events import _serialization as serialization
from backend_kit.events._subscription import describe_error, work_queue_name


# ------------------------------------------------------------------ Event
def test_event_defaults_are_filled_and_utc() -> None:
    event = Event.create("order.created", {"n": 1})
    assert uuid.UUID(event.id).version == 4
    assert event.occurred_at.tzinfo is UTC
    assert abs(datetime.now(UTC) - event.occurred_at) < timedelta(seconds=5)
    assert event.version == 1
    assert event.correlation_id is None
    assert dict(event.headers) == {}


def test_event_is_immutable_even_through_the_dicts_it_was_given() -> None:
    data: dict[str, Any] = {"n": 1}
    headers = {"tenant": "acme"}
    event = Event.create("order.created", data, headers=headers)
    data["n"] = 2
    headers["tenant"] = "evil"
    assert event.data["n"] == 1
    assert event.headers["tenant"] == "acme"
    with pytest.raises(TypeError):
        event.data["n"] = 3  # type: ignore[index]
    with pytest.raises(AttributeError):
        event.type = "other"  # type: ignore[misc]


def test_event_converts_other_timezones_to_utc() -> None:
    paris = timezone(timedelta(hours=2))
    event = Event.create("a", {}, occurred_at=datetime(2026, 6, 1, 14, 0, tzinfo=paris))
    assert event.occurred_at == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert event.occurred_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"type": ""}, "non-empty"),
        ({"type": "order.*"}, "literal routing key"),
        ({"type": "order.#"}, "literal routing key"),
        ({"type": "x" * 256}, "literal routing key"),
        ({"occurred_at": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"version": 0}, "version"),
        ({"version": True}, "version"),
        ({"data": [1, 2]}, "mapping"),
        ({"headers": {"n": 1}}, "headers"),
        ({"id": ""}, "id"),
    ],
)
def test_event_rejects_invalid_fields(kwargs: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {"type": "order.created", "data": {}} | kwargs
    with pytest.raises(ValueError, match=message):
        Event(**fields)


def test_events_are_equal_by_value_and_hashable_by_id() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    first = Event.create("a.b", {"n": 1}, id="e1", occurred_at=when)
    same = Event.create("a.b", {"n": 1}, id="e1", occurred_at=when)
    assert first == same
    assert len({first, same}) == 1


def test_caused_builds_a_follow_up_in_the_same_flow() -> None:
    order = Event.create("order.created", {}, correlation_id="flow-1")
    payment = order.caused("payment.requested", {"amount": 5})
    assert payment.correlation_id == "flow-1"
    assert payment.causation_id == order.id
    first = Event.create("order.created", {})
    assert first.caused("x", {}).correlation_id == first.id


# ------------------------------------------------------------------ JSON
@pytest.fixture(params=["orjson", "json"])
def json_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with orjson and with the stdlib json (as without the fast extra)."""
    name: str = request.param
    if name == "json":
        monkeypatch.setattr(
            serialization,
            "json_backend",
            lambda: ("json", serialization._stdlib_dumps, serialization._stdlib_loads),
        )
    else:
        assert serialization.json_backend()[0] == "orjson"  # the test install has it
    return name


def test_round_trip_keeps_every_field(json_backend: str) -> None:
    event = Event.create(
        "order.created",
        {"n": 1, "nested": {"list": [1, "two", None, 3.5, True]}, "text": "ünïcode"},
        version=3,
        correlation_id="c",
        causation_id="k",
        headers={"tenant": "acme"},
    )
    decoded = decode_event(encode_event(event))
    assert decoded == event
    assert decoded.occurred_at == event.occurred_at


def test_both_json_backends_write_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    event = Event.create(
        "a.b",
        {"when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "day": date(2026, 1, 2), "n": 1},
        id="fixed",
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    fast = encode_event(event)
    monkeypatch.setattr(
        serialization,
        "json_backend",
        lambda: ("json", serialization._stdlib_dumps, serialization._stdlib_loads),
    )
    assert encode_event(event) == fast
    assert json.loads(fast)["data"]["when"] == "2026-01-02T03:04:05+00:00"


def test_unserializable_data_raises_invalid_event_error(json_backend: str) -> None:
    with pytest.raises(InvalidEventError, match="not JSON-serializable"):
        encode_event(Event.create("a", {"x": object()}))


def test_never_pickle() -> None:
    assert b"\x80" not in encode_event(Event.create("a", {"n": 1}))  # pickle's PROTO opcode
    assert "pickle" not in serialization.__dict__


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\x80\x04", "not valid JSON"),
        # Nested past the parser's depth: stdlib json raises RecursionError for it.
        (b"[" * 100_000, "not valid JSON"),
        (b'{"a": ' * 100_000, "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b"{}", "missing id, type, data, occurred_at"),
        (b'{"id": "1", "type": "a", "data": {}, "occurred_at": 5}', "ISO 8601"),
        (b'{"id": "1", "type": "a", "data": {}, "occurred_at": "yesterday"}', "ISO 8601"),
        (
            b'{"id": "1", "type": "a", "data": {}, "occurred_at": "2026-01-01T00:00:00"}',
            "timezone-aware",
        ),
        (b'{"id": 1, "type": "a", "data": {}, "occurred_at": "2026-01-01T00:00:00Z"}', "id"),
        (b'{"id": "1", "type": "a", "data": [], "occurred_at": "2026-01-01T00:00:00Z"}', "mapping"),
        (
            (
                b'{"id": "1", "type": "a", "data": {}, "occurred_at": "2026-01-01T00:00:00Z",'
                b' "correlation_id": 5}'
            ),
            "correlation_id",
        ),
    ],
)
def test_invalid_envelopes_say_why(body: bytes, message: str, json_backend: str) -> None:
    with pytest.raises(InvalidEventError, match=message):
        decode_event(body)


def test_unknown_envelope_keys_are_ignored() -> None:
    body = b'{"id": "1", "type": "a", "data": {}, "occurred_at": "2026-01-01T00:00:00Z", "new": 1}'
    assert decode_event(body).id == "1"


@given(st.binary(max_size=200))
def test_decoding_arbitrary_bytes_never_raises_anything_else(body: bytes) -> None:
    try:
        decode_event(body)
    except InvalidEventError:
        pass


# ------------------------------------------------------------------ topics
@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("order.created", "order.created", True),
        ("order.created", "order.updated", False),
        ("order.*", "order.created", True),
        ("order.*", "order", False),
        ("order.*", "order.item.added", False),
        ("order.#", "order", True),
        ("order.#", "order.item.added", True),
        ("#", "anything.at.all", True),
        ("#.created", "created", True),
        ("#.created", "user.created", True),
        ("*.created", "user.created", True),
        ("*.created", "a.user.created", False),
        ("a.#.z", "a.z", True),
        ("a.#.z", "a.b.c.z", True),
        ("a.#.z", "a.b.c.y", False),
        ("a.*.#", "a", False),
        ("a.*.#", "a.b", True),
    ],
)
def test_topic_matching_follows_amqp(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


def test_queue_names() -> None:
    assert work_queue_name("events", "billing", "order.*") == "events.billing.order.+"
    assert work_queue_name("", "ignored", "order.created") == "order.created"
    with pytest.raises(ConfigurationError, match="literal"):
        work_queue_name("", "g", "order.*")
    with pytest.raises(ConfigurationError, match="group"):
        work_queue_name("events", "", "order.*")
    with pytest.raises(ConfigurationError, match="does not allow"):
        work_queue_name("events", "bill$ing", "order.*")
    with pytest.raises(ConfigurationError, match="too long"):
        work_queue_name("events", "g" * 200, "order.*")


def test_retry_policy() -> None:
    policy = RetryPolicy.build(4, (1, 5, 30))
    assert [policy.delay_for(n) for n in range(1, 5)] == [1.0, 5.0, 30.0, 30.0]
    assert RetryPolicy.build(0, 2).delays == (2.0,)
    for bad in [(-1, 1.0), (1, -0.5), (1, ())]:
        with pytest.raises(ConfigurationError):
            RetryPolicy.build(*bad)  # type: ignore[arg-type]


def test_describe_error_is_short_and_has_no_traceback() -> None:
    assert describe_error(ValueError("boom")) == "ValueError: boom"
    long = describe_error(RuntimeError("x" * 2000))
    assert len(long) == 500
    assert long.endswith("...")


# ------------------------------------------------------------------ memory bus specifics
async def test_memory_bus_validates_subscribe_arguments() -> None:
    async def handler(event: Event) -> None:
        return None

    async with InMemoryEventBus() as bus:
        with pytest.raises(ConfigurationError):
            await bus.subscribe("a", handler, group="g", prefetch=0)
        with pytest.raises(ConfigurationError):
            await bus.subscribe("a", handler, group="g", max_retries=-1)
        with pytest.raises(ConfigurationError):
            await bus.subscribe("a", handler, group="")
    with pytest.raises(ConfigurationError):
        InMemoryEventBus(exchange="")


async def test_memory_bus_close_cancels_pending_retries() -> None:
    calls = 0

    async def failing(event: Event) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("no")

    bus = InMemoryEventBus()
    await bus.connect()
    subscription = await bus.subscribe("a", failing, group="g", retry_delay=0.05)
    await bus.publish_event("a", {})
    await asyncio.sleep(0.01)
    await bus.close()
    await asyncio.sleep(0.1)
    assert calls == 1  # the retry scheduled before close() never ran
    assert subscription.retried == 1
    assert not subscription.active
    assert "closed" in repr(bus)


async def test_wait_idle_times_out_while_a_handler_runs() -> None:
    async def slow(event: Event) -> None:
        await asyncio.sleep(1)

    async with InMemoryEventBus(shutdown_timeout=0.05) as bus:
        await bus.subscribe("a", slow, group="g")
        await bus.publish_event("a", {})
        with pytest.raises(TimeoutError):
            await bus.wait_idle(max_wait=0.05)
