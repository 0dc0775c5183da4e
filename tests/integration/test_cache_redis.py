"""Redis-only behaviour: bounded pool, lock across processes, a Redis that dies and comes back."""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from backend_kit.cache import CacheBackendError, CacheManager
from backend_kit.cache.redis import RedisCache
from backend_kit.resilience import CircuitBreaker, CircuitState

REDIS_SERVER = shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A redis-server of our own on a free loopback port: killed and restarted at will."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self._counter: redis.Redis | None = None

    def start(self) -> None:
        assert REDIS_SERVER is not None
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def kill(self) -> None:
        if self._counter is not None:
            self._counter.close()
            self._counter = None
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def commands_processed(self) -> int:
        """Commands the server ran so far, through one kept connection (no handshake noise)."""
        if self._counter is None:
            self._counter = redis.Redis.from_url(self.url)
            self._counter.ping()
        return int(self._counter.info("stats")["total_commands_processed"])


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    if REDIS_SERVER is None:
        pytest.fail("redis-server is not installed (the fault tests start their own)")
    with tempfile.TemporaryDirectory() as directory:
        server = PrivateRedis(Path(directory))
        server.start()
        try:
            yield server
        finally:
            server.kill()


async def test_burst_beyond_the_pool_waits_instead_of_failing(
    redis_url: str, unique_name: str
) -> None:
    backend = RedisCache(redis_url, max_connections=4, pool_timeout=5)
    manager = CacheManager(backend, namespace=unique_name)

    @manager.cache_result(ttl=30)
    async def ident(n: int) -> int:
        await asyncio.sleep(0.001)
        return n

    results = await asyncio.gather(*(ident(n) for n in range(200)))
    assert results == list(range(200))
    assert manager.stats().errors == 0
    assert manager.stats().computations == 200
    assert await asyncio.gather(*(ident(n) for n in range(200))) == list(range(200))
    assert manager.stats().hits == 200
    await manager.aclear()
    await backend.aclose()


def test_sync_burst_beyond_the_pool_waits(redis_url: str, unique_name: str) -> None:
    backend = RedisCache(redis_url, max_connections=2, pool_timeout=5)
    manager = CacheManager(backend, namespace=unique_name)

    @manager.cache_result(ttl=30)
    def ident(n: int) -> int:
        return n

    results: dict[int, int] = {}

    def worker(n: int) -> None:
        results[n] = ident(n)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert results == {n: n for n in range(30)}
    assert manager.stats().errors == 0
    manager.clear()
    backend.close()


_WORKER = textwrap.dedent(
    """
    import asyncio, sys, time
    import redis
    from backend_kit.cache import CacheManager
    from backend_kit.cache.redis import RedisCache

    url, namespace, counter, start_at = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    manager = CacheManager(RedisCache(url), namespace=namespace)
    bump = redis.Redis.from_url(url)

    @manager.cache_result(ttl=60, lock=True, lock_timeout=10)
    async def expensive(n: int) -> dict:
        bump.incr(counter)  # counts computations across every process
        await asyncio.sleep(0.3)
        return {"n": n}

    async def main() -> None:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        results = await asyncio.gather(*(expensive(7) for _ in range(50)))
        assert all(r == {"n": 7} for r in results), results
        print(manager.stats().computations)

    asyncio.run(main())
    """
)


def _run_lock_processes(url: str, namespace: str, counter: str) -> list[str]:
    start_at = time.time() + 2.0  # every process past its imports before the first call
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, url, namespace, counter, str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outputs.append(out.strip())
    return outputs


def test_lock_four_processes_fifty_calls_compute_once(redis_url: str, unique_name: str) -> None:
    counter = f"{unique_name}:computations"
    outputs = _run_lock_processes(redis_url, unique_name, counter)
    client = redis.Redis.from_url(redis_url)
    try:
        assert int(client.get(counter) or 0) == 1
        assert sorted(outputs) == ["0", "0", "0", "1"]
    finally:
        for key in client.scan_iter(match=f"{unique_name}*"):
            client.delete(key)
        client.close()


