"""CacheManager configuration, serializers, MemoryCache and the fail-open cool-down."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend_kit.cache import (
    CacheBackendError,
    CacheEvent,
    CacheHooks,
    CacheManager,
    JsonSerializer,
    MemoryCache,
    PickleSerializer,
    SignedSerializer,
)
from backend_kit.errors import ConfigurationError

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=15,
)


@pytest.mark.parametrize("use_orjson", [True, False])
@given(value=json_values)
def test_json_native_values_round_trip(use_orjson: bool, value: Any) -> None:
    serializer = JsonSerializer(use_orjson=use_orjson)
    assert serializer.loads(serializer.dumps(value)) == value


@pytest.mark.parametrize("use_orjson", [True, False])
@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        [float("inf")],
        {1: "int key"},
        {"when": __import__("datetime").date.today()},
        {1, 2},
    ],
)
def test_json_refuses_what_would_not_round_trip(use_orjson: bool, value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        JsonSerializer(use_orjson=use_orjson).dumps(value)


def test_signed_serializer_verifies_and_rotates() -> None:
    old = SignedSerializer(JsonSerializer(), "old-secret-0123456789")
    new = SignedSerializer(
        JsonSerializer(), "new-secret-0123456789", old_secrets=["old-secret-0123456789"]
    )
    assert new.loads(old.dumps({"a": 1})) == {"a": 1}
    with pytest.raises(ValueError, match="signature"):
        old.loads(new.dumps({"a": 1}))
    with pytest.raises(ValueError, match="16 bytes"):
        PickleSerializer("short")
    pickled = PickleSerializer(b"k" * 16)
    assert pickled.loads(pickled.dumps({1, 2})) == {1, 2}
    with pytest.raises(ValueError, match="signature"):
        pickled.loads(b"\x00" * 40)


@pytest.mark.parametrize("ttl", [0, -1, timedelta(0), float("nan")])
def test_non_positive_ttl_is_refused_at_decoration(ttl: Any) -> None:
    manager = CacheManager(MemoryCache())
    with pytest.raises(ValueError, match="ttl"):
        manager.cache_result(ttl=ttl)


def test_ttl_forms_and_other_validation() -> None:
    manager = CacheManager(MemoryCache(), default_ttl=timedelta(minutes=2))
    assert manager.default_ttl == 120
    manager.cache_result(ttl=timedelta(seconds=5))
    manager.cache_result(ttl=0.5)
    with pytest.raises(TypeError):
        manager.cache_result(ttl=True)
    with pytest.raises(ValueError, match="early_refresh"):
        manager.cache_result(ttl=5, early_refresh=5)
    with pytest.raises(ValueError, match="namespace"):
        CacheManager(MemoryCache(), namespace="")


def test_from_url_and_from_env(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    memory = CacheManager.from_url("memory://?max_entries=5")
    assert isinstance(memory.backend, MemoryCache)
    assert memory.backend.max_entries == 5
    with pytest.raises(ConfigurationError, match="scheme"):
        CacheManager.from_url("memcached://:secret@host/")
    with pytest.raises(ConfigurationError) as info:
        CacheManager.from_url("ftp://user:pw123@host/")
    assert "pw123" not in str(info.value)
    redis_manager = CacheManager.from_url("redis://:pw@127.0.0.1:6379/3", max_connections=3)
    assert ":pw@" not in repr(redis_manager.backend)
    assert ":***@" in repr(redis_manager.backend)
    monkeypatch.delenv("REDIS_URL", raising=False)
    with caplog.at_level(logging.WARNING, logger="backend_kit.cache"):
        fallback = CacheManager.from_env()
    assert isinstance(fallback.backend, MemoryCache)
    assert "REDIS_URL is not set" in caplog.text
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert type(CacheManager.from_env().backend).__name__ == "RedisCache"


@pytest.mark.parametrize(
    "url",
    [
        "memory://:pw123@x?max_entries=abc",  # a bad option: the error must not echo the URL
        "redis://:pw123@host:port/0",  # a bad port: caught here, not at the first cache call
        "redis://:pw123@[::1/0",  # an unclosed IPv6 bracket
    ],
)
def test_a_malformed_url_is_a_configuration_error_without_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        CacheManager.from_url(url)
    assert "pw123" not in str(info.value)


def test_memory_cache_ttl_and_lru() -> None:
    cache = MemoryCache(max_entries=2)
    cache.set("a", b"1", 10)
    cache.set("b", b"2", 10)
    assert cache.get("a") == b"1"  # a is now the most recently used
    cache.set("c", b"3", 10)
    assert cache.get("b") is None  # b was the least recently used
    assert cache.get("a") == b"1"
    cache.set("short", b"x", 0.05)
    time.sleep(0.08)
    assert cache.get("short") is None
    assert cache.delete("a", "missing") == 1
    with pytest.raises(ValueError, match="max_entries"):
        MemoryCache(max_entries=0)


def test_memory_cache_is_thread_safe() -> None:
    cache = MemoryCache(max_entries=50)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(2000):
                key = f"k{(n * 7 + i) % 80}"
                cache.set(key, str(i).encode(), 5)
                value = cache.get(key)
                assert value is None or value.isdigit()
                if i % 100 == 0:
                    cache.delete_prefix("k1")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert len(cache) <= 50


def test_memory_lock_is_exclusive_until_released_or_expired() -> None:
    cache = MemoryCache()
    token = cache.lock("l", 10)
    assert token is not None
    assert cache.lock("l", 10) is None
    cache.unlock("l", "wrong")
    assert cache.lock("l", 10) is None
    cache.unlock("l", token)
    assert cache.lock("l", 0.05) is not None
    time.sleep(0.08)
    assert cache.lock("l", 10) is not None
    cache.set("v", b"1", 10)
    assert cache.wait_for_value("v", "free", 1) == b"1"


class BrokenBackend(MemoryCache):
    """Every call fails, as a dead Redis would; counts the attempts."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0
        self.broken = True

    def get(self, key: str) -> bytes | None:
        self.attempts += 1
        if self.broken:
            raise CacheBackendError("down")
        return super().get(key)

    def set(self, key: str, value: bytes, ttl: float) -> None:
        self.attempts += 1
        if self.broken:
            raise CacheBackendError("down")
        super().set(key, value, ttl)

    async def aget(self, key: str) -> bytes | None:
        return self.get(key)

    async def aset(self, key: str, value: bytes, ttl: float) -> None:
        self.set(key, value, ttl)


