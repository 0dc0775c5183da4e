"""AmqpEventBus settings and the errors it raises before touching the network."""

from __future__ import annotations

import pytest

from backend_kit.errors import ConfigurationError, NotConnectedError
from backend_kit.events import Event, EventBus, InMemoryEventBus
from backend_kit.events.amqp import AmqpEventBus


def test_both_buses_satisfy_the_protocol() -> None:
    assert isinstance(InMemoryEventBus(), EventBus)
    assert isinstance(AmqpEventBus("amqp://u:p@localhost/"), EventBus)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"url": "http://localhost/"},
        {"url": "amqp://localhost/", "publish_timeout": 0},
        {"url": "amqp://localhost/", "confirm_window": 0},
        {"url": "amqp://localhost/", "reconnect_interval": -1},
    ],
)
def test_bad_settings_are_configuration_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        AmqpEventBus(**kwargs)  # type: ignore[arg-type]


def test_from_env_needs_amqp_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMQP_URL", raising=False)
    with pytest.raises(ConfigurationError, match="AMQP_URL"):
        AmqpEventBus.from_env()
    monkeypatch.setenv("AMQP_URL", "amqp://app:hunter2@rabbit:5672/prod")
    bus = AmqpEventBus.from_env(exchange="orders", publish_timeout=3)
    assert (bus.exchange, bus.publish_timeout) == ("orders", 3)
    assert "hunter2" not in repr(bus)
    assert "app:***@rabbit" in repr(bus)


async def test_using_it_before_connect_raises_not_connected() -> None:
    bus = AmqpEventBus("amqp://u:p@localhost/")

    async def handler(event: Event) -> None:
        return None

    with pytest.raises(NotConnectedError):
        await bus.publish_event("a", {})
    with pytest.raises(NotConnectedError):
        await bus.publish_many([Event.create("a", {})])
    with pytest.raises(NotConnectedError):
        await bus.subscribe("a", handler, group="g")
    with pytest.raises(NotConnectedError):
        await bus.dead_letters("a", group="g")
    assert await bus.ping() is False
    with pytest.raises(ConfigurationError):
        await bus.subscribe("a", handler, group="g", prefetch=0)


@pytest.mark.parametrize("url", ["amqp://u:pw123@host:abc/", "amqp://u:pw123@[::1/"])
def test_a_malformed_url_is_a_configuration_error_at_construction(url: str) -> None:
    # Else yarl's bare ValueError would surface from connect(), not a typed error.
    with pytest.raises(ConfigurationError) as raised:
        AmqpEventBus(url)
    assert "pw123" not in str(raised.value)
