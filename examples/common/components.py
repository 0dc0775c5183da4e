"""backend_kit's components, wired together once for every example.

:func:`open_components` builds each part from :class:`~examples.common.Settings`
(a real service when its URL is set, an embedded default otherwise), connects
what needs connecting, registers the readiness checks, and closes everything
in reverse order on the way out::

    async with open_components(Settings.from_env()) as components:
        user = await components.users.create_user(NewUser(...))
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from backend_kit.cache import CacheManager
from backend_kit.db import aping, create_async_pooled_engine
from backend_kit.events import EventBus, InMemoryEventBus, Subscription
from backend_kit.health import HealthCheck
from backend_kit.resilience import MemoryRateLimiter, RateLimit, RateLimiter
from backend_kit.security import SecurityManager
from backend_kit.users import UserService
from examples.common.settings import Settings, redact_url
from examples.worker.handlers import (
    USER_CREATED,
    WELCOME_EMAIL_GROUP,
    LoggingMailer,
    WelcomeEmailWorker,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from backend_kit.resilience.redis import RedisRateLimiter

__all__ = ["EMBEDDED_DATABASE_URL", "Components", "create_event_bus", "open_components"]

logger = logging.getLogger("examples")

#: SQLite in memory, shared by every connection of the engine (a StaticPool).
EMBEDDED_DATABASE_URL = "sqlite+aiosqlite://"


@dataclass(frozen=True, slots=True)
class Components:
    """Everything an example needs, built and connected by :func:`open_components`.

    Attributes:
        settings: What the parts were built from.
        security: Password hashing and JWTs.
        users: Sign-up, login and lookups, publishing ``user.created``.
        cache: Result cache (Redis or memory).
        rate_limiter: Per-client limits for the public routes (Redis or memory).
        public_rate_limit: The limit those routes share.
        bus: Where ``user.created`` goes (RabbitMQ or in memory).
        health: Readiness checks of every dependency.
        engine: The database engine behind ``users``.
        backends: What each part runs on, for the start-up log (no secrets).
        worker: The in-app welcome-email worker, when ``settings.worker_inline``.
        worker_subscription: Its subscription (queue names, counters).
    """

    settings: Settings
    security: SecurityManager
    users: UserService
    cache: CacheManager
    rate_limiter: RateLimiter
    public_rate_limit: RateLimit
    bus: EventBus
    health: HealthCheck
    engine: AsyncEngine
    backends: Mapping[str, str]
    worker: WelcomeEmailWorker | None = field(default=None)
    worker_subscription: Subscription | None = field(default=None)


def _secret_key(settings: Settings) -> str:
    if settings.jwt_secret_key is not None:
        return settings.jwt_secret_key
    logger.warning(
        "JWT_SECRET_KEY is not set; signing tokens with a random key made for this process "
        "(tokens will not survive a restart nor work across processes)"
    )
    return secrets.token_urlsafe(48)


def create_event_bus(settings: Settings) -> tuple[EventBus, str]:
    """The bus ``settings`` ask for (not connected yet), and a description of it for logs.

    RabbitMQ when ``amqp_url`` is set (exchange ``settings.namespace``), else
    an :class:`~backend_kit.events.InMemoryEventBus` with the same topology rules.
    """
    if settings.amqp_url is not None:
        from backend_kit.events.amqp import AmqpEventBus

        bus = AmqpEventBus(settings.amqp_url, exchange=settings.namespace, publish_timeout=5.0)
        return bus, redact_url(settings.amqp_url)
    return InMemoryEventBus(exchange=settings.namespace), "memory (this process)"


@asynccontextmanager
async def open_components(settings: Settings) -> AsyncIterator[Components]:
    """Build, connect and (on exit) close every component the examples use.

    Raises:
        ConfigurationError: a setting is invalid (for example a short JWT key).
        MissingDependencyError: the extra a configured service needs is missing.
        NotConnectedError: ``AMQP_URL`` is set but RabbitMQ cannot be reached.
    """
    backends: dict[str, str] = {}
    public_rate_limit = RateLimit.parse(settings.public_rate_limit)  # fail before connecting
    async with AsyncExitStack() as stack:
        # Database: the users table on PostgreSQL (DATABASE_URL) or SQLite in memory.
        database_url = settings.database_url or EMBEDDED_DATABASE_URL
        engine = create_async_pooled_engine(
            database_url, pool_size=5, max_overflow=5, name=settings.namespace
        )
        stack.push_async_callback(engine.dispose)
        backends["database"] = redact_url(database_url)

        from backend_kit.users.sql import SqlUserRepository

        repository = SqlUserRepository(engine, schema=settings.database_schema)
        # A real service would run migrations (UsersBase.metadata feeds Alembic);
        # an example creates its table if it is missing.
        await repository.create_table()

        # Security: HS256 tokens. Revoked and spent refresh tokens live in Redis
        # when there is one (every process must see them), else in memory.
        security_options: dict[str, Any] = {}
        if settings.argon2_preset is not None:
            security_options["argon2"] = settings.argon2_preset
        if settings.redis_url is not None:
            from backend_kit.security.redis import RedisRevocationStore

            revocations = RedisRevocationStore(
                settings.redis_url, key_prefix=f"{settings.namespace}:security:"
            )
            stack.push_async_callback(revocations.aclose)
            security_options["revocation_store"] = revocations
            backends["token revocations"] = redact_url(settings.redis_url)
        else:
            backends["token revocations"] = "memory (this process)"
        security = SecurityManager(
            secret_key=_secret_key(settings),
            access_token_expires=timedelta(minutes=settings.access_token_minutes),
            **security_options,
        )
        stack.push_async_callback(security.aclose)

        # Cache and rate limiter: Redis (REDIS_URL) or this process's memory.
        cache = CacheManager.from_url(
            settings.redis_url or "memory://",
            namespace=settings.namespace,
            default_ttl=settings.user_cache_ttl,
        )
        stack.push_async_callback(cache.aclose)
        rate_limiter: RateLimiter
        redis_limiter: RedisRateLimiter | None = None
        if settings.redis_url is not None:
            from backend_kit.resilience.redis import RedisRateLimiter

            redis_limiter = RedisRateLimiter(
                settings.redis_url, key_prefix=f"{settings.namespace}:ratelimit:"
            )
            stack.push_async_callback(redis_limiter.aclose)
            rate_limiter = redis_limiter
            backends["cache"] = backends["rate limits"] = redact_url(settings.redis_url)
        else:
            rate_limiter = MemoryRateLimiter()
            backends["cache"] = backends["rate limits"] = "memory (this process)"

        # Event bus: RabbitMQ (AMQP_URL) or in memory.
        bus, backends["events"] = create_event_bus(settings)
        await bus.connect()
        stack.push_async_callback(bus.close)

        users = UserService(repository, security, events=bus)

        worker: WelcomeEmailWorker | None = None
        subscription: Subscription | None = None
        if settings.worker_inline:
            worker = WelcomeEmailWorker(LoggingMailer())
            subscription = await bus.subscribe(
                USER_CREATED,
                worker.handle,
                group=WELCOME_EMAIL_GROUP,
                max_retries=settings.worker_max_retries,
                retry_delay=settings.worker_retry_delay,
            )
            backends["worker"] = f"in this process ({subscription.queue})"

        health = HealthCheck(default_timeout=1.0)
        # aping() reports instead of raising; a PingResult(ok=False) fails the check.
        health.add("database", functools.partial(aping, engine, timeout=1.0))
        # The cache fails open (a call without it is slower, not wrong): degraded, not down.
        health.add("cache", cache.aping, critical=False)
        health.add("events", bus.ping)
        if redis_limiter is not None:
            # When Redis is away the limiter lets calls through (its default
            # policy) and says so: degraded, not down.
            health.add("rate limits", redis_limiter.aping, critical=False)

        components = Components(
            settings=settings,
            security=security,
            users=users,
            cache=cache,
            rate_limiter=rate_limiter,
            public_rate_limit=public_rate_limit,
            bus=bus,
            health=health,
            engine=engine,
            backends=backends,
            worker=worker,
            worker_subscription=subscription,
        )
        logger.info(
            "components ready: %s",
            ", ".join(f"{part}: {where}" for part, where in backends.items()),
        )
        yield components
