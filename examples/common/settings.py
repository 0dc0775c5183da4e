"""The examples' settings: explicit values, or the environment with embedded defaults.

Every setting has a default that needs no server, so each example runs on a
bare machine: SQLite in memory, an in-process cache, rate limiter and event
bus. Set ``DATABASE_URL``, ``REDIS_URL`` or ``AMQP_URL`` and that part talks to
the real service instead. No credential is a default: without
``JWT_SECRET_KEY`` a random key is made per process (and tokens do not survive
a restart; a warning says so).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from backend_kit import redact_url
from backend_kit.errors import ConfigurationError

__all__ = ["Settings", "redact_url"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True, slots=True)
class Settings:
    """What the examples need to know; :meth:`from_env` reads it from the environment.

    Attributes:
        database_url: SQLAlchemy async URL (``DATABASE_URL``), for example
            ``postgresql+psycopg://app@db:5432/app``. ``None``: SQLite in memory.
        database_schema: PostgreSQL schema holding the ``users`` table
            (``DATABASE_SCHEMA``); ``None`` uses the search path.
        redis_url: ``REDIS_URL``; shared cache, rate limits and token
            revocations. ``None``: in process memory (one process only).
        amqp_url: ``AMQP_URL``; RabbitMQ for ``user.created``. ``None``: an
            in-memory bus, with the welcome-email worker running inside the app.
        jwt_secret_key: ``JWT_SECRET_KEY``, at least 32 bytes. ``None``: a
            random key per process.
        namespace: ``APP_NAMESPACE`` (default ``"examples"``): cache namespace,
            Redis key prefix and event exchange name, so several apps (or test
            runs) can share one Redis and one RabbitMQ.
        public_rate_limit: ``PUBLIC_RATE_LIMIT`` (default ``"10/minute"``) per
            client address on each public route (sign-up, login, refresh).
        user_cache_ttl: ``USER_CACHE_TTL`` seconds a user read stays cached (default 30).
        argon2_preset: ``ARGON2_PRESET``: ``"rfc_9106_low_memory"`` (the
            library's default when ``None``) or ``"owasp_minimum"``.
        access_token_minutes: ``JWT_ACCESS_TOKEN_EXPIRE_MINUTES`` (default 15).
        run_worker_inline: ``RUN_WORKER_INLINE``: handle ``user.created`` inside
            the app. ``None`` (default): only on the in-memory bus, where no
            other process could receive the event.
        worker_max_retries: ``WORKER_MAX_RETRIES`` (default 3) deliveries retried
            before an event is dead-lettered.
        worker_retry_delay: ``WORKER_RETRY_DELAY`` seconds between them (default 1.0).
    """

    database_url: str | None = None
    database_schema: str | None = None
    redis_url: str | None = None
    amqp_url: str | None = None
    jwt_secret_key: str | None = field(default=None, repr=False)
    namespace: str = "examples"
    public_rate_limit: str = "10/minute"
    user_cache_ttl: float = 30.0
    argon2_preset: str | None = None
    access_token_minutes: float = 15.0
    run_worker_inline: bool | None = None
    worker_max_retries: int = 3
    worker_retry_delay: float = 1.0

    def __post_init__(self) -> None:
        if not self.namespace or not self.namespace.replace("_", "").replace("-", "").isalnum():
            raise ConfigurationError("namespace must be letters, digits, '-' and '_'")
        if self.user_cache_ttl <= 0:
            raise ConfigurationError("user_cache_ttl must be positive")
        if self.access_token_minutes <= 0:
            raise ConfigurationError("access_token_minutes must be positive")
        if self.worker_max_retries < 0 or self.worker_retry_delay < 0:
            raise ConfigurationError("worker retries and delay must not be negative")

    def __repr__(self) -> str:
        # The generated repr would print the URLs' passwords (settings get logged).
        shown = []
        for item in fields(self):
            if not item.repr:
                continue
            value = getattr(self, item.name)
            if item.name.endswith("_url") and value is not None:
                value = redact_url(value)
            shown.append(f"{item.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    @property
    def worker_inline(self) -> bool:
        """Whether the app itself consumes ``user.created`` (see ``run_worker_inline``)."""
        if self.run_worker_inline is None:
            return self.amqp_url is None
        return self.run_worker_inline

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``environ`` (default ``os.environ``); unset or empty means the default.

        Raises:
            ConfigurationError: a number or flag does not parse, or a value is out of range.
        """
        env = os.environ if environ is None else environ
        defaults = cls()

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def number(name: str, default: float) -> float:
            value = text(name)
            if value is None:
                return default
            try:
                return float(value)
            except ValueError:
                raise ConfigurationError(f"{name} must be a number") from None

        def flag(name: str) -> bool | None:
            value = text(name)
            if value is None:
                return None
            if value.lower() in _TRUE:
                return True
            if value.lower() in _FALSE:
                return False
            raise ConfigurationError(f"{name} must be true or false")

        return cls(
            database_url=text("DATABASE_URL"),
            database_schema=text("DATABASE_SCHEMA"),
            redis_url=text("REDIS_URL"),
            amqp_url=text("AMQP_URL"),
            jwt_secret_key=text("JWT_SECRET_KEY"),
            namespace=text("APP_NAMESPACE") or defaults.namespace,
            public_rate_limit=text("PUBLIC_RATE_LIMIT") or defaults.public_rate_limit,
            user_cache_ttl=number("USER_CACHE_TTL", defaults.user_cache_ttl),
            argon2_preset=text("ARGON2_PRESET"),
            access_token_minutes=number(
                "JWT_ACCESS_TOKEN_EXPIRE_MINUTES", defaults.access_token_minutes
            ),
            run_worker_inline=flag("RUN_WORKER_INLINE"),
            worker_max_retries=int(number("WORKER_MAX_RETRIES", defaults.worker_max_retries)),
            worker_retry_delay=number("WORKER_RETRY_DELAY", defaults.worker_retry_delay),
        )
