"""MemoryCache: an in-process backend with TTL and LRU eviction."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import OrderedDict

__all__ = ["MemoryCache"]

_WAIT_FIRST_SLEEP = 0.001  # seconds; async waiters back off from here...
_WAIT_MAX_SLEEP = 0.05  # ...to here (bounded backoff, never a busy loop)


class MemoryCache:
    """A process-local cache backend: entries expire after their TTL, and the
    least recently used entry is evicted past ``max_entries``.

    Safe under threads and asyncio (every operation is a short critical
    section under one ``threading.Lock`` and never awaits while holding it).
    It stores the serialized bytes, as Redis would, so a caller mutating a
    result never changes what the next caller gets. Use it in tests, in a
    single process, or as a fallback; it implements the full
    :class:`~backend_kit.cache.LockingCacheBackend` protocol (its lock is
    process-local, which is all one process needs).

    Args:
        max_entries: how many entries to keep before evicting the least
            recently used (default 10,000).

    Raises:
        ValueError: ``max_entries`` < 1.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.max_entries = max_entries
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._locks: dict[str, tuple[str, float]] = {}
        self._mutex = threading.Lock()
        self._released = threading.Condition(self._mutex)

    def __repr__(self) -> str:
        return f"MemoryCache(max_entries={self.max_entries}, entries={len(self._data)})"

    def __len__(self) -> int:
        return len(self._data)

    # --------------------------------------------------------------- core
    def get(self, key: str) -> bytes | None:
        with self._mutex:
            entry = self._data.get(key)
            if entry is None:
                return None
            if entry[0] <= time.monotonic():
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return entry[1]

    async def aget(self, key: str) -> bytes | None:
        return self.get(key)

    def set(self, key: str, value: bytes, ttl: float) -> None:
        expires = time.monotonic() + ttl
        with self._mutex:
            data = self._data
            data[key] = (expires, value)
            data.move_to_end(key)
            while len(data) > self.max_entries:
                data.popitem(last=False)

    async def aset(self, key: str, value: bytes, ttl: float) -> None:
        self.set(key, value, ttl)

    def delete(self, *keys: str) -> int:
        now = time.monotonic()
        removed = 0
        with self._mutex:
            for key in keys:
                entry = self._data.pop(key, None)
                if entry is not None and entry[0] > now:
                    removed += 1
        return removed

    async def adelete(self, *keys: str) -> int:
        return self.delete(*keys)

    def delete_prefix(self, prefix: str) -> int:
        with self._mutex:
            doomed = [key for key in self._data if key.startswith(prefix)]
            for key in doomed:
                del self._data[key]
        return len(doomed)

    async def adelete_prefix(self, prefix: str) -> int:
        return self.delete_prefix(prefix)

    def ping(self) -> bool:
        return True

    async def aping(self) -> bool:
        return True

    def close(self) -> None:
        """Drop every entry."""
        with self._mutex:
            self._data.clear()

    async def aclose(self) -> None:
        self.close()

    # -------------------------------------------------------------- locks
    def lock(self, name: str, ttl: float) -> str | None:
        now = time.monotonic()
        with self._mutex:
            held = self._locks.get(name)
            if held is not None and held[1] > now:
                return None
            token = uuid.uuid4().hex
            self._locks[name] = (token, now + ttl)
            return token

    async def alock(self, name: str, ttl: float) -> str | None:
        return self.lock(name, ttl)

    def unlock(self, name: str, token: str) -> None:
        with self._released:
            held = self._locks.get(name)
            if held is not None and held[0] == token:
                del self._locks[name]
            self._released.notify_all()

    async def aunlock(self, name: str, token: str) -> None:
        self.unlock(name, token)

    def _held(self, name: str) -> bool:
        held = self._locks.get(name)
        return held is not None and held[1] > time.monotonic()

    def wait_for_value(self, key: str, lock_name: str, max_wait: float) -> bytes | None:
        deadline = time.monotonic() + max_wait
        with self._released:
            while self._held(lock_name):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._released.wait(remaining)
        return self.get(key)

    async def await_for_value(self, key: str, lock_name: str, max_wait: float) -> bytes | None:
        deadline = time.monotonic() + max_wait
        pause = _WAIT_FIRST_SLEEP
        while True:
            with self._mutex:
                held = self._held(lock_name)
            remaining = deadline - time.monotonic()
            if not held or remaining <= 0:
                return self.get(key)
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, _WAIT_MAX_SLEEP)