def test_lock_commands_per_waiting_process_are_bounded(private_redis: PrivateRedis) -> None:
    """Counted on a private server, so no other client's commands mix in."""
    before = private_redis.commands_processed()
    outputs = _run_lock_processes(private_redis.url, "bk", "bk:computations")
    # Minus our own INFO, and the workers' INCR of the counter and its connection
    # handshake (CLIENT SETINFO x2): those are the test's, not the cache's.
    used = private_redis.commands_processed() - before - 1 - 3
    assert sorted(outputs) == ["0", "0", "0", "1"]
    # Per process: GET, SET NX, and for waiters SUBSCRIBE + GET + GET (+ each
    # new connection's CLIENT SETINFO handshake).
    assert used <= 4 * 20, used


def _fault_manager(url: str) -> CacheManager:
    return CacheManager(
        RedisCache(url, socket_timeout=0.2, socket_connect_timeout=0.2, pool_timeout=0.5),
        namespace="fault",
        cooldown=0.3,
    )


@pytest.mark.fault
async def test_redis_killed_and_restarted_async(private_redis: PrivateRedis) -> None:
    manager = _fault_manager(private_redis.url)
    calls = 0

    @manager.cache_result(ttl=60)
    async def double(n: int) -> int:
        nonlocal calls
        calls += 1
        return n * 2

    async def round_of_calls() -> None:
        results = await asyncio.gather(*(double(n) for n in range(20)))
        assert results == [n * 2 for n in range(20)]

    await round_of_calls()
    await round_of_calls()
    assert manager.stats().hits == 20
    private_redis.kill()
    started = time.monotonic()
    for _ in range(20):  # no caller sees an exception while Redis is gone
        await round_of_calls()
        await asyncio.sleep(0.02)
    assert time.monotonic() - started < 5  # dead Redis costs little, not a timeout per call
    outage = manager.stats()
    assert outage.errors >= 1
    assert outage.bypassed > 0
    private_redis.start()
    await asyncio.sleep(0.4)  # past the cool-down
    for _ in range(3):
        await round_of_calls()
    resumed = manager.stats()
    await round_of_calls()
    assert manager.stats().hits - resumed.hits == 20  # caching resumed
    assert redis.Redis.from_url(private_redis.url).get(double.cache_key(3)) == b"6"
    await manager.aclose()


@pytest.mark.fault
async def test_redis_killed_and_restarted_under_continuous_traffic(
    private_redis: PrivateRedis,
) -> None:
    """Ten callers keep calling while the server is SIGKILLed and restarted under them."""
    manager = _fault_manager(private_redis.url)

    @manager.cache_result(ttl=60)
    async def double(n: int) -> int:
        await asyncio.sleep(0)
        return n * 2

    stop = asyncio.Event()
    failures: list[BaseException] = []
    wrong: list[tuple[int, int]] = []
    completed = 0

    async def caller(worker: int) -> None:
        nonlocal completed
        n = worker
        while not stop.is_set():
            n = (n + 7) % 50
            try:
                result = await double(n)
            except Exception as exc:
                failures.append(exc)
                continue
            if result != n * 2:
                wrong.append((n, result))
            completed += 1
            await asyncio.sleep(0.001)

    tasks = [asyncio.create_task(caller(i)) for i in range(10)]
    await asyncio.sleep(0.3)
    await asyncio.to_thread(private_redis.kill)
    await asyncio.sleep(0.5)
    await asyncio.to_thread(private_redis.start)
    await asyncio.sleep(0.8)  # past the cool-down: caching resumes under the same traffic
    hits_before_stop = manager.stats().hits
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
    assert failures == []
    assert wrong == []
    assert completed > 100
    stats = manager.stats()
    assert stats.errors >= 1
    assert stats.bypassed > 0
    assert stats.hits > hits_before_stop  # hits again after the restart
    await manager.aclose()


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def state_of(breaker: CircuitBreaker) -> CircuitState:
    """``breaker.state``, read through a call so mypy does not narrow it between reads."""
    return breaker.state


