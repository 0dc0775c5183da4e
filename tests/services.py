"""Where the integration tests find the real services, and what to do when they are away.

Every integration test gets its service URL through a fixture in
``tests/conftest.py`` built on :func:`require_service`: the URL comes from an
environment variable with a loopback default; when nothing answers there the
test is skipped with the reason, unless ``BACKEND_KIT_REQUIRE_SERVICES=1`` (CI),
where it fails instead.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

__all__ = [
    "AMQP",
    "POSTGRES",
    "REDIS",
    "Service",
    "require_service",
    "services_required",
]


@dataclass(frozen=True, slots=True)
class Service:
    """A real service the integration tier talks to."""

    name: str
    env_var: str
    default_url: str
    default_port: int

    @property
    def url(self) -> str:
        return os.environ.get(self.env_var) or self.default_url


POSTGRES = Service(
    "PostgreSQL",
    "BACKEND_KIT_TEST_DATABASE_URL",
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    5432,
)
REDIS = Service("Redis", "BACKEND_KIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0", 6379)
AMQP = Service("RabbitMQ", "BACKEND_KIT_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/", 5672)


def services_required() -> bool:
    """True when unreachable services must fail the run instead of skipping (CI)."""
    return os.environ.get("BACKEND_KIT_REQUIRE_SERVICES", "") == "1"


def _reachable(host: str, port: int, timeout: float = 1.0) -> str | None:
    """None when a TCP connection succeeds, else the reason it did not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc.strerror or exc}"


def require_service(service: Service) -> str:
    """Return the service's URL, or skip (fail under BACKEND_KIT_REQUIRE_SERVICES=1)."""
    url = service.url
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or service.default_port
    problem = _reachable(host, port)
    if problem is not None and services_required():
        # A fault test may be restarting this very service (the events suite
        # restarts RabbitMQ); give it a bounded moment before failing the run.
        deadline = time.monotonic() + 30.0
        while problem is not None and time.monotonic() < deadline:
            time.sleep(0.5)
            problem = _reachable(host, port)
    if problem is None:
        return url
    reason = f"{service.name} is not reachable at {host}:{port} ({problem}); set {service.env_var}"
    if services_required():
        pytest.fail(f"BACKEND_KIT_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)
