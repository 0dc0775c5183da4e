"""The worked example of docs/extending.md: a CacheBackend on SQLite, held to the protocol's contract."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from examples.extending import sqlite_cache
from examples.extending.sqlite_cache import SqliteCache

from backend_kit.cache import CacheBackend, CacheManager
from backend_kit.errors import CacheBackendError

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, clock: Clock, tmp_path: Path) -> Iterator[SqliteCache]:
    path = ":memory:" if request.param == "memory" else str(tmp_path / "cache.db")
    cache = SqliteCache(path, clock=clock)
    yield cache
    cache.close()


def test_the_page_shows_the_tested_code() -> None:
    page = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.DOTALL)
    source = Path(sqlite_cache.__file__).read_text(encoding="utf-8")
    assert source[source.index("import asyncio") :] in blocks


def test_it_is_a_cache_backend(store: SqliteCache) -> None:
    assert isinstance(store, CacheBackend)


def test_get_set_replace_and_expiry(store: SqliteCache, clock: Clock) -> None:
    assert store.get("k") is None
    store.set("k", b"\x00binary\xff", ttl=10)
    assert store.get("k") == b"\x00binary\xff"
    store.set("k", b"new", ttl=10)
    assert store.get("k") == b"new"
    clock.now += 9.9
    assert store.get("k") == b"new"
    clock.now += 0.2
    assert store.get("k") is None


def test_delete_counts_live_keys_only(store: SqliteCache, clock: Clock) -> None:
    store.set("a", b"1", ttl=10)
    store.set("b", b"2", ttl=1)
    clock.now += 2
    assert store.delete("a", "b", "missing") == 1
    assert store.get("a") is None


def test_delete_prefix_takes_wildcards_literally(store: SqliteCache) -> None:
    for key in ("ns:1", "ns:2", "ns%:3", "n_:4", "other:5"):
        store.set(key, b"v", ttl=10)
    assert store.delete_prefix("ns%") == 1
    assert store.delete_prefix("n_") == 1
    assert store.delete_prefix("ns:") == 2
    assert store.get("other:5") == b"v"


def test_hostile_keys_are_data(store: SqliteCache) -> None:
    key = "x'); DROP TABLE cache; --"
    store.set(key, b"v", ttl=10)
    assert store.get(key) == b"v"
    assert store.get("other") is None


def test_a_closed_store_raises_only_cache_backend_error(store: SqliteCache) -> None:
    assert store.ping()
    store.close()
    store.close()  # safe twice
    assert not store.ping()
    with pytest.raises(CacheBackendError):
        store.get("k")
    with pytest.raises(CacheBackendError):
        store.set("k", b"v", ttl=1)


def test_a_file_is_shared_between_instances(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    writer, reader = SqliteCache(path), SqliteCache(path)
    try:
        writer.set("k", b"v", ttl=60)
        assert reader.get("k") == b"v"
    finally:
        writer.close()
        reader.close()


async def test_the_async_half(store: SqliteCache) -> None:
    await store.aset("k", b"v", ttl=10)
    assert await store.aget("k") == b"v"
    assert await store.adelete_prefix("k") == 1
    assert await store.adelete("k") == 0
    assert await store.aping()
    await store.aclose()
    assert not await store.aping()


async def test_cache_manager_caches_on_it_and_fails_open(store: SqliteCache) -> None:
    manager = CacheManager(store, namespace="extending")
    calls: list[int] = []

    @manager.cache_result(ttl=60)
    async def square(x: int) -> int:
        calls.append(x)
        return x * x

    assert [await square(3), await square(3)] == [9, 9]
    assert calls == [3]
    assert manager.stats().hits == 1
    store.close()
    assert await square(3) == 9  # the backend is gone: computed, no exception
    assert calls == [3, 3]
