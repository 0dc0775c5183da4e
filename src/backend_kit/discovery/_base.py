"""Behaviour every registry shares: choosing, ``address:port`` lists, ``registered``."""

from __future__ import annotations

import abc
import asyncio
import itertools
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Final, Self

from backend_kit.discovery._models import CheckStatus, ServiceCheck, ServiceInstance, TtlCheck
from backend_kit.discovery._protocol import ChooseStrategy
from backend_kit.errors import (
    ConfigurationError,
    DiscoveryError,
    NoHealthyInstanceError,
    RegistryUnavailableError,
)

__all__ = ["DEFAULT_REGISTERED_CHECK", "BaseServiceRegistry", "logger"]

logger = logging.getLogger("backend_kit.discovery")

DEFAULT_REGISTERED_CHECK: Final = TtlCheck(ttl="15s", deregister_after="1m")
"""The check ``registered`` uses unless told otherwise: heartbeated every 5 s."""


class BaseServiceRegistry(abc.ABC):
    """Shared half of a :class:`~backend_kit.discovery.ServiceRegistry`.

    Subclasses implement the five primitives (register, deregister, update_ttl,
    instances, watch) plus ``aping``/``aclose``; this class builds
    ``discover_service``, ``choose`` and ``registered`` on them.
    """

    def __init__(self) -> None:
        self._round_robin: dict[tuple[str, str | None], itertools.count[int]] = {}

    # ------------------------------------------------------------ primitives
    @abc.abstractmethod
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

    @abc.abstractmethod
    async def deregister_service(self, service_id: str) -> bool:
        """Remove an instance; ``False`` when the registry did not know ``service_id``."""

    @abc.abstractmethod
    async def update_ttl(
        self, service_id: str, status: CheckStatus = "passing", *, note: str | None = None
    ) -> bool:
        """Report the state of the instance's TTL check; ``False`` if it has none."""

    @abc.abstractmethod
    async def instances(self, name: str, *, tag: str | None = None) -> list[ServiceInstance]:
        """The instances of ``name`` whose every health check is passing, by ``service_id``."""

    @abc.abstractmethod
    def watch(self, name: str, *, tag: str | None = None) -> AsyncIterator[list[ServiceInstance]]:
        """Yield the healthy instances now, then again each time the list changes."""

    @abc.abstractmethod
    async def aping(self) -> bool:
        """``True`` when the registry answers; raises ``RegistryUnavailableError`` otherwise."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release connections and background tasks. Registrations are left as they are."""

    # --------------------------------------------------------------- derived
    async def discover_service(self, name: str, *, tag: str | None = None) -> list[str]:
        """The healthy instances of ``name`` as ``"address:port"`` strings, by ``service_id``."""
        return [instance.endpoint for instance in await self.instances(name, tag=tag)]

    async def choose(
        self, name: str, *, tag: str | None = None, strategy: ChooseStrategy = "round_robin"
    ) -> ServiceInstance:
        """One healthy instance of ``name``.

        ``round_robin`` (the default) cycles through the instances in
        ``service_id`` order, one counter per ``(name, tag)``; ``random`` picks
        uniformly. Raises :class:`~backend_kit.errors.NoHealthyInstanceError`
        when no instance is passing.
        """
        candidates = await self.instances(name, tag=tag)
        if not candidates:
            raise NoHealthyInstanceError(f"no healthy instance of service {name!r}")
        if strategy == "random":
            # Load spreading, not security: the stdlib generator is the right tool.
            return random.choice(candidates)  # noqa: S311
        if strategy != "round_robin":
            raise ConfigurationError(f"unknown choose strategy {strategy!r}")
        counter = self._round_robin.setdefault((name, tag), itertools.count())
        return candidates[next(counter) % len(candidates)]

    @asynccontextmanager
    async def registered(
        self,
        name: str,
        service_id: str,
        port: int,
        *,
        address: str | None = None,
        tags: Sequence[str] = (),
        meta: Mapping[str, str] | None = None,
        check: ServiceCheck | None = DEFAULT_REGISTERED_CHECK,
        heartbeat_interval: float | None = None,
    ) -> AsyncIterator[None]:
        """Register on entry, keep a TTL check passing, deregister on exit.

        The graceful-shutdown path: the instance is deregistered when the block
        ends, also when it raises or is cancelled. With a :class:`TtlCheck`
        (the default, ``ttl="15s"``) a background task marks the check passing
        right away and then every ``heartbeat_interval`` seconds (default a
        third of the TTL), so the instance turns critical within one TTL if
        the process hangs. A heartbeat that finds the check gone (an agent
        restart lost it) registers the instance again.

        Raises :class:`~backend_kit.errors.RegistryUnavailableError` on entry
        when the registry cannot be reached. A failed deregistration on exit
        is logged, not raised: the TTL (and ``deregister_after``) still take
        the instance out of rotation.
        """

        async def register() -> None:
            await self.register_service(
                name, service_id, port, address=address, tags=tags, meta=meta, check=check
            )

        await register()
        heartbeat: asyncio.Task[None] | None = None
        try:
            if isinstance(check, TtlCheck):
                interval = heartbeat_interval or check.ttl_seconds / 3
                if interval <= 0:
                    raise ConfigurationError("heartbeat_interval must be positive")
                # A new TTL check starts critical: report in before serving.
                await self.update_ttl(service_id, "passing")
                heartbeat = asyncio.create_task(
                    self._heartbeat(service_id, interval, register),
                    name=f"backend_kit.discovery heartbeat {service_id}",
                )
                heartbeat.add_done_callback(_report_heartbeat_end)
            yield
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
                # Collects the heartbeat's CancelledError without re-raising it here.
                await asyncio.gather(heartbeat, return_exceptions=True)
            await self._deregister_quietly(service_id)

    async def _deregister_on_exit(self, service_id: str) -> None:
        """The deregistration when ``registered`` ends (Consul's skips its circuit breaker)."""
        await self.deregister_service(service_id)

    async def _deregister_quietly(self, service_id: str) -> None:
        try:
            await self._deregister_on_exit(service_id)
        except DiscoveryError as exc:
            logger.warning(
                "could not deregister %s on exit (%s); its health check will take it out of rotation",
                service_id,
                exc,
            )

    async def _heartbeat(
        self, service_id: str, interval: float, register: Callable[[], Awaitable[None]]
    ) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                if not await self.update_ttl(service_id, "passing"):
                    logger.warning(
                        "the registry no longer knows %s (agent restarted?); registering it again",
                        service_id,
                    )
                    await register()
                    await self.update_ttl(service_id, "passing")
            except RegistryUnavailableError as exc:
                logger.warning(
                    "heartbeat for %s failed (%s); retrying in %.1f s", service_id, exc, interval
                )
            except DiscoveryError as exc:
                logger.error(
                    "heartbeat for %s refused (%s); retrying in %.1f s", service_id, exc, interval
                )

    # ------------------------------------------------------- context manager
    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _report_heartbeat_end(task: asyncio.Task[None]) -> None:
    """A heartbeat only ends by cancellation; anything else must not pass unseen."""
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        logger.error(
            "%s stopped: %s: %s; the instance will go critical when its TTL runs out",
            task.get_name(),
            type(error).__name__,
            error,
        )
