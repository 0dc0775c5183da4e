"""Argument checks shared by every registry, so all backends refuse the same input."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from backend_kit.errors import ConfigurationError

__all__ = ["validate_registration"]


def validate_registration(
    name: str,
    service_id: str,
    port: int,
    tags: Sequence[str],
    meta: Mapping[str, str] | None,
) -> tuple[tuple[str, ...], dict[str, str]]:
    """Check a registration's arguments; return ``tags`` and ``meta`` normalised.

    Raises :class:`~backend_kit.errors.ConfigurationError` for an empty name or
    id, a port outside 0-65535, ``tags`` given as one string, or non-string meta.
    """
    if not name or not name.strip():
        raise ConfigurationError("a service name must not be empty")
    if not service_id or not service_id.strip():
        raise ConfigurationError("a service id must not be empty")
    if "/" in service_id:
        # Consul takes the id as a path segment: a slash makes it unreachable.
        raise ConfigurationError("a service id must not contain '/'")
    # Checked as plain objects: callers without a type checker pass anything.
    given_port: object = port
    if isinstance(given_port, bool) or not isinstance(given_port, int) or not 0 <= port <= 65535:
        raise ConfigurationError(f"port must be an integer in 0-65535, got {port!r}")
    if isinstance(tags, str):
        raise ConfigurationError("tags must be a sequence of strings, not one string")
    normal_meta = dict(meta or {})
    pairs: list[tuple[object, object]] = list(normal_meta.items())
    for key, value in pairs:
        if not isinstance(key, str) or not isinstance(value, str):
            raise ConfigurationError("meta keys and values must be strings")
    return tuple(tags), normal_meta
