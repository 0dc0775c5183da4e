"""Demo part: a miss, a hit and a stampede of 200 concurrent calls computed once."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

from backend_kit._demo._report import Report
from backend_kit._redact import redact_url
from backend_kit.cache import CacheManager


async def run(report: Report) -> None:
    url = os.environ.get("REDIS_URL", "").strip()
    namespace = f"bk_demo_{uuid.uuid4().hex[:8]}"  # never collides with real data
    manager = CacheManager.from_url(url or "memory://", namespace=namespace)
    report.part(
        "cache", f"Redis at {redact_url(url)}" if url else "MemoryCache (set REDIS_URL for Redis)"
    )
    computed = 0

    @manager.cache_result(ttl=60)
    async def user_profile(user_id: int) -> dict[str, object]:
        nonlocal computed
        computed += 1
        await asyncio.sleep(0.05)  # a slow query
        return {"id": user_id, "name": f"user-{user_id}"}

    try:
        started = time.perf_counter()
        await user_profile(1)
        miss_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        await user_profile(1)
        hit_ms = (time.perf_counter() - started) * 1000
        report.step(f"user_profile(1): miss, computed in {miss_ms:.1f} ms")
        report.step(f"user_profile(1) again: hit in {hit_ms:.2f} ms")
        report.step(f"key: {user_profile.cache_key(1)}")
        before = computed
        await asyncio.gather(*(user_profile(2) for _ in range(200)))
        report.step(
            f"200 concurrent cold calls of user_profile(2): computed {computed - before} time(s)"
        )
        stats = manager.stats()
        report.step(
            f"stats: {stats.hits} hits, {stats.misses} misses, {stats.joined} joined a running "
            f"computation, {stats.errors} backend errors"
        )
    finally:
        await manager.aclear()
        await manager.aclose()
