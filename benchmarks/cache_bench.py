"""Cache hit latency against the raw redis-py GET and the peers, in one run, interleaved.

Run: ``python benchmarks/cache_bench.py`` (needs Redis on ``BACKEND_KIT_TEST_REDIS_URL``,
default ``redis://127.0.0.1:6379/0``, and ``redis-server`` on PATH for the
command counts, which use a private server so no other client's commands mix in).
Prints medians (µs) and ratios; runs in well under two minutes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import redis.asyncio as aioredis

from backend_kit.cache import CacheManager, MemoryCache
from backend_kit.cache.redis import RedisCache

URL = os.environ.get("BACKEND_KIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROUNDS = 15
CALLS = 400  # per round per contender
PAYLOAD = {"id": 42, "name": "Ada Lovelace", "roles": ["admin", "dev"], "score": 99.5}
NS = f"bk_bench_{uuid.uuid4().hex[:6]}"


async def _time_async(fn: Callable[[], Awaitable[Any]]) -> list[float]:
    out = []
    for _ in range(CALLS):
        t = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t)
    return out


def _time_sync(fn: Callable[[], Any]) -> list[float]:
    out = []
    for _ in range(CALLS):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _table(title: str, samples: dict[str, list[float]], floor: str) -> dict[str, float]:
    medians = {name: statistics.median(values) * 1e6 for name, values in samples.items()}
    print(f"\n{title}")
    print(f"  {'contender':<34} {'median µs':>10} {'x ' + floor:>14}")
    for name, med in medians.items():
        print(f"  {name:<34} {med:>10.1f} {med / medians[floor]:>14.2f}")
    return medians


async def async_hits() -> dict[str, float]:
    raw = aioredis.Redis.from_url(URL)
    manager = CacheManager(RedisCache(URL), namespace=NS)

    @manager.cache_result(ttl=300)
    async def bk_user(user_id: int) -> dict[str, Any]:
        return PAYLOAD

    contenders: dict[str, Callable[[], Awaitable[Any]]] = {}
    await bk_user(42)
    key = bk_user.cache_key(42)
    contenders["raw redis.asyncio GET (floor)"] = lambda: raw.get(key)
    contenders["backend_kit hit"] = lambda: bk_user(42)
    cleanups: list[Callable[[], Awaitable[Any]]] = []
    try:
        from cashews import Cache as CashewsCache

        cashews = CashewsCache()
        cashews.setup(URL)

        @cashews(ttl="5m", prefix=NS)
        async def cashews_user(user_id: int) -> dict[str, Any]:
            return PAYLOAD

        await cashews_user(42)
        contenders["cashews @cache hit"] = lambda: cashews_user(42)
        cleanups.append(lambda: cashews.delete_match(NS + "*"))
    except Exception as exc:
        print(f"(cashews skipped: {type(exc).__name__}: {exc})")
    try:
        from aiocache import Cache as AioCache
        from aiocache import cached
        from aiocache.serializers import JsonSerializer as AioJson

        host, port = URL.split("//")[1].split("/")[0].split(":")

        @cached(
            ttl=300,
            cache=AioCache.REDIS,
            endpoint=host,
            port=int(port),
            namespace=NS + "_aio",
            serializer=AioJson(),
        )
        async def aiocache_user(user_id: int) -> dict[str, Any]:
            return PAYLOAD

        await aiocache_user(42)
        contenders["aiocache @cached hit"] = lambda: aiocache_user(42)
    except Exception as exc:
        print(f"(aiocache skipped: {type(exc).__name__}: {exc})")

    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(ROUNDS):  # interleaved: every contender runs in every round
        for name, fn in contenders.items():
            samples[name] += await _time_async(fn)
    medians = _table("async Redis hit", samples, "raw redis.asyncio GET (floor)")
    for cleanup in cleanups:
        await cleanup()
    await manager.aclear()
    await manager.aclose()
    await raw.aclose()
    return medians


def sync_hits() -> dict[str, float]:
    raw = redis.Redis.from_url(URL)
    manager = CacheManager(RedisCache(URL), namespace=NS + "_sync")

    @manager.cache_result(ttl=300)
    def bk_user(user_id: int) -> dict[str, Any]:
        return PAYLOAD

    bk_user(42)
    key = bk_user.cache_key(42)
    contenders: dict[str, Callable[[], Any]] = {
        "raw redis.Redis GET (floor)": lambda: raw.get(key),
        "backend_kit hit (sync)": lambda: bk_user(42),
    }
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(ROUNDS):
        for name, fn in contenders.items():
            samples[name] += _time_sync(fn)
    medians = _table("sync Redis hit", samples, "raw redis.Redis GET (floor)")
    manager.clear()
    manager.close()
    raw.close()
    return medians


async def memory_hits() -> dict[str, float]:
    manager = CacheManager(MemoryCache(), namespace=NS)

    @manager.cache_result(ttl=300)
    async def bk_user(user_id: int) -> dict[str, Any]:
        return PAYLOAD

    @manager.cache_result(ttl=300)
    def bk_user_sync(user_id: int) -> dict[str, Any]:
        return PAYLOAD

    await bk_user(42)
    bk_user_sync(42)
    contenders: dict[str, Callable[[], Awaitable[Any]]] = {
        "backend_kit MemoryCache hit": lambda: bk_user(42)
    }

    async def sync_in_async() -> Any:
        return bk_user_sync(42)

    contenders["backend_kit MemoryCache hit (sync def)"] = sync_in_async
    try:
        from cashews import Cache as CashewsCache

        cashews = CashewsCache()
        cashews.setup("mem://")

        @cashews(ttl="5m")
        async def cashews_user(user_id: int) -> dict[str, Any]:
            return PAYLOAD

        await cashews_user(42)
        contenders["cashews mem:// hit"] = lambda: cashews_user(42)
    except Exception as exc:
        print(f"(cashews skipped: {type(exc).__name__}: {exc})")
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(ROUNDS):
        for name, fn in contenders.items():
            samples[name] += await _time_async(fn)
    return _table("memory hit", samples, "backend_kit MemoryCache hit")


# ------------------------------------------------------------ command counts
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_COUNTERS: dict[str, redis.Redis] = {}


def _commands(url: str) -> int:
    """Commands the server ran so far, minus this INFO, through one kept connection."""
    client = _COUNTERS.get(url)
    if client is None:
        client = _COUNTERS[url] = redis.Redis.from_url(url)
        client.ping()
    before_this_info = int(client.info("stats")["total_commands_processed"])
    return before_this_info


_WORKER = """
import asyncio, sys, time
from backend_kit.cache import CacheManager
from backend_kit.cache.redis import RedisCache
url, start_at = sys.argv[1], float(sys.argv[2])
manager = CacheManager(RedisCache(url), namespace="procs")
@manager.cache_result(ttl=60, lock=True)
async def expensive(n):
    await asyncio.sleep(0.3)
    return {"n": n}
