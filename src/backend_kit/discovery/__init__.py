"""Service discovery: register instances with health checks, discover the healthy ones.

The :class:`ServiceRegistry` protocol has two implementations:
:class:`InMemoryServiceRegistry` here (tests, demos, one process) and
``backend_kit.discovery.consul.ConsulServiceRegistry`` (extra ``consul``), which
this package does not import, so ``import backend_kit.discovery`` needs no extra.

>>> import asyncio
>>> async def main() -> list[str]:
...     registry = InMemoryServiceRegistry()
...     await registry.register_service("api", "api-1", 8080, address="10.0.0.5")
...     return await registry.discover_service("api")
>>> asyncio.run(main())
['10.0.0.5:8080']
"""

from __future__ import annotations

from backend_kit.discovery._base import BaseServiceRegistry
from backend_kit.discovery._cache import StaleWhileUnavailableCache
from backend_kit.discovery._memory import InMemoryServiceRegistry
from backend_kit.discovery._models import (
    CheckStatus,
    HttpCheck,
    ServiceCheck,
    ServiceInstance,
    TtlCheck,
    parse_duration,
)
from backend_kit.discovery._protocol import ChooseStrategy, ServiceRegistry
from backend_kit.errors import DiscoveryError, NoHealthyInstanceError, RegistryUnavailableError

__all__ = [
    "BaseServiceRegistry",
    "CheckStatus",
    "ChooseStrategy",
    "DiscoveryError",
    "HttpCheck",
    "InMemoryServiceRegistry",
    "NoHealthyInstanceError",
    "RegistryUnavailableError",
    "ServiceCheck",
    "ServiceInstance",
    "ServiceRegistry",
    "StaleWhileUnavailableCache",
    "TtlCheck",
    "parse_duration",
]
