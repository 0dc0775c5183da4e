"""Payloads of the discovery component: instances, health-check definitions, durations."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypeAlias

from backend_kit.errors import ConfigurationError

__all__ = [
    "CheckStatus",
    "HttpCheck",
    "ServiceCheck",
    "ServiceInstance",
    "TtlCheck",
    "format_duration",
    "parse_duration",
]

CheckStatus: TypeAlias = Literal["passing", "warning", "critical"]
"""The states of a Consul health check; only ``passing`` instances are discovered."""

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(value: str | float) -> float:
    """Seconds in a Go-style duration (``"15s"``, ``"1m30s"``, ``"250ms"``) or a number.

    Consul takes durations in Go's notation; numbers are taken as seconds.
    Raises :class:`ConfigurationError` for anything else or a negative value.
    """
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip()
        pos = 0
        seconds = 0.0
        for match in _DURATION.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if pos == 0 or pos != len(text):
            raise ConfigurationError(
                f"invalid duration {value!r}: use Go notation such as '10s', '1m' or '250ms'"
            )
    if seconds < 0:
        raise ConfigurationError(f"invalid duration {value!r}: must not be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """Go-style duration for Consul: whole seconds as ``"15s"``, otherwise milliseconds."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


@dataclass(frozen=True, slots=True)
class ServiceInstance:
    """One registered, healthy instance of a service.

    ``address`` is the service's own address, or the agent node's address when
    the service was registered without one (Consul's documented fallback).
    """

    service_id: str
    name: str
    address: str
    port: int
    tags: tuple[str, ...] = ()
    meta: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    def __post_init__(self) -> None:
        # Freeze the mapping too, so an instance can be shared between tasks safely.
        if not isinstance(self.meta, MappingProxyType):
            object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))
        given_tags: object = self.tags  # a list from an untyped caller becomes a tuple
        if not isinstance(given_tags, tuple):
            object.__setattr__(self, "tags", tuple(self.tags))

    @property
    def endpoint(self) -> str:
        """``"address:port"`` (IPv6 addresses in brackets: ``"[::1]:8080"``)."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class HttpCheck:
    """The agent polls ``url`` every ``interval``; a 2xx answer is passing, 429 warning.

    Durations use Go notation (``"10s"``, ``"1m"``). ``deregister_after`` makes
    Consul remove an instance that stayed critical that long (Consul's minimum
    is one minute; ``None`` never removes it).
    """

    url: str
    interval: str = "10s"
    timeout: str = "5s"
    deregister_after: str | None = "1m"

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigurationError("HttpCheck.url must be an http:// or https:// URL")
        parse_duration(self.interval)
        parse_duration(self.timeout)
        if self.deregister_after is not None:
            parse_duration(self.deregister_after)


@dataclass(frozen=True, slots=True)
class TtlCheck:
    """The service itself reports in: critical unless marked passing within every ``ttl``.

    Like Consul, a new TTL check starts *critical*; ``registry.update_ttl`` (or
    the heartbeat of ``registry.registered``) makes it passing.
    """

    ttl: str = "15s"
    deregister_after: str | None = None

    def __post_init__(self) -> None:
        if parse_duration(self.ttl) <= 0:
            raise ConfigurationError("TtlCheck.ttl must be positive")
        if self.deregister_after is not None:
            parse_duration(self.deregister_after)

    @property
    def ttl_seconds(self) -> float:
        """``ttl`` in seconds."""
        return parse_duration(self.ttl)


ServiceCheck: TypeAlias = HttpCheck | TtlCheck
"""A health check definition accepted by ``register_service``."""
