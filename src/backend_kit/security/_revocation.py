"""Where revoked token ids and used refresh tokens are remembered until they expire."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["MemoryRevocationStore", "RevocationStore"]


@runtime_checkable
class RevocationStore(Protocol):
    """Remembers keys (revoked token ids, families, used refresh tokens) until a deadline.

    Keys are opaque strings chosen by :class:`SecurityManager` (``jti:…``,
    ``fam:…``, ``used:…``). ``expires_at`` is a Unix time in seconds: the store
    may forget the key after it, because the token it concerns is expired by
    then. Every method has an async twin; implementations raise
    :class:`~backend_kit.errors.RevocationStoreError` when their backend fails.
    """

    def revoke(self, key: str, *, expires_at: int) -> None:
        """Remember ``key`` as revoked until ``expires_at``."""
        ...

    def is_revoked(self, *keys: str) -> bool:
        """True when any of ``keys`` is revoked (one round trip for all of them)."""
        ...

    def mark_used(self, key: str, *, expires_at: int) -> bool:
        """Atomically record ``key`` as used; True only for the first caller."""
        ...

    async def arevoke(self, key: str, *, expires_at: int) -> None:
        """Async :meth:`revoke`."""
        ...

    async def ais_revoked(self, *keys: str) -> bool:
        """Async :meth:`is_revoked`."""
        ...

    async def amark_used(self, key: str, *, expires_at: int) -> bool:
        """Async :meth:`mark_used`."""
        ...


class MemoryRevocationStore:
    """In-process store: a dict of key -> expiry, thread-safe, self-cleaning.

    Right for a single process and for tests. Several processes or hosts need
    a shared store (:class:`backend_kit.security.redis.RedisRevocationStore`),
    or a token revoked in one process stays valid in the others.

    Args:
        clock: returns the current Unix time in seconds (default ``time.time``).
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._entries: dict[str, int] = {}
        self._lock = threading.Lock()
        # Expired entries are swept when the dict doubles since the last sweep,
        # so cleaning costs O(1) amortised per write and memory stays bounded
        # by twice the number of live entries.
        self._sweep_at = 1024

    def __len__(self) -> int:
        """Number of remembered keys (expired ones included until the next sweep)."""
        return len(self._entries)

    def revoke(self, key: str, *, expires_at: int) -> None:
        """Remember ``key`` until ``expires_at`` (a later call replaces the deadline)."""
        with self._lock:
            self._entries[key] = expires_at
            self._maybe_sweep()

    def is_revoked(self, *keys: str) -> bool:
        """True when any of ``keys`` is remembered and not yet past its deadline."""
        entries = self._entries
        # Lock-free read: dict.get is atomic under the GIL, and this is the
        # token-decoding hot path.
        now: float | None = None
        for key in keys:
            deadline = entries.get(key)
            if deadline is not None:
                if now is None:
                    now = self._clock()
                if deadline > now:
                    return True
        return False

    def mark_used(self, key: str, *, expires_at: int) -> bool:
        """Record ``key``; True when it was not already recorded (and live)."""
        with self._lock:
            deadline = self._entries.get(key)
            if deadline is not None and deadline > self._clock():
                return False
            self._entries[key] = expires_at
            self._maybe_sweep()
            return True

    async def arevoke(self, key: str, *, expires_at: int) -> None:
        """Same as :meth:`revoke` (no I/O, so it does not yield)."""
        self.revoke(key, expires_at=expires_at)

    async def ais_revoked(self, *keys: str) -> bool:
        """Same as :meth:`is_revoked`."""
        return self.is_revoked(*keys)

    async def amark_used(self, key: str, *, expires_at: int) -> bool:
        """Same as :meth:`mark_used`."""
        return self.mark_used(key, expires_at=expires_at)

    def clear(self) -> None:
        """Forget everything (for tests)."""
        with self._lock:
            self._entries.clear()

    def _maybe_sweep(self) -> None:
        if len(self._entries) < self._sweep_at:
            return
        now = self._clock()
        self._entries = {key: when for key, when in self._entries.items() if when > now}
        self._sweep_at = max(1024, 2 * len(self._entries))
