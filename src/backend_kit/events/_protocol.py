"""The ``EventBus`` protocol every backend implements."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from backend_kit.events._event import Event
from backend_kit.events._subscription import DeadLetter, EventHandler, Subscription

__all__ = ["EventBus"]


@runtime_checkable
class EventBus(Protocol):
    """Publish events by type; subscribe consumer groups with topic patterns.

    Delivery is **at least once**: a handler may see the same event twice
    (deduplicate on ``event.id``). A handler that raises is retried after
    ``retry_delay`` up to ``max_retries`` times, then the message becomes a
    dead letter; a body that is not an envelope is dead-lettered at once.
    """

    async def connect(self) -> None:
        """Connect (idempotent). Raises ``NotConnectedError`` if the broker is unreachable."""
        ...

    async def close(self) -> None:
        """Stop consuming, let running handlers finish within a bound, disconnect."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def ping(self) -> bool:
        """True when connected and able to publish right now."""
        ...

    async def publish_event(self, event_type: str, data: Mapping[str, Any], **meta: Any) -> Event:
        """Build an :class:`Event` (``meta``: its optional fields), publish it, return it."""
        ...

    async def publish(self, event: Event) -> None:
        """Publish one event; returns once the broker has stored it.

        Raises:
            NotConnectedError: before ``connect()`` or after ``close()``.
            UnroutableEventError: no queue is bound for ``event.type``.
            PublishNackedError: the broker refused it.
            PublishTimeoutError: not confirmed within the publish timeout.
            InvalidEventError: ``event.data`` is not JSON-serializable.
        """
        ...

    async def publish_many(self, events: Iterable[Event]) -> None:
        """Publish events in order with a bounded window of confirms in flight.

        Stops at the first failure and raises it, its ``event_ids`` naming
        every event not confirmed (the failed ones and those never sent).
        """
        ...

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
        """Consume the group's queue, bound to ``pattern`` (``*`` one word, ``#`` any).

        Every group receives each matching event; the subscribers of one group
        share the work. At most ``prefetch`` handlers run at once per subscriber.
        """
        ...

    async def dead_letters(self, pattern: str, *, group: str, limit: int = 100) -> list[DeadLetter]:
        """Look at (without removing) up to ``limit`` dead letters of a group's queue."""
        ...

    async def replay_dead_letters(self, pattern: str, *, group: str, limit: int = 100) -> int:
        """Move up to ``limit`` dead letters back to the group's queue (attempts reset)."""
        ...