async def main():
    await asyncio.sleep(max(0.0, start_at - time.time()))
    await asyncio.gather(*(expensive(1) for _ in range(50)))
    print(manager.stats().computations)
asyncio.run(main())
"""


async def command_counts(url: str) -> None:
    print("\nstampede and Redis commands (private redis-server, exact counts)")
    manager = CacheManager(RedisCache(url), namespace="count")
    computed = {"plain": 0, "lock": 0}

    @manager.cache_result(ttl=60)
    async def plain(n: int) -> int:
        computed["plain"] += 1
        await asyncio.sleep(0.1)
        return n

    @manager.cache_result(ttl=60, lock=True)
    async def locked(n: int) -> int:
        computed["lock"] += 1
        await asyncio.sleep(0.1)
        return n

    for name, fn in (("plain", plain), ("lock", locked)):
        before = _commands(url)
        await asyncio.gather(*(fn(1) for _ in range(200)))
        miss_cmds = _commands(url) - before - 1
        before = _commands(url)
        for _ in range(100):
            await fn(1)
        hit_cmds = _commands(url) - before - 1
        label = "lock=True" if name == "lock" else "no lock"
        print(
            f"  backend_kit {label:<9}: 200 concurrent cold calls -> computed {computed[name]}x, "
            f"{miss_cmds} Redis commands for the miss; 100 hits -> {hit_cmds} commands"
        )
    await manager.aclose()

    start_at = time.time() + 2.0
    before = _commands(url)
    procs = [
        subprocess.Popen(  # noqa: ASYNC220 - a benchmark; nothing else runs on this loop
            [sys.executable, "-c", _WORKER, url, str(start_at)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    counts = [int(p.communicate(timeout=60)[0].strip()) for p in procs]
    used = _commands(url) - before - 1
    print(
        f"  backend_kit lock=True, 4 processes x 50 calls: computed {sum(counts)}x, "
        f"{used} Redis commands ({used / 4:.1f} per process)"
    )
    try:
        from cashews import Cache as CashewsCache

        cashews = CashewsCache()
        cashews.setup(url)
        hits = {"n": 0}

        @cashews(ttl="1m", lock=True)
        async def cashews_locked(n: int) -> int:
            hits["n"] += 1
            await asyncio.sleep(0.1)
            return n

        before = _commands(url)
        await asyncio.gather(*(cashews_locked(1) for _ in range(200)))
        miss_cmds = _commands(url) - before - 1
        before = _commands(url)
        for _ in range(100):
            await cashews_locked(1)
        hit_cmds = _commands(url) - before - 1
        print(
            f"  cashews lock=True        : 200 concurrent cold calls -> computed {hits['n']}x, "
            f"{miss_cmds} Redis commands for the miss; 100 hits -> {hit_cmds} commands"
        )
    except Exception as exc:
        print(f"  (cashews lock count skipped: {type(exc).__name__}: {exc})")


def main() -> None:
    print(
        f"cache benchmark: {ROUNDS} interleaved rounds x {CALLS} calls per contender; Redis {URL}"
    )
    a = asyncio.run(async_hits())
    s = sync_hits()
    m = asyncio.run(memory_hits())
    server = shutil.which("redis-server")
    if server is None:
        print("\n(redis-server not on PATH: command counts skipped)")
    else:
        port = _free_port()
        with tempfile.TemporaryDirectory() as directory:
            proc = subprocess.Popen(
                [
                    server,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    directory,
                ],
                stdout=subprocess.DEVNULL,
            )
            try:
                url = f"redis://127.0.0.1:{port}/0"
                for _ in range(200):
                    try:
                        _commands(url)
                        break
                    except redis.ConnectionError:
                        time.sleep(0.02)
                asyncio.run(command_counts(url))
            finally:
                proc.terminate()
                proc.wait(timeout=10)
    floor = a["raw redis.asyncio GET (floor)"]
    bk = a["backend_kit hit"]
    print("\ntargets")
    print(f"  async hit / raw GET = {bk / floor:.2f} (target <= 1.10)")
    if "cashews @cache hit" in a:
        print(f"  async hit / cashews hit = {bk / a['cashews @cache hit']:.2f} (target <= 0.60)")
    print(
        f"  sync hit / raw GET = {s['backend_kit hit (sync)'] / s['raw redis.Redis GET (floor)']:.2f} (target <= 1.10)"
    )
    print(f"  MemoryCache hit = {m['backend_kit MemoryCache hit']:.1f} µs (target <= 8)")


if __name__ == "__main__":
    main()
