"""Result caching for sync and async functions, on Redis or in memory.

::

    from backend_kit.cache import CacheManager, MemoryCache

    cache = CacheManager(MemoryCache(), namespace="app")

    @cache.cache_result(ttl=60)
    async def get_user(user_id: int) -> dict[str, object]: ...

One backend round trip per hit; one computation per stampede; and when the
backend fails, the call runs the function instead (fail open). The Redis
backend lives in :mod:`backend_kit.cache.redis` (extra ``redis``).
"""

from __future__ import annotations

from backend_kit.cache._keys import UnkeyableArgumentError, canonical_text
from backend_kit.cache._manager import CacheDecorator, CacheManager
from backend_kit.cache._memory import MemoryCache
from backend_kit.cache._protocols import (
    CacheBackend,
    CacheEvent,
    CacheHooks,
    LockingCacheBackend,
    Outcome,
    Serializer,
)
from backend_kit.cache._serializers import JsonSerializer, PickleSerializer, SignedSerializer
from backend_kit.cache._stats import CacheStats
from backend_kit.cache._wrappers import AsyncCachedFunction, CachedFunction
from backend_kit.errors import CacheBackendError, CacheError

__all__ = [
    "AsyncCachedFunction",
    "CacheBackend",
    "CacheBackendError",
    "CacheDecorator",
    "CacheError",
    "CacheEvent",
    "CacheHooks",
    "CacheManager",
    "CacheStats",
    "CachedFunction",
    "JsonSerializer",
    "LockingCacheBackend",
    "MemoryCache",
    "Outcome",
    "PickleSerializer",
    "Serializer",
    "SignedSerializer",
    "UnkeyableArgumentError",
    "canonical_text",
]
