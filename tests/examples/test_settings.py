"""The examples' settings: the environment, embedded defaults, and no secret in a repr or a log."""

from __future__ import annotations

import logging

import pytest
from examples.common import Settings, open_components
from examples.common.settings import redact_url

from backend_kit.errors import ConfigurationError, InvalidTokenError


def test_nothing_set_means_embedded_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.database_url is None
    assert settings.redis_url is None
    assert settings.amqp_url is None
    assert settings.jwt_secret_key is None
    assert settings.worker_inline  # no broker: the app handles its own events


def test_the_environment_is_read() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql+psycopg://app:pw@db:5432/app",
            "DATABASE_SCHEMA": "accounts",
            "REDIS_URL": "redis://cache:6379/1",
            "AMQP_URL": "amqp://app:pw@mq:5672/",
            "JWT_SECRET_KEY": "k" * 40,
            "APP_NAMESPACE": "shop",
            "PUBLIC_RATE_LIMIT": "5/second",
            "USER_CACHE_TTL": "2.5",
            "ARGON2_PRESET": "owasp_minimum",
            "JWT_ACCESS_TOKEN_EXPIRE_MINUTES": "5",
            "RUN_WORKER_INLINE": "yes",
            "WORKER_MAX_RETRIES": "7",
            "WORKER_RETRY_DELAY": "0.5",
            "UNRELATED": "ignored",
        }
    )
    assert settings.database_url == "postgresql+psycopg://app:pw@db:5432/app"
    assert settings.database_schema == "accounts"
    assert settings.redis_url == "redis://cache:6379/1"
    assert settings.amqp_url == "amqp://app:pw@mq:5672/"
    assert settings.namespace == "shop"
    assert settings.public_rate_limit == "5/second"
    assert settings.user_cache_ttl == 2.5
    assert settings.argon2_preset == "owasp_minimum"
    assert settings.access_token_minutes == 5
    assert settings.worker_inline is True
    assert (settings.worker_max_retries, settings.worker_retry_delay) == (7, 0.5)
    assert "k" * 40 not in repr(settings)


def test_the_repr_shows_no_password_of_any_url() -> None:
    settings = Settings(
        database_url="postgresql+psycopg://app:db-pw-1@db:5432/app",
        redis_url="redis://:redis-pw-2@cache:6379/1",
        amqp_url="amqp://app:amqp-pw-3@mq:5672/",
    )
    shown = repr(settings)
    for password in ("db-pw-1", "redis-pw-2", "amqp-pw-3"):
        assert password not in shown
    assert "postgresql+psycopg://app:***@db:5432/app" in shown
    assert "amqp://app:***@mq:5672/" in shown


def test_a_broker_means_a_separate_worker_unless_asked() -> None:
    assert not Settings(amqp_url="amqp://mq/").worker_inline
    assert Settings(amqp_url="amqp://mq/", run_worker_inline=True).worker_inline


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("USER_CACHE_TTL", "soon"),
        ("USER_CACHE_TTL", "0"),
        ("RUN_WORKER_INLINE", "maybe"),
        ("APP_NAMESPACE", "has space"),
        ("WORKER_MAX_RETRIES", "-1"),
    ],
)
def test_bad_values_are_configuration_errors(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError):
        Settings.from_env({variable: value})


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:***@127.0.0.1:5672/"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql+psycopg://postgres@db/test", "postgresql+psycopg://postgres@db/test"),
        ("redis://u:p@[::1]:6379", "redis://u:***@[::1]:6379"),
        # libpq and redis-py also read a password from the query string.
        (
            "postgresql+psycopg://app@db/app?password=s3cret&sslmode=require",
            "postgresql+psycopg://app@db/app?password=***&sslmode=require",
        ),
        ("redis://cache:6379/0?password=s3cret", "redis://cache:6379/0?password=***"),
        # Malformed (a bad port, an unclosed IPv6 bracket): nothing of it is shown.
        ("redis://u:s3cret@cache:port/0", "<unparseable URL>"),
        ("redis://u:s3cret@[::1/0", "<unparseable URL>"),
    ],
)
def test_urls_are_redacted_for_logs(url: str, shown: str) -> None:
    assert redact_url(url) == shown


async def test_without_a_jwt_key_a_random_one_is_made_and_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(argon2_preset="owasp_minimum", namespace="bk_test_settings")
    with caplog.at_level(logging.WARNING, logger="examples"):
        async with open_components(settings) as first, open_components(settings) as second:
            token = first.security.create_access_token({"sub": "u-1"})
            assert first.security.decode_access_token(token)["sub"] == "u-1"
            # Another process (here: another set of components) has another key.
            with pytest.raises(InvalidTokenError):
                second.security.decode_access_token(token)
    assert "JWT_SECRET_KEY is not set" in caplog.text
