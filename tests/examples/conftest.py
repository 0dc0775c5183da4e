"""Fixtures that run the examples in-process, twice: on embedded defaults and on the real services.

``settings`` is parametrized: ``embedded`` (SQLite in memory, memory cache,
rate limiter and bus; no server) and ``services`` (PostgreSQL in a schema of
its own, Redis under a key prefix of its own, RabbitMQ on an exchange of its
own; all removed afterwards). The ``services`` run asks for the
``postgres_url``/``redis_url``/``amqp_url`` fixtures, so it is skipped when a
service is away, and fails under ``BACKEND_KIT_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, overload

import httpx
import pytest
from examples.common import Settings
from examples.rest_api import create_app
from examples.rest_api.app import AppState
from examples.worker.handlers import USER_CREATED, WELCOME_EMAIL_GROUP
from fastapi import FastAPI
from starlette.applications import Starlette

#: 48 bytes: above the 32-byte minimum SecurityManager enforces for HS256.
JWT_SECRET = "test-secret-for-the-examples-0123456789abcdefghijkl"
#: The retry delays every test bus uses (seconds), so cleanup knows the retry queues.
RETRY_DELAY = 0.05

T = TypeVar("T")


def base_settings(namespace: str) -> Settings:
    """Embedded defaults tuned for tests: fast hashing, quick retries, a roomy rate limit."""
    return Settings(
        jwt_secret_key=JWT_SECRET,
        namespace=namespace,
        # OWASP's minimum Argon2id profile (19 MiB, t=2) keeps each hash ~20 ms.
        argon2_preset="owasp_minimum",
        public_rate_limit="1000/minute",
        worker_max_retries=2,
        worker_retry_delay=RETRY_DELAY,
    )


async def _create_schema(url: str, schema: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        await engine.dispose()


async def _drop_schema(url: str, schema: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await engine.dispose()


async def _delete_redis_keys(url: str, namespace: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{namespace}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def amqp_queue_names(exchange: str, group: str, pattern: str) -> list[str]:
    """The queues AmqpEventBus declares for one subscription (work, dead letters, retry).

    Follows the names ``backend_kit.events`` documents for ``work_queue_name``
    (``{exchange}.{group}.{pattern}``, ``*`` written ``+``) and its side queues.
    """
    work = f"{exchange}.{group}.{pattern.replace('*', '+')}"
    return [work, f"{work}.dead", f"{work}.retry.{round(RETRY_DELAY * 1000)}ms"]


async def _delete_amqp_topology(url: str, exchange: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        # Deleting a queue or exchange that does not exist is not an error in RabbitMQ.
        for queue in amqp_queue_names(exchange, WELCOME_EMAIL_GROUP, USER_CREATED):
            await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)
    finally:
        await connection.close()


@pytest.fixture(params=["embedded", pytest.param("services", marks=pytest.mark.integration)])
async def settings(request: pytest.FixtureRequest, unique_name: str) -> AsyncIterator[Settings]:
    """The examples' settings: embedded defaults, then the real services (cleaned up after)."""
    settings = base_settings(unique_name)
    if request.param == "embedded":
        yield settings
        return
    postgres_url: str = request.getfixturevalue("postgres_url")
    redis_url: str = request.getfixturevalue("redis_url")
    amqp_url: str = request.getfixturevalue("amqp_url")
    await _create_schema(postgres_url, unique_name)
    try:
        yield Settings(
            database_url=postgres_url,
            database_schema=unique_name,
            redis_url=redis_url,
            amqp_url=amqp_url,
            # The app consumes its own user.created from RabbitMQ, so the event
            # has a bound queue and the tests can watch it being handled.
            run_worker_inline=True,
            jwt_secret_key=settings.jwt_secret_key,
            namespace=settings.namespace,
            argon2_preset=settings.argon2_preset,
            public_rate_limit=settings.public_rate_limit,
            worker_max_retries=settings.worker_max_retries,
            worker_retry_delay=settings.worker_retry_delay,
        )
    finally:
        await _drop_schema(postgres_url, unique_name)
        await _delete_redis_keys(redis_url, unique_name)
        await _delete_amqp_topology(amqp_url, unique_name)


@asynccontextmanager
async def running(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app``'s lifespan and give an httpx client that calls it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.fixture
async def rest_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The REST app, started (its components built and connected)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(rest_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling the started REST app through ASGI."""
    transport = httpx.ASGITransport(app=rest_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def app_state(app: FastAPI) -> AppState:
    state: AppState = app.state.backend_kit
    return state


@overload
async def eventually(check: Callable[[], Awaitable[T]], *, within: float = ...) -> T: ...
@overload
async def eventually(check: Callable[[], T], *, within: float = ...) -> T: ...
async def eventually(check: Callable[[], Any], *, within: float = 10.0) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy, for at most ``within`` s."""
    try:
        async with asyncio.timeout(within):
            while True:
                outcome = check()
                value = await outcome if inspect.isawaitable(outcome) else outcome
                if value:
                    return value
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"condition not met within {within} s") from None
