"""The README's first command: ``python -m backend_kit demo`` works with no server."""

from __future__ import annotations

import os
import subprocess
import sys

import backend_kit

SERVICE_VARIABLES = ("REDIS_URL", "DATABASE_URL", "AMQP_URL", "CONSUL_HTTP_ADDR", "MONGODB_URL")


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}


def test_demo_runs_on_embedded_defaults() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "backend_kit", "demo"],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "embedded defaults" in result.stdout
    # A part that fails prints "  ! <part> failed: ..." and the summary says so;
    # library log lines (a retried handler "failed (attempt 1 of 3)") are expected.
    assert "\n  ! " not in result.stdout
    assert "part(s) failed" not in result.stdout
    assert "parts ran." in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_demo_names_the_services_it_uses_without_their_secrets() -> None:
    import asyncio
    import io

    from backend_kit._demo import environment
    from backend_kit._demo._report import Report

    out = io.StringIO()
    saved = os.environ.get("MONGODB_URL")
    os.environ["MONGODB_URL"] = "mongodb://app:topsecret@db.example:27017/app"
    try:
        asyncio.run(environment.run(Report(out)))
    finally:
        if saved is None:
            del os.environ["MONGODB_URL"]
        else:
            os.environ["MONGODB_URL"] = saved
    text = out.getvalue()
    assert "MONGODB_URL=mongodb://app:***@db.example:27017/app" in text
    assert "topsecret" not in text


def test_version_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "backend_kit", "version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.strip() == backend_kit.__version__


def test_unknown_command_exits_with_usage() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "backend_kit", "frobnicate"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "usage:" in result.stderr
