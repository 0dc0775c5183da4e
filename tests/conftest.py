"""Fixtures shared by every test tier.

Service URLs for the integration tier come from :mod:`tests.services`; a test
asks for ``redis_url``, ``postgres_url`` or ``amqp_url`` and is skipped (or, in
CI, failed) when the service does not answer.
"""

from __future__ import annotations

import uuid

import pytest

from tests.services import AMQP, POSTGRES, REDIS, require_service


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the real Redis (``BACKEND_KIT_TEST_REDIS_URL``, default loopback)."""
    return require_service(REDIS)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """SQLAlchemy URL of the real PostgreSQL with psycopg 3 (sync and async)."""
    return require_service(POSTGRES)


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """URL of the real RabbitMQ (``BACKEND_KIT_TEST_AMQP_URL``, default loopback)."""
    return require_service(AMQP)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name no other test (or earlier run) uses: for key prefixes, queues, schemas."""
    test = "".join(ch if ch.isalnum() else "_" for ch in request.node.name)[:40]
    return f"bk_test_{test}_{uuid.uuid4().hex[:8]}".lower()
