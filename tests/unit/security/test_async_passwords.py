"""The async password API: same answers, run on a bounded pool, the loop keeps turning."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import bcrypt
import pytest

from backend_kit.security import SecurityManager
from tests.unit.security.conftest import SECRET

PASSWORD = "correct horse"


async def test_async_twins_give_the_sync_answers(manager: SecurityManager) -> None:
    stored = await manager.ahash_password(PASSWORD)
    assert stored.startswith("$argon2id$")
    assert await manager.averify_password(PASSWORD, stored)
    assert not await manager.averify_password("wrong", stored)
    assert await manager.averify_and_update(PASSWORD, stored) == (True, None)
    legacy = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    matches, new_hash = await manager.averify_and_update(PASSWORD, legacy)
    assert matches
    assert new_hash is not None
    assert manager.verify_password(PASSWORD, new_hash)
    assert await manager.averify_password("a" * 73, legacy) is False
    assert await manager.averify_and_update(PASSWORD, "garbage") == (False, None)
    await manager.adummy_verify()
    with pytest.raises(ValueError, match="empty"):
        await manager.ahash_password("")


async def test_hashing_runs_off_the_event_loop_thread(
    manager: SecurityManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.current_thread()
    seen: list[threading.Thread] = []
    real_hash = manager.password_hasher.hash

    def recording_hash(password: str) -> str:
        seen.append(threading.current_thread())
        return real_hash(password)

    monkeypatch.setattr(manager.password_hasher, "hash", recording_hash)
    await manager.ahash_password(PASSWORD)
    assert seen
    assert seen[0] is not loop_thread
    assert seen[0].name.startswith("backend-kit-hash")


async def test_the_loop_keeps_running_while_hashes_are_computed(manager: SecurityManager) -> None:
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    await asyncio.gather(*(manager.ahash_password(PASSWORD) for _ in range(4)))
    stop.set()
    await ticking
    # Four Argon2id hashes take tens of milliseconds; a blocked loop would tick
    # only before and after them. A free loop ticks many times in between.
    assert ticks > 20


async def test_pool_is_bounded_by_max_workers() -> None:
    security = SecurityManager(secret_key=SECRET, argon2="owasp_minimum", max_workers=2)
    threads: set[str] = set()
    real_hash = security.password_hasher.hash

    def recording_hash(password: str) -> str:
        threads.add(threading.current_thread().name)
        return real_hash(password)

    security.password_hasher.hash = recording_hash  # type: ignore[method-assign]
    try:
        await asyncio.gather(*(security.ahash_password(PASSWORD) for _ in range(8)))
    finally:
        await security.aclose()
    assert 1 <= len(threads) <= 2


def _pool_of(security: SecurityManager) -> ThreadPoolExecutor | None:
    # A function, so mypy does not keep an earlier narrowing of the attribute.
    return security._pool


async def test_pool_is_created_lazily_and_close_is_final() -> None:
    security = SecurityManager(secret_key=SECRET, argon2="owasp_minimum")
    assert _pool_of(security) is None  # no thread until the first async hash
    security.create_access_token({"sub": "u"})
    assert _pool_of(security) is None
    await security.ahash_password(PASSWORD)
    assert _pool_of(security) is not None
    await security.aclose()
    await security.aclose()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        await security.ahash_password(PASSWORD)
    # Tokens and the sync password API still work after close().
    assert security.decode_access_token(security.create_access_token({"sub": "u"}))
    assert security.verify_password(PASSWORD, security.hash_password(PASSWORD))


async def test_async_context_manager_closes_the_pool() -> None:
    async with SecurityManager(secret_key=SECRET, argon2="owasp_minimum") as security:
        await security.ahash_password(PASSWORD)
    with pytest.raises(RuntimeError):
        await security.averify_password(PASSWORD, "x")


def test_sync_context_manager_closes_the_pool() -> None:
    with SecurityManager(secret_key=SECRET, argon2="owasp_minimum") as security:
        assert asyncio.run(security.ahash_password(PASSWORD)).startswith("$argon2id$")
    with pytest.raises(RuntimeError):
        asyncio.run(security.adummy_verify())


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="per-thread priority is Linux-only"
)
@pytest.mark.parametrize("niceness", [10, 0])
async def test_hashing_threads_yield_the_cpu_to_the_loop(niceness: int) -> None:
    security = SecurityManager(secret_key=SECRET, argon2="owasp_minimum", hashing_niceness=niceness)
    loop_priority = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: list[int] = []
    real_hash = security.password_hasher.hash

    def recording_hash(password: str) -> str:
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return real_hash(password)

    security.password_hasher.hash = recording_hash  # type: ignore[method-assign]
    try:
        await security.ahash_password(PASSWORD)
    finally:
        await security.aclose()
    assert seen == [min(19, loop_priority + niceness)]
    # The loop thread itself is untouched.
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == loop_priority
