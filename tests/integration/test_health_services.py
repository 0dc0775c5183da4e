"""HealthCheck over the real services: all up, then one down (a Redis this test owns)."""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aio_pika
import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from backend_kit.db import aping as db_aping
from backend_kit.health import HealthCheck, HealthStatus
from backend_kit.resilience.redis import RedisRateLimiter
from tests.integration._own_redis_server import start_own_redis

Check = Callable[[], Coroutine[Any, Any, object]]


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    made = create_async_engine(postgres_url, pool_size=1)
    yield made
    await made.dispose()


@pytest.fixture
async def amqp(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    connection = await aio_pika.connect(amqp_url)
    yield connection
    await connection.close()


def postgres_check(engine: AsyncEngine) -> Check:
    async def check() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    return check


def amqp_check(connection: aio_pika.abc.AbstractConnection) -> Check:
    async def check() -> None:
        # Opening and closing a channel is a round trip through the broker.
        channel = await connection.channel()
        await channel.close()

    return check


async def test_all_services_up(
    redis_url: str, engine: AsyncEngine, amqp: aio_pika.abc.AbstractConnection
) -> None:
    redis_client = aioredis.Redis.from_url(redis_url)
    limiter = RedisRateLimiter(redis_url)
    try:
        health = HealthCheck(default_timeout=2.0)
        health.add("redis", redis_client.ping)
        health.add("postgres", postgres_check(engine))
        health.add("rabbitmq", amqp_check(amqp))
        health.add("rate-limiter", limiter.aping)
        health.add("db.aping", functools.partial(db_aping, engine, timeout=1.0))
        report = await health.readiness()
        assert report.status is HealthStatus.PASS, report.to_json()
        assert [c.name for c in report.checks] == [
            "redis",
            "postgres",
            "rabbitmq",
            "rate-limiter",
            "db.aping",
        ]
        assert all(c.latency < 2.0 for c in report.checks)
        live = await health.liveness()
        assert (live.status, live.checks) == (HealthStatus.PASS, ())
    finally:
        await redis_client.aclose()
        await limiter.aclose()


@pytest.mark.fault
async def test_one_service_down_fails_that_check_only_and_quickly(
    tmp_path: Path, redis_url: str, engine: AsyncEngine, amqp: aio_pika.abc.AbstractConnection
) -> None:
    killed = start_own_redis(tmp_path / "killed")
    hung = start_own_redis(tmp_path / "hung")
    killed_client = aioredis.Redis.from_url(killed.url, socket_connect_timeout=5)
    # Nothing listens there any more: the port of the Redis just killed.
    dead_engine = create_async_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{killed.port}/test", pool_size=1
    )
    hung_client = aioredis.Redis.from_url(hung.url, socket_connect_timeout=5)
    shared_client = aioredis.Redis.from_url(redis_url)
    try:
        await killed_client.ping()
        await hung_client.ping()
        killed.kill()  # refuses connections from now on
        hung.process.send_signal(19)  # SIGSTOP: accepts nothing, answers nothing
        await hung_client.connection_pool.disconnect()

        health = HealthCheck(default_timeout=2.0)
        health.add("redis", shared_client.ping)
        health.add("postgres", postgres_check(engine))
        health.add("rabbitmq", amqp_check(amqp))
        health.add("session-redis", killed_client.ping, timeout=0.5)
        health.add("queue-redis", hung_client.ping, timeout=0.5)
        health.add("reports-db", functools.partial(db_aping, dead_engine, timeout=2.0))
        started = time.perf_counter()
        report = await health.readiness()
        elapsed = time.perf_counter() - started
    finally:
        hung.process.send_signal(18)
        hung.kill()
        await shared_client.aclose()
        await killed_client.aclose()
        await hung_client.aclose()
        await dead_engine.dispose()

    assert report.status is HealthStatus.FAIL
    assert report["session-redis"].status is HealthStatus.FAIL
    assert report["session-redis"].output == "ConnectionError"
    assert report["session-redis"].latency < 0.5, "a refused connection fails at once"
    assert report["reports-db"].status is HealthStatus.FAIL, "db.aping's falsy PingResult fails"
    assert report["queue-redis"].status is HealthStatus.FAIL
    assert report["queue-redis"].output == "timed out after 0.5 s"
    assert 0.5 <= report["queue-redis"].latency < 1.0
    for name in ("redis", "postgres", "rabbitmq"):
        assert report[name].status is HealthStatus.PASS, name
        assert report[name].latency < 0.5, f"{name} was held up by the dead ones"
    assert elapsed < 1.5, "the run lasts as long as the slowest timeout, not the sum"
    assert report.http_status == 503
