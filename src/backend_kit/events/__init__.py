"""Events: an envelope, a bus protocol, and an in-memory bus that behaves like RabbitMQ.

::

    from backend_kit.events import InMemoryEventBus

    async with InMemoryEventBus() as bus:
        await bus.subscribe("order.*", handle_order, group="billing")
        await bus.publish_event("order.created", {"order_id": 42})

The RabbitMQ bus lives in :mod:`backend_kit.events.amqp` (extra ``amqp``) and
is imported only by the user, so this package imports no optional dependency.
Delivery is at least once on every bus: handlers deduplicate on ``event.id``.
"""

from __future__ import annotations

from backend_kit.errors import (
    EventBusError,
    InvalidEventError,
    NotConnectedError,
    PoisonEventError,
    PublishError,
    PublishNackedError,
    PublishTimeoutError,
    UnroutableEventError,
)
from backend_kit.events._event import Event
from backend_kit.events._hooks import EventHooks
from backend_kit.events._memory import InMemoryEventBus
from backend_kit.events._protocol import EventBus
from backend_kit.events._serialization import decode_event, encode_event
from backend_kit.events._subscription import (
    DeadLetter,
    EventHandler,
    RetryPolicy,
    Subscription,
)
from backend_kit.events._topic import topic_matches

__all__ = [
    "DeadLetter",
    "Event",
    "EventBus",
    "EventBusError",
    "EventHandler",
    "EventHooks",
    "InMemoryEventBus",
    "InvalidEventError",
    "NotConnectedError",
    "PoisonEventError",
    "PublishError",
    "PublishNackedError",
    "PublishTimeoutError",
    "RetryPolicy",
    "Subscription",
    "UnroutableEventError",
    "decode_event",
    "encode_event",
    "topic_matches",
]
