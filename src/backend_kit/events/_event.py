"""The event envelope: what travels on the bus, whatever the backend."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

__all__ = ["Event"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


def _new_id() -> str:
    return str(uuid.uuid4())


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Event:
    """An immutable event envelope.

    Attributes:
        type: What happened, as a dotted name (``"order.created"``). It is the
            routing key on AMQP, so topic patterns (``"order.*"``) match it.
        data: The payload: a JSON object (``str`` keys, JSON-serializable values;
            ``datetime``, ``date`` and ``UUID`` values are written as strings).
        id: Unique id (a UUID4 string by default). Delivery is at-least-once,
            so consumers deduplicate on it.
        occurred_at: When it happened, timezone-aware; stored in UTC.
        version: Version of the payload's schema (``1`` by default), so a consumer
            can tell old and new shapes apart.
        correlation_id: Id shared by every event of one business flow, if any.
        causation_id: Id of the event (or command) that caused this one, if any.
        headers: Free-form string metadata (tenant, trace context...).

    Raises:
        ValueError: ``type`` is empty, ``occurred_at`` is naive, ``version`` is
            below 1, or ``data``/``headers`` have the wrong shape.
    """

    type: str
    data: Mapping[str, Any]
    id: str = field(default_factory=_new_id)
    occurred_at: datetime = field(default_factory=_now)
    version: int = 1
    correlation_id: str | None = None
    causation_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        # Checked at run time too: envelopes also come from the wire, untyped.
        event_type: object = self.type
        if not isinstance(event_type, str) or not event_type:
            raise ValueError("event type must be a non-empty string")
        if len(event_type) > 255 or any(word in ("*", "#") for word in event_type.split(".")):
            # It is an AMQP routing key: wildcards belong in patterns, and a
            # routing key is at most 255 bytes.
            raise ValueError("event type must be a literal routing key (no '*' or '#' words)")
        event_id: object = self.id
        if not isinstance(event_id, str) or not event_id:
            raise ValueError("event id must be a non-empty string")
        data: object = self.data
        if not isinstance(data, Mapping):
            raise ValueError("event data must be a mapping (a JSON object)")
        occurred_at: object = self.occurred_at
        if not isinstance(occurred_at, datetime) or occurred_at.utcoffset() is None:
            raise ValueError("occurred_at must be a timezone-aware datetime")
        version: object = self.version
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError("version must be an integer >= 1")
        headers: object = self.headers
        if not isinstance(headers, Mapping) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in headers.items()
        ):
            raise ValueError("headers must map strings to strings")
        # Frozen: normalise through object.__setattr__ (the dataclass way). The
        # copies make the envelope truly immutable even if the caller keeps
        # and mutates the dicts it passed in.
        if occurred_at.tzinfo is not UTC:
            object.__setattr__(self, "occurred_at", occurred_at.astimezone(UTC))
        object.__setattr__(self, "data", MappingProxyType(dict(data)))
        object.__setattr__(self, "headers", MappingProxyType(dict(headers)) if headers else _EMPTY)

    def __hash__(self) -> int:
        # data and headers are read-only mappings, which do not hash; the id is
        # the event's identity anyway.
        return hash((self.type, self.id))

    @classmethod
    def create(
        cls,
        event_type: str,
        data: Mapping[str, Any],
        *,
        id: str | None = None,
        occurred_at: datetime | None = None,
        version: int = 1,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Event:
        """Build an event, filling ``id`` and ``occurred_at`` when not given."""
        return cls(
            type=event_type,
            data=data,
            id=id if id is not None else _new_id(),
            occurred_at=occurred_at if occurred_at is not None else _now(),
            version=version,
            correlation_id=correlation_id,
            causation_id=causation_id,
            headers=headers if headers is not None else _EMPTY,
        )

    def caused(self, event_type: str, data: Mapping[str, Any], **meta: Any) -> Event:
        """A follow-up event: same correlation id (or this id), causation id = this id."""
        meta.setdefault("correlation_id", self.correlation_id or self.id)
        meta.setdefault("causation_id", self.id)
        return Event.create(event_type, data, **meta)
