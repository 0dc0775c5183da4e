"""The in-memory registry: the whole contract in one process, for tests and demos."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from backend_kit.discovery._base import BaseServiceRegistry
from backend_kit.discovery._models import (
    CheckStatus,
    ServiceCheck,
    ServiceInstance,
    TtlCheck,
)
from backend_kit.discovery._validate import validate_registration
from backend_kit.errors import ConfigurationError

__all__ = ["InMemoryServiceRegistry"]

_STATUSES: frozenset[str] = frozenset({"passing", "warning", "critical"})


@dataclass(slots=True)
class _Entry:
    name: str
    address: str | None
    port: int
    tags: tuple[str, ...]
    meta: dict[str, str]
    check: ServiceCheck | None
    status: CheckStatus
    ttl_deadline: float | None = None
    notes: list[str] = field(default_factory=list)


class InMemoryServiceRegistry(BaseServiceRegistry):
    """A :class:`~backend_kit.discovery.ServiceRegistry` held in this process.

    Behaves like a single Consul agent: a TTL check starts critical and goes
    critical again when not refreshed within its TTL; an instance registered
    without an address gets ``node_address`` (Consul's fallback to the node's
    address). It does not probe :class:`HttpCheck` URLs: such instances start
    passing, and :meth:`set_check_status` plays the part of the probe.

    Safe to share between tasks of one event loop; not thread-safe.
    """

    def __init__(
        self,
        *,
        node_address: str = "127.0.0.1",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``node_address`` stands in for the agent's address; ``clock`` is in seconds."""
        super().__init__()
        self._node_address = node_address
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._changed = asyncio.Event()

    # ------------------------------------------------------------ primitives
    async def register_service(
        self,
        name: str,
        service_id: str,
        port: int,
        *,
        address: str | None = None,
        tags: Sequence[str] = (),
        meta: Mapping[str, str] | None = None,
        check: ServiceCheck | None = None,
    ) -> None:
        """Register ``service_id``; registering a known id replaces it (and its check)."""
        normal_tags, normal_meta = validate_registration(name, service_id, port, tags, meta)
        status: CheckStatus = "critical" if isinstance(check, TtlCheck) else "passing"
        deadline: float | None = None
        previous = self._entries.get(service_id)
        if previous is not None and check is not None and type(previous.check) is type(check):
            # Like the Consul agent, re-registration keeps the check's state.
            status = self._status(previous, self._clock())
            deadline = previous.ttl_deadline
            if isinstance(check, TtlCheck) and deadline is not None:
                deadline = self._clock() + check.ttl_seconds
        self._entries[service_id] = _Entry(
            name=name,
            address=address or None,
            port=port,
            tags=normal_tags,
            meta=normal_meta,
            check=check,
            status=status,
            ttl_deadline=deadline,
        )
        self._notify()

    async def deregister_service(self, service_id: str) -> bool:
        """Remove ``service_id``; ``False`` if it was not registered."""
        removed = self._entries.pop(service_id, None) is not None
        if removed:
            self._notify()
        return removed

    async def update_ttl(
        self, service_id: str, status: CheckStatus = "passing", *, note: str | None = None
    ) -> bool:
        """Set the TTL check of ``service_id`` and restart its TTL; ``False`` if it has none."""
        _check_status(status)
        entry = self._entries.get(service_id)
        if entry is None or not isinstance(entry.check, TtlCheck):
            return False
        entry.status = status
        entry.ttl_deadline = self._clock() + entry.check.ttl_seconds
        if note is not None:
            entry.notes.append(note)
        self._notify()
        return True

    async def instances(self, name: str, *, tag: str | None = None) -> list[ServiceInstance]:
        """The passing instances of ``name`` (carrying ``tag`` when given), by ``service_id``."""
        return self._passing(name, tag)

    async def watch(
        self, name: str, *, tag: str | None = None
    ) -> AsyncIterator[list[ServiceInstance]]:
        """Yield the passing instances now and after every change (TTL expiries included)."""
        last: list[ServiceInstance] | None = None
        while True:
            changed = self._changed  # taken before reading, so no change slips between
            current = self._passing(name, tag)
            if current != last:
                last = current
                yield current
            try:
                await asyncio.wait_for(changed.wait(), timeout=self._next_expiry_in(name))
            except TimeoutError:
                pass  # a TTL ran out: re-read

    async def aping(self) -> bool:
        """Always ``True``: the registry lives in this process."""
        return True

    async def aclose(self) -> None:
        """Nothing to release; the registrations stay (a registry is not an agent)."""

    # ------------------------------------------------------------ test hooks
    def set_check_status(self, service_id: str, status: CheckStatus) -> None:
        """Force the health of ``service_id``'s check, as the agent's probe would.

        Raises :class:`KeyError` for an unknown id. For a TTL check the status
        holds until the TTL runs out or the service reports in again.
        """
        _check_status(status)
        entry = self._entries[service_id]
        entry.status = status
        if isinstance(entry.check, TtlCheck):
            entry.ttl_deadline = self._clock() + entry.check.ttl_seconds
        self._notify()

    def registered_ids(self) -> list[str]:
        """Every registered id, healthy or not, sorted (like ``GET /v1/agent/services``)."""
        return sorted(self._entries)

    # -------------------------------------------------------------- internal
    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _status(self, entry: _Entry, now: float) -> CheckStatus:
        if (
            isinstance(entry.check, TtlCheck)
            and entry.ttl_deadline is not None
            and now > entry.ttl_deadline
        ):
            return "critical"
        return entry.status

    def _passing(self, name: str, tag: str | None) -> list[ServiceInstance]:
        now = self._clock()
        return [
            ServiceInstance(
                service_id=service_id,
                name=entry.name,
                address=entry.address or self._node_address,
                port=entry.port,
                tags=entry.tags,
                meta=entry.meta,
            )
            for service_id, entry in sorted(self._entries.items())
            if entry.name == name
            and (tag is None or tag in entry.tags)
            and self._status(entry, now) == "passing"
        ]

    def _next_expiry_in(self, name: str) -> float | None:
        now = self._clock()
        deadlines = [
            entry.ttl_deadline - now
            for entry in self._entries.values()
            if entry.name == name
            and entry.ttl_deadline is not None
            and entry.ttl_deadline >= now
            and entry.status == "passing"
        ]
        # A hair past the deadline, so the re-read sees the check expired.
        return min(deadlines) + 0.001 if deadlines else None


def _check_status(status: str) -> None:
    if status not in _STATUSES:
        raise ConfigurationError(f"status must be passing, warning or critical, not {status!r}")
