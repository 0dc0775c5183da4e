"""HealthCheck: concurrency, timeouts, liveness vs readiness, the JSON report."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time

import pytest

from backend_kit.errors import ConfigurationError
from backend_kit.health import CheckResult, HealthCheck, HealthReport, HealthStatus


async def ok() -> None:
    await asyncio.sleep(0)


async def down() -> None:
    raise ConnectionError("redis://:secret@10.0.0.5:6379 refused")


async def hangs() -> None:
    await asyncio.sleep(30)


async def test_all_pass() -> None:
    health = HealthCheck()
    health.add("redis", ok)
    health.add("db", lambda: True)
    report = await health.readiness()
    assert report.status is HealthStatus.PASS
    assert report.http_status == 200
    assert [c.name for c in report.checks] == ["redis", "db"]
    assert all(c.status is HealthStatus.PASS and c.output is None for c in report.checks)
    assert all(c.latency >= 0 for c in report.checks)


async def test_a_critical_failure_fails_and_the_report_names_the_error_class_only() -> None:
    health = HealthCheck()
    health.add("redis", down)
    health.add("db", ok)
    report = await health.readiness()
    assert report.status is HealthStatus.FAIL
    assert report.http_status == 503
    assert report["redis"].status is HealthStatus.FAIL
    assert report["redis"].output == "ConnectionError"
    assert "secret" not in report.to_json()
    assert report["db"].status is HealthStatus.PASS


async def test_non_critical_failure_and_explicit_warn_give_warn() -> None:
    health = HealthCheck()
    health.add("search", down, critical=False)
    health.add("db", ok)
    report = await health.readiness()
    assert report.status is HealthStatus.WARN
    assert report.http_status == 200
    assert report["search"].status is HealthStatus.FAIL

    health = HealthCheck()
    health.add("queue", lambda: HealthStatus.WARN)
    report = await health.readiness()
    assert report.status is HealthStatus.WARN
    assert report["queue"].output == "check returned warn"


async def test_returning_false_or_a_false_result_fails() -> None:
    health = HealthCheck()

    async def not_ready() -> bool:
        return False

    class Ping:
        def __init__(self, ok: bool) -> None:
            self.ok = ok

        def __bool__(self) -> bool:
            return self.ok

    async def db_down() -> Ping:
        return Ping(ok=False)  # like backend_kit.db.aping: reports instead of raising

    async def db_up() -> Ping:
        return Ping(ok=True)

    async def nothing() -> None:
        return None

    health.add("migrations", not_ready)
    health.add("db", db_down)
    health.add("replica", db_up)
    health.add("none", nothing)
    report = await health.readiness()
    assert report.status is HealthStatus.FAIL
    assert report["migrations"].output == "check returned fail"
    assert report["db"].status is HealthStatus.FAIL
    assert report["replica"].status is HealthStatus.PASS
    assert report["none"].status is HealthStatus.PASS


async def test_a_hanging_check_times_out_without_slowing_the_others() -> None:
    health = HealthCheck(default_timeout=5.0)
    health.add("slow", hangs, timeout=0.2)
    health.add("fast", ok)
    started = time.perf_counter()
    report = await health.readiness()
    elapsed = time.perf_counter() - started
    assert report["slow"].status is HealthStatus.FAIL
    assert report["slow"].output == "timed out after 0.2 s"
    assert 0.2 <= report["slow"].latency < 1.0
    assert report["fast"].latency < 0.2
    assert elapsed < 1.0


async def test_checks_run_concurrently() -> None:
    health = HealthCheck()
    for name in ("a", "b", "c", "d"):

        async def pause() -> None:
            await asyncio.sleep(0.1)

        health.add(name, pause)
    report = await health.readiness()
    assert report.status is HealthStatus.PASS
    assert report.duration < 0.35  # four 0.1 s checks, not 0.4 s in a row


async def test_sync_checks_run_in_a_thread_and_time_out() -> None:
    release = threading.Event()
    loop_thread = threading.get_ident()
    ran_in: list[int] = []

    def blocking_ping() -> None:
        ran_in.append(threading.get_ident())
        release.wait(5)

    health = HealthCheck()
    health.add("blocking", blocking_ping, timeout=0.1)
    health.add("fast", ok)
    report = await health.readiness()
    release.set()
    assert report["blocking"].status is HealthStatus.FAIL
    assert report["blocking"].output == "timed out after 0.1 s"
    assert report["fast"].status is HealthStatus.PASS
    assert len(ran_in) == 1
    assert ran_in[0] != loop_thread


async def test_objects_with_async_call_and_lambdas_returning_coroutines() -> None:
    class Pinger:
        async def __call__(self) -> None:
            await asyncio.sleep(0)

    def needs_the_loop() -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    health = HealthCheck()
    health.add("object", Pinger())
    health.add("lambda", lambda: ok())
    health.add("future", needs_the_loop, run_in_thread=False)
    report = await health.readiness()
    assert report.status is HealthStatus.PASS, report.to_json()
    health.add("future in a thread", needs_the_loop)
    report = await health.readiness()
    assert report["future in a thread"].output == "RuntimeError"  # no loop in a worker thread


async def test_liveness_runs_no_dependency_check() -> None:
    calls: list[str] = []

    async def dependency() -> None:
        calls.append("dependency")
        raise ConnectionError("down")

    async def event_loop_alive() -> None:
        calls.append("loop")

    health = HealthCheck()
    assert (await health.liveness()).status is HealthStatus.PASS  # nothing registered
    health.add("db", dependency)
    health.add("loop", event_loop_alive, liveness=True)
    live = await health.liveness()
    assert live.status is HealthStatus.PASS
    assert [c.name for c in live.checks] == ["loop"]
    assert calls == ["loop"]
    ready = await health.readiness()
    assert ready.status is HealthStatus.FAIL
    assert sorted(calls) == ["dependency", "loop", "loop"]
    only = await health.run("db")
    assert [c.name for c in only.checks] == ["db"]


async def test_report_json_follows_the_health_check_draft() -> None:
    health = HealthCheck()
    health.add("redis", ok)
    health.add("search", down, critical=False)
    report = await health.readiness()
    document = json.loads(report.to_json())
    assert document["status"] == "warn"
    assert document["time"].endswith("Z")
    assert set(document["checks"]) == {"redis", "search"}
    (redis_entry,) = document["checks"]["redis"]
    assert redis_entry["status"] == "pass"
    assert redis_entry["observedUnit"] == "ms"
    assert isinstance(redis_entry["observedValue"], float)
    assert redis_entry["critical"] is True
    (search_entry,) = document["checks"]["search"]
    assert search_entry == {
        "status": "fail",
        "observedValue": search_entry["observedValue"],
        "observedUnit": "ms",
        "critical": False,
        "time": document["time"],
        "output": "ConnectionError",
    }
    assert report.to_dict() == document
    assert HealthReport.media_type == "application/health+json"


def test_registry_rules() -> None:
    health = HealthCheck()
    health.add("redis", ok)
    with pytest.raises(ConfigurationError):
        health.add("redis", ok)
    with pytest.raises(ConfigurationError):
        health.add("db", ok, timeout=0)
    with pytest.raises(ConfigurationError):
        HealthCheck(default_timeout=-1)
    assert health.names == ("redis",)
    assert len(health) == 1
    health.remove("redis")
    assert len(health) == 0
    with pytest.raises(KeyError):
        health.remove("redis")


def test_check_result_is_a_value() -> None:
    result = CheckResult("redis", HealthStatus.PASS, 0.0012, True)
    assert result.to_dict() == {
        "status": "pass",
        "observedValue": 1.2,
        "observedUnit": "ms",
        "critical": True,
    }
    with pytest.raises(AttributeError):
        result.name = "other"  # type: ignore[misc]


def test_importing_health_imports_no_extra() -> None:
    code = (
        "import sys, backend_kit.health; "
        "print(sorted(m for m in ('redis', 'sqlalchemy', 'aio_pika', 'stamina', 'psycopg') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
