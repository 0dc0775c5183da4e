"""Event envelope <-> bytes: JSON (orjson when installed), never pickle.

The wire format is one JSON object::

    {"id": "...", "type": "order.created", "data": {...},
     "occurred_at": "2026-01-01T12:00:00.000001+00:00", "version": 1,
     "correlation_id": null, "causation_id": null, "headers": {}}

Readers ignore keys they do not know (forward compatible); a body that is not
such an object raises :class:`~backend_kit.errors.InvalidEventError`, which the
buses turn into a dead letter instead of a stuck consumer.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from functools import cache
from typing import Any

from backend_kit.errors import InvalidEventError
from backend_kit.events._event import Event

__all__ = ["CONTENT_TYPE", "decode_event", "encode_event", "json_backend"]

CONTENT_TYPE = "application/json"

Dumps = Callable[[Any], bytes]
Loads = Callable[[bytes], Any]


def _stdlib_default(value: object) -> str:
    # The same extra types orjson writes natively, written the same way, so the
    # wire format does not depend on whether orjson is installed.
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _stdlib_dumps(value: Any) -> bytes:
    return json.dumps(
        value, default=_stdlib_default, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _stdlib_loads(body: bytes) -> Any:
    return json.loads(body)


@cache
def json_backend() -> tuple[str, Dumps, Loads]:
    """``(name, dumps, loads)``: orjson when installed (the ``fast`` extra), else stdlib json.

    Chosen on first use, not at import time, so ``import backend_kit.events``
    stays free of optional dependencies.
    """
    try:
        import orjson  # optional (the fast extra), imported on first use on purpose
    except ImportError:
        return "json", _stdlib_dumps, _stdlib_loads

    option = orjson.OPT_NON_STR_KEYS  # stdlib json turns int keys into strings too

    def orjson_dumps(value: Any) -> bytes:
        return orjson.dumps(value, option=option)

    return "orjson", orjson_dumps, orjson.loads


def encode_event(event: Event) -> bytes:
    """Serialize ``event`` to the JSON envelope.

    Raises:
        InvalidEventError: ``event.data`` holds a value JSON cannot represent.
    """
    _, dumps, _ = json_backend()
    envelope = {
        "id": event.id,
        "type": event.type,
        "data": dict(event.data),
        "occurred_at": event.occurred_at.isoformat(),
        "version": event.version,
        "correlation_id": event.correlation_id,
        "causation_id": event.causation_id,
        "headers": dict(event.headers),
    }
    try:
        return dumps(envelope)
    except (TypeError, ValueError) as exc:
        raise InvalidEventError(
            f"event {event.type!r} data is not JSON-serializable: {exc}"
        ) from exc


def _optional_str(envelope: Mapping[str, Any], key: str) -> str | None:
    value = envelope.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidEventError(f"envelope field {key!r} must be a string or null")
    return value


def decode_event(body: bytes) -> Event:
    """Parse a JSON envelope back into an :class:`Event`.

    Raises:
        InvalidEventError: the body is not JSON, not an object, misses a
            required field (``id``, ``type``, ``data``, ``occurred_at``) or has a
            field of the wrong type. The message says which, never echoing the body.
    """
    _, _, loads = json_backend()
    try:
        envelope = loads(body)
    # orjson.JSONDecodeError is a ValueError; stdlib json raises RecursionError
    # for a body nested too deep (orjson refuses it with a JSONDecodeError).
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidEventError("message body is not valid JSON") from exc
    if not isinstance(envelope, dict):
        raise InvalidEventError("message body is not a JSON object")
    missing = [key for key in ("id", "type", "data", "occurred_at") if key not in envelope]
    if missing:
        raise InvalidEventError(f"envelope is missing {', '.join(missing)}")
    occurred_at = envelope["occurred_at"]
    if not isinstance(occurred_at, str):
        raise InvalidEventError("envelope field 'occurred_at' must be an ISO 8601 string")
    try:
        when = datetime.fromisoformat(occurred_at)
    except ValueError as exc:
        raise InvalidEventError("envelope field 'occurred_at' is not an ISO 8601 datetime") from exc
    headers = envelope.get("headers") or {}
    try:
        return Event(
            type=envelope["type"],
            data=envelope["data"],
            id=envelope["id"],
            occurred_at=when,
            version=envelope.get("version", 1),
            correlation_id=_optional_str(envelope, "correlation_id"),
            causation_id=_optional_str(envelope, "causation_id"),
            headers=headers,
        )
    except ValueError as exc:  # Event's own checks: say which rule failed
        raise InvalidEventError(f"invalid envelope: {exc}") from exc
