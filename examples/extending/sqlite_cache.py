"""A cache backend on SQLite (stdlib ``sqlite3``): the worked example of docs/extending.md.

It implements :class:`backend_kit.cache.CacheBackend`, so ``CacheManager``
uses it like Redis or memory: entries survive a restart and are shared by
the processes of one machine. The tests in ``tests/examples/test_extending.py``
hold it to the protocol's contract, and check that the page shows this exact code.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from backend_kit.errors import CacheBackendError

T = TypeVar("T")


class SqliteCache:
    """Cached bytes in a SQLite table, with expiry.

    Args:
        path: Database file; ``":memory:"`` for one process only.
        clock: Seconds since the epoch (default ``time.time``); inject one in tests.
    """

    def __init__(self, path: str = ":memory:", *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()  # one connection, shared by the worker threads
        self._db: sqlite3.Connection | None = sqlite3.connect(path, check_same_thread=False)
        with self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value BLOB, expires REAL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS cache_expires ON cache (expires)")

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        # The protocol's one rule for failures: raise CacheBackendError, never
        # the driver's error, so the manager can fail open.
        with self._lock:
            if self._db is None:
                raise CacheBackendError("the SQLite cache is closed")
            try:
                with self._db:  # one transaction per call
                    return work(self._db)
            except sqlite3.Error as exc:
                raise CacheBackendError(f"SQLite cache failed: {type(exc).__name__}") from exc

    def get(self, key: str) -> bytes | None:
        row = self._run(
            lambda db: db.execute(
                "SELECT value FROM cache WHERE key = ? AND expires > ?", (key, self._clock())
            ).fetchone()
        )
        return None if row is None else bytes(row[0])

    def set(self, key: str, value: bytes, ttl: float) -> None:
        def store(db: sqlite3.Connection) -> None:
            now = self._clock()
            db.execute("DELETE FROM cache WHERE expires <= ?", (now,))  # expired rows go here
            db.execute(
                "INSERT OR REPLACE INTO cache (key, value, expires) VALUES (?, ?, ?)",
                (key, value, now + ttl),
            )

        self._run(store)

    def delete(self, *keys: str) -> int:
        def remove(db: sqlite3.Connection) -> int:
            now = self._clock()
            return sum(
                db.execute("DELETE FROM cache WHERE key = ? AND expires > ?", (key, now)).rowcount
                for key in keys
            )

        return self._run(remove)

    def delete_prefix(self, prefix: str) -> int:
        # substr() instead of LIKE: '%' and '_' in a prefix are not wildcards.
        return self._run(
            lambda db: (
                db.execute(
                    "DELETE FROM cache WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
                ).rowcount
            )
        )

    def ping(self) -> bool:
        try:
            self._run(lambda db: db.execute("SELECT 1").fetchone())
        except CacheBackendError:
            return False
        return True

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # The async half: the same calls on a worker thread, so the loop never waits on disk.
    async def aget(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self.get, key)

    async def aset(self, key: str, value: bytes, ttl: float) -> None:
        await asyncio.to_thread(self.set, key, value, ttl)

    async def adelete(self, *keys: str) -> int:
        return await asyncio.to_thread(self.delete, *keys)

    async def adelete_prefix(self, prefix: str) -> int:
        return await asyncio.to_thread(self.delete_prefix, prefix)

    async def aping(self) -> bool:
        return await asyncio.to_thread(self.ping)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)
