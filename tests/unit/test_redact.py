from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend_kit._redact import redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql+psycopg://app:s3cret@db/test", "postgresql+psycopg://app:***@db/test"),
        ("amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:***@127.0.0.1:5672/"),
        ("amqp://u:p@[::1]:5672/vh", "amqp://u:***@[::1]:5672/vh"),
        ("memory://", "memory://"),
        ("redis://cache:6379", "redis://cache:6379"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@given(
    st.text(
        alphabet=st.characters(blacklist_characters="@/:?#[]%", blacklist_categories=["Cs"]),
        min_size=6,
    )
)
def test_password_never_survives(password: str) -> None:
    url = f"redis://user:{password}@host:6379/0"
    assert password not in redact_url(url)


def test_malformed_url_prints_nothing_of_it() -> None:
    assert redact_url("redis://user:secret@host:notaport/0") == "<unparseable URL>"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # libpq reads password= from the query; redis-py passes query options to the client.
        (
            "postgresql+psycopg://app@db/test?password=s3cret&sslmode=require",
            "postgresql+psycopg://app@db/test?password=***&sslmode=require",
        ),
        ("redis://cache:6379/0?password=s3cret", "redis://cache:6379/0?password=***"),
        (
            "postgresql://db/test?sslpassword=s3cret&application_name=api",
            "postgresql://db/test?sslpassword=***&application_name=api",
        ),
        # MongoDB's AWS auth carries a session token in the query.
        (
            "mongodb://db/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:s3cret",
            "mongodb://db/?authMechanism=***&authMechanismProperties=***",
        ),
        (
            "redis://:hunter2@cache:6379/0?token=s3cret",
            "redis://:***@cache:6379/0?token=***",
        ),
        ("amqp://mq:5672/?heartbeat=30", "amqp://mq:5672/?heartbeat=30"),
    ],
)
def test_secrets_in_the_query_string_are_redacted(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert "s3cret" not in redact_url(url)
