"""What every RevocationStore must do, run against each implementation (memory, real Redis).

Plain functions taking a store, so the unit tier runs them on
MemoryRevocationStore and the integration tier on RedisRevocationStore.
"""

from __future__ import annotations

import time
import uuid

from backend_kit.security import RevocationStore


def _key(name: str) -> str:
    return f"{name}:{uuid.uuid4().hex}"


def check_sync_contract(store: RevocationStore) -> None:
    later = int(time.time()) + 3600
    jti, family, used = _key("jti"), _key("fam"), _key("used")
    assert isinstance(store, RevocationStore)
    assert store.is_revoked(jti) is False
    assert store.is_revoked() is False
    store.revoke(jti, expires_at=later)
    assert store.is_revoked(jti) is True
    assert store.is_revoked(_key("other"), jti) is True  # any of the keys
    assert store.is_revoked(_key("other"), family) is False
    store.revoke(jti, expires_at=later)  # idempotent
    assert store.is_revoked(jti) is True
    assert store.mark_used(used, expires_at=later) is True
    assert store.mark_used(used, expires_at=later) is False
    assert store.mark_used(used, expires_at=later) is False
    assert store.is_revoked(used) is True  # a used key is remembered like a revoked one


def check_expired_entries_are_forgotten(store: RevocationStore) -> None:
    past = int(time.time()) - 10
    jti, used = _key("jti"), _key("used")
    store.revoke(jti, expires_at=past)
    assert store.is_revoked(jti) is False
    store.mark_used(used, expires_at=past)
    assert store.mark_used(used, expires_at=int(time.time()) + 60) is True


async def check_async_contract(store: RevocationStore) -> None:
    later = int(time.time()) + 3600
    jti, used = _key("jti"), _key("used")
    assert await store.ais_revoked(jti) is False
    await store.arevoke(jti, expires_at=later)
    assert await store.ais_revoked(_key("x"), jti) is True
    assert await store.amark_used(used, expires_at=later) is True
    assert await store.amark_used(used, expires_at=later) is False