@pytest.mark.fault
async def test_an_open_breaker_sends_nothing_to_redis_until_its_trial(
    private_redis: PrivateRedis,
) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("cache", failure_threshold=2, reset_timeout=30.0, clock=clock)
    manager = CacheManager(
        RedisCache(
            private_redis.url, socket_timeout=0.2, socket_connect_timeout=0.2, pool_timeout=0.5
        ),
        namespace="fault",
        breaker=breaker,
    )

    @manager.cache_result(ttl=60)
    async def double(n: int) -> int:
        return n * 2

    assert [await double(n) for n in range(5)] == [0, 2, 4, 6, 8]
    private_redis.kill()
    assert [await double(n) for n in range(5)] == [0, 2, 4, 6, 8]
    assert manager.stats().errors == 2  # the threshold; the other calls skipped Redis
    assert state_of(breaker) is CircuitState.OPEN
    private_redis.start()  # back, but the breaker has not let a trial through yet
    before = private_redis.commands_processed()
    started = time.monotonic()
    assert [await double(n % 5) for n in range(200)] == [n % 5 * 2 for n in range(200)]
    elapsed = time.monotonic() - started
    assert private_redis.commands_processed() - before == 1  # only that INFO of ours
    assert elapsed < 1.0  # not 200 socket timeouts
    clock.now += 30.0
    assert await double(3) == 6  # the trial: a miss (the restart lost the data) that stores
    assert state_of(breaker) is CircuitState.CLOSED
    hits = manager.stats().hits
    assert await double(3) == 6
    assert manager.stats().hits == hits + 1
    await manager.aclose()


@pytest.mark.fault
def test_redis_killed_and_restarted_sync(private_redis: PrivateRedis) -> None:
    manager = _fault_manager(private_redis.url)

    @manager.cache_result(ttl=60)
    def triple(n: int) -> int:
        return n * 3

    assert [triple(n) for n in range(10)] == [n * 3 for n in range(10)]
    private_redis.kill()
    for _ in range(10):
        assert [triple(n) for n in range(10)] == [n * 3 for n in range(10)]
        time.sleep(0.02)
    assert manager.stats().bypassed > 0
    private_redis.start()
    time.sleep(0.4)
    for _ in range(3):
        assert [triple(n) for n in range(10)] == [n * 3 for n in range(10)]
    before = manager.stats().hits
    assert [triple(n) for n in range(10)] == [n * 3 for n in range(10)]
    assert manager.stats().hits - before == 10
    manager.close()


def test_redis_cache_repr_and_errors_hide_the_password() -> None:
    backend = RedisCache("redis://:hunter2@127.0.0.1:1/0", socket_connect_timeout=0.05)
    assert "hunter2" not in repr(backend)
    assert backend.url == "redis://:***@127.0.0.1:1/0"
    with pytest.raises(CacheBackendError) as info:  # nothing listens on port 1
        backend.get("x")
    assert "hunter2" not in str(info.value)


def test_one_manager_across_several_event_loops(redis_url: str, unique_name: str) -> None:
    """Scripts and workers that call asyncio.run repeatedly keep one module-level manager."""
    manager = CacheManager(RedisCache(redis_url), namespace=unique_name)
    calls = 0

    @manager.cache_result(ttl=30)
    async def answer() -> int:
        nonlocal calls
        calls += 1
        return 42

    assert asyncio.run(answer()) == 42
    assert asyncio.run(answer()) == 42  # a new loop: a new client, no "different loop" error
    assert calls == 1
    assert manager.stats().errors == 0

    async def finish() -> None:
        await manager.aclear()
        await manager.aclose()

    asyncio.run(finish())


async def test_a_failed_ping_says_why_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    # ping()/aping() answer False (a health check's "fail"); the cause must
    # still reach the operators' log, with no password in it.
    port = _free_port()  # nothing listens there
    cache = RedisCache(f"redis://:ping-pw@127.0.0.1:{port}/0", retries=0)
    try:
        with caplog.at_level(logging.INFO, logger="backend_kit.cache"):
            assert cache.ping() is False
            assert await cache.aping() is False
    finally:
        cache.close()
        await cache.aclose()
    failures = [r for r in caplog.records if "PING failed" in r.getMessage()]
    assert len(failures) == 2
    assert all("ConnectionError" in r.getMessage() for r in failures)
    assert "ping-pw" not in caplog.text
