"""RedisRevocationStore against the real Redis: the shared contract, TTLs, manager end to end."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio as aioredis

from backend_kit.errors import ConfigurationError, RevocationStoreError, RevokedTokenError
from backend_kit.security import SecurityManager
from backend_kit.security.redis import RedisRevocationStore
from tests.unit.security.revocation_contract import (
    check_async_contract,
    check_expired_entries_are_forgotten,
    check_sync_contract,
)

SECRET = "integration-secret-0123456789abcdef-0123456789"


def _cleanup(redis_url: str, prefix: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)


@pytest.fixture
def prefix(unique_name: str) -> str:
    return f"{unique_name}:"


@pytest.fixture
def store(redis_url: str, prefix: str) -> Iterator[RedisRevocationStore]:
    with RedisRevocationStore(redis_url, key_prefix=prefix) as redis_store:
        yield redis_store
    _cleanup(redis_url, prefix)


@pytest.fixture
async def async_store(redis_url: str, prefix: str) -> AsyncIterator[RedisRevocationStore]:
    async with RedisRevocationStore(redis_url, key_prefix=prefix) as redis_store:
        yield redis_store
    _cleanup(redis_url, prefix)


def test_redis_store_contract(store: RedisRevocationStore) -> None:
    check_sync_contract(store)


def test_redis_store_forgets_expired_entries(store: RedisRevocationStore) -> None:
    check_expired_entries_are_forgotten(store)


async def test_redis_store_async_contract(async_store: RedisRevocationStore) -> None:
    await check_async_contract(async_store)


def test_keys_expire_with_the_token(
    store: RedisRevocationStore, redis_url: str, prefix: str
) -> None:
    expires_at = int(time.time()) + 120
    store.revoke("jti:abc", expires_at=expires_at)
    store.mark_used("used:abc", expires_at=expires_at)
    with redis.Redis.from_url(redis_url) as client:
        for key in ("jti:abc", "used:abc"):
            ttl = client.ttl(prefix + key)
            assert 100 < ttl <= 120, key  # Redis drops them on its own


def test_manager_with_redis_store_end_to_end(store: RedisRevocationStore, prefix: str) -> None:
    security = SecurityManager(secret_key=SECRET, revocation_store=store)
    # A second "process" sharing the store sees revocations and reuse.
    other_process = SecurityManager(secret_key=SECRET, revocation_store=store)
    pair = security.create_token_pair({"sub": "user-42"})
    rotated = security.refresh(pair.refresh_token)
    with pytest.raises(RevokedTokenError, match="already used"):
        other_process.refresh(pair.refresh_token)
    with pytest.raises(RevokedTokenError):
        other_process.decode_access_token(rotated.access_token)
    token = security.create_access_token({"sub": "user-7"})
    assert other_process.decode_access_token(token)["sub"] == "user-7"
    security.revoke(token)
    with pytest.raises(RevokedTokenError):
        other_process.decode_access_token(token)


async def test_manager_with_redis_store_async(async_store: RedisRevocationStore) -> None:
    security = SecurityManager(secret_key=SECRET, revocation_store=async_store)
    pair = security.create_token_pair({"sub": "user-42"})
    rotated = await security.arefresh(pair.refresh_token)
    assert (await security.adecode_access_token(rotated.access_token))["sub"] == "user-42"
    with pytest.raises(RevokedTokenError):
        await security.arefresh(pair.refresh_token)
    with pytest.raises(RevokedTokenError):
        await security.adecode_access_token(rotated.access_token)


async def test_given_clients_are_used_and_not_closed(redis_url: str, prefix: str) -> None:
    sync_client = redis.Redis.from_url(redis_url)
    async_client = aioredis.Redis.from_url(redis_url)
    try:
        store = RedisRevocationStore(
            client=sync_client, async_client=async_client, key_prefix=prefix
        )
        store.revoke("jti:x", expires_at=int(time.time()) + 60)
        assert await store.ais_revoked("jti:x")
        await store.aclose()
        assert sync_client.ping()  # still open: the store does not own it
        assert await async_client.ping()
    finally:
        sync_client.close()
        await async_client.aclose()
        _cleanup(redis_url, prefix)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_unreachable_redis_fails_closed_with_a_typed_error() -> None:
    url = f"redis://:hunter2@127.0.0.1:{_free_port()}/0"
    store = RedisRevocationStore(url, socket_timeout=0.5)
    security = SecurityManager(secret_key=SECRET, revocation_store=store)
    token = security.create_access_token({"sub": "u"})
    with pytest.raises(RevocationStoreError, match="unavailable") as caught:
        security.decode_access_token(token)
    assert "hunter2" not in str(caught.value)
    with pytest.raises(RevocationStoreError):
        await security.adecode_access_token(token)
    with pytest.raises(RevocationStoreError):
        security.refresh(security.create_refresh_token("u"))
    assert "hunter2" not in repr(store)
    await store.aclose()


def test_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="url or a client"):
        RedisRevocationStore()
    with pytest.raises(ConfigurationError, match="not both"):
        RedisRevocationStore("redis://127.0.0.1", client=redis.Redis())
    with pytest.raises(ConfigurationError, match="REDIS_URL"):
        RedisRevocationStore.from_env({})
    only_async = RedisRevocationStore(async_client=aioredis.Redis())
    with pytest.raises(ConfigurationError, match="no sync client"):
        only_async.is_revoked("jti:x")


def test_from_env(redis_url: str) -> None:
    store = RedisRevocationStore.from_env({"REDIS_URL": redis_url})
    try:
        assert store.is_revoked("jti:never-revoked") is False
    finally:
        store.close()
