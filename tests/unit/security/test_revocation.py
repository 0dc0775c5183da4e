"""The memory revocation store: the shared contract, expiry and self-cleaning."""

from __future__ import annotations

import threading

import pytest

from backend_kit.errors import ConfigurationError
from backend_kit.security import MemoryRevocationStore
from tests.unit.security.conftest import START, FakeClock
from tests.unit.security.revocation_contract import (
    check_async_contract,
    check_expired_entries_are_forgotten,
    check_sync_contract,
)


def test_memory_store_contract() -> None:
    check_sync_contract(MemoryRevocationStore())


def test_memory_store_forgets_expired_entries() -> None:
    check_expired_entries_are_forgotten(MemoryRevocationStore())


async def test_memory_store_async_contract() -> None:
    await check_async_contract(MemoryRevocationStore())


def test_entries_expire_with_the_clock() -> None:
    clock = FakeClock()
    store = MemoryRevocationStore(clock=clock)
    store.revoke("jti:a", expires_at=int(START) + 10)
    assert store.is_revoked("jti:a")
    clock.advance(10)
    assert not store.is_revoked("jti:a")
    assert store.mark_used("jti:a", expires_at=int(START) + 100)


def test_expired_entries_are_swept_so_memory_stays_bounded() -> None:
    clock = FakeClock()
    store = MemoryRevocationStore(clock=clock)
    for number in range(5000):
        store.revoke(f"jti:{number}", expires_at=int(clock.now) + 1)
        clock.advance(0.01)  # each entry lives one second
    # Without sweeping, 5000 entries would be kept; only about the last
    # second's worth (100) is live, and sweeps keep the dict near that.
    assert len(store) < 2100
    store.clear()
    assert len(store) == 0


def test_mark_used_is_atomic_across_threads() -> None:
    store = MemoryRevocationStore()
    winners: list[bool] = []
    barrier = threading.Barrier(16)

    def claim() -> None:
        barrier.wait()
        winners.append(store.mark_used("used:one", expires_at=2**40))

    threads = [threading.Thread(target=claim) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert winners.count(True) == 1
    assert winners.count(False) == 15


@pytest.mark.parametrize("url", ["redis://:pw123@host:abc/0", "redis://:pw123@[::1/0"])
def test_redis_store_with_a_malformed_url_is_a_configuration_error(url: str) -> None:
    # Else redis-py's bare ValueError would surface from the first token check.
    from backend_kit.security.redis import RedisRevocationStore

    with pytest.raises(ConfigurationError) as raised:
        RedisRevocationStore(url)
    assert "pw123" not in str(raised.value)
