"""The :class:`ServiceRegistry` protocol every discovery backend implements."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Literal, Protocol, runtime_checkable

from backend_kit.discovery._models import CheckStatus, ServiceCheck, ServiceInstance

__all__ = ["ChooseStrategy", "ServiceRegistry"]

ChooseStrategy = Literal["round_robin", "random"]


@runtime_checkable
class ServiceRegistry(Protocol):
    """Register service instances with health checks and discover the healthy ones.

    Implementations: :class:`~backend_kit.discovery.InMemoryServiceRegistry`
    (tests, single process) and
    :class:`~backend_kit.discovery.consul.ConsulServiceRegistry`.
    Every method may raise :class:`~backend_kit.errors.RegistryUnavailableError`
    when the registry cannot be reached.
    """

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
        """Register (or, for a known ``service_id``, update) one instance of ``name``."""
        ...

    async def deregister_service(self, service_id: str) -> bool:
        """Remove an instance; ``False`` when the registry did not know ``service_id``."""
        ...

    async def update_ttl(
        self, service_id: str, status: CheckStatus = "passing", *, note: str | None = None
    ) -> bool:
        """Report the state of the instance's TTL check; ``False`` if it has none."""
        ...

    async def instances(self, name: str, *, tag: str | None = None) -> list[ServiceInstance]:
        """The instances of ``name`` whose every health check is passing."""
        ...

    async def discover_service(self, name: str, *, tag: str | None = None) -> list[str]:
        """The healthy instances of ``name`` as ``"address:port"`` strings."""
        ...

    async def choose(
        self, name: str, *, tag: str | None = None, strategy: ChooseStrategy = "round_robin"
    ) -> ServiceInstance:
        """One healthy instance (round-robin or random); raises ``NoHealthyInstanceError``."""
        ...

    def watch(self, name: str, *, tag: str | None = None) -> AsyncIterator[list[ServiceInstance]]:
        """Yield the healthy instances now, then again each time the list changes."""
        ...

    def registered(
        self,
        name: str,
        service_id: str,
        port: int,
        *,
        address: str | None = None,
        tags: Sequence[str] = (),
        meta: Mapping[str, str] | None = None,
        check: ServiceCheck | None = ...,
        heartbeat_interval: float | None = None,
    ) -> AbstractAsyncContextManager[None]:
        """Register for the duration of a ``async with`` block, heartbeating a TTL check."""
        ...

    async def aping(self) -> bool:
        """``True`` when the registry answers; raises ``RegistryUnavailableError`` otherwise."""
        ...

    async def aclose(self) -> None:
        """Release connections. Registrations are left as they are."""
        ...