class ErrorRecorder(CacheHooks):
    def __init__(self) -> None:
        self.errors: list[CacheEvent] = []

    def on_error(self, event: CacheEvent) -> None:
        self.errors.append(event)


def test_fail_open_cools_down_then_probes(caplog: pytest.LogCaptureFixture) -> None:
    backend = BrokenBackend()
    hooks = ErrorRecorder()
    manager = CacheManager(backend, cooldown=0.2, hooks=hooks)

    @manager.cache_result(ttl=30)
    def double(n: int) -> int:
        return n * 2

    with caplog.at_level(logging.WARNING, logger="backend_kit.cache"):
        assert [double(n) for n in range(100)] == [n * 2 for n in range(100)]
    assert backend.attempts == 1  # one failure, then the cool-down skips the backend
    assert caplog.text.count("cache backend failed") == 1  # one warning per interval
    stats = double.stats()
    assert (stats.errors, stats.bypassed, stats.computations) == (1, 99, 100)
    assert [e.outcome for e in hooks.errors] == ["error"]
    assert isinstance(hooks.errors[0].error, CacheBackendError)
    backend.broken = False
    time.sleep(0.25)
    assert double(1) == 2  # the probe succeeds: caching resumes
    assert double(1) == 2
    assert double.stats().hits == 1


async def test_async_fail_open_and_invalidate_raises() -> None:
    backend = BrokenBackend()
    manager = CacheManager(backend, cooldown=10)

    @manager.cache_result(ttl=30)
    async def double(n: int) -> int:
        return n * 2

    assert await asyncio.gather(*(double(n) for n in range(10))) == [n * 2 for n in range(10)]
    assert backend.attempts == 1

    class DownOnDelete(MemoryCache):
        def delete(self, *keys: str) -> int:
            raise CacheBackendError("down")

    strict = CacheManager(DownOnDelete())

    @strict.cache_result(ttl=30)
    def value() -> int:
        return 1

    with pytest.raises(CacheBackendError):
        value.invalidate()  # an invalidation that did not happen is never silent


def test_lock_needs_a_locking_backend() -> None:
    class Plain:
        def get(self, key: str) -> bytes | None:
            return None

    manager = CacheManager(Plain())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lock=True"):
        manager.cache_result(ttl=5, lock=True)


def test_wrapper_keeps_metadata_and_hook_errors_are_contained(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Exploding:
        def on_hit(self, event: object) -> None:
            raise RuntimeError("hook bug")

        def on_miss(self, event: object) -> None:
            raise RuntimeError("hook bug")

        def on_error(self, event: object) -> None:
            return None

    manager = CacheManager(MemoryCache(), hooks=Exploding())

    @manager.cache_result(ttl=5)
    def documented(x: int) -> int:
        """Doubles x."""
        return x * 2

    assert documented.__name__ == "documented"
    assert documented.__doc__ == "Doubles x."
    import inspect

    assert list(inspect.signature(documented).parameters) == ["x"]
    with caplog.at_level(logging.ERROR, logger="backend_kit.cache"):
        assert documented(2) == 4
        assert documented(2) == 4
    assert "hook" in caplog.text


class Moody:
    """A custom serializer that fails in ways the protocol does not promise."""

    def dumps(self, value: Any) -> bytes:
        if value == "refuse":
            raise RuntimeError("cannot store this")
        return str(value).encode()

    def loads(self, data: bytes) -> Any:
        if data == b"poison":
            raise KeyError("bad data")
        return data.decode()


async def test_any_serializer_failure_is_a_miss_or_uncached_never_a_hang() -> None:
    backend = MemoryCache()
    manager = CacheManager(backend, serializer=Moody())
    calls = 0

    @manager.cache_result(ttl=30)
    async def value(mode: str) -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return mode

    backend.set(value.cache_key("ok"), b"poison", 30)
    assert await asyncio.gather(*(value("ok") for _ in range(5))) == ["ok"] * 5
    assert calls == 1
    assert await asyncio.wait_for(value("ok"), 1) == "ok"  # the key is not stranded
    assert await value("refuse") == "refuse"  # returned, uncached
    assert await value("refuse") == "refuse"
    assert calls == 3
    assert value.stats().corrupt == 1
    assert value.stats().unserializable == 2


def test_redis_cache_with_a_malformed_url_is_a_configuration_error() -> None:
    from backend_kit.cache.redis import RedisCache

    with pytest.raises(ConfigurationError) as raised:
        RedisCache("redis://:pw123@host:abc/0")
    assert "pw123" not in str(raised.value)
