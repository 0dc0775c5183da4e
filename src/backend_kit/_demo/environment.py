"""Demo part: what is installed and which services the environment names."""

from __future__ import annotations

import importlib.util
import os
import platform

import backend_kit
from backend_kit._demo._report import Report
from backend_kit._redact import redact_url

# extra -> a module that extra installs (looked up, never imported: the demo
# must not pay for extras it does not use).
EXTRA_PROBES: dict[str, str] = {
    "redis": "redis",
    "security": "jwt",
    "db": "sqlalchemy",
    "postgres": "psycopg",
    "amqp": "aio_pika",
    "consul": "consul",
    "mongo": "pymongo",
    "fast": "orjson",
    "resilience": "stamina",
}

SERVICE_VARIABLES = ("REDIS_URL", "DATABASE_URL", "AMQP_URL", "CONSUL_HTTP_ADDR", "MONGODB_URL")


async def run(report: Report) -> None:
    report.part("environment", f"backend-kit {backend_kit.__version__}")
    report.step(f"Python {platform.python_version()} on {platform.system()}")
    installed = [
        extra for extra, module in EXTRA_PROBES.items() if importlib.util.find_spec(module)
    ]
    missing = [extra for extra in EXTRA_PROBES if extra not in installed]
    report.step(f"extras installed: {', '.join(installed) or 'none'}")
    if missing:
        report.step(
            f"extras missing: {', '.join(missing)} (parts needing them fail and name the install line)"
        )
    named = {name: os.environ[name] for name in SERVICE_VARIABLES if os.environ.get(name)}
    if named:
        for name, url in named.items():
            if name == "MONGODB_URL":
                # No demo part runs on MongoDB: say so instead of claiming it is used.
                report.step(
                    f"{name}={redact_url(url)} -> not used: the users part runs on SQL "
                    "(MongoUserRepository is shown in docs/users.md)"
                )
            else:
                report.step(f"{name}={redact_url(url)} -> the real service is used")
    else:
        report.step("no service URL in the environment -> every part runs on embedded defaults")
