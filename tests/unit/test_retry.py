"""Retry presets: what is retried depends on idempotency; backoff comes from stamina."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from backend_kit.errors import ConfigurationError
from backend_kit.resilience import RetryPreset, never_sent, retry

QUICK = RetryPreset(attempts=4, timeout=5.0, wait_initial=0.001, wait_max=0.002, wait_jitter=0.0)


class Flaky:
    """Fails with the given errors, then answers."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def test_idempotent_operations_retry_every_listed_error() -> None:
    flaky = Flaky(TimeoutError("slow"), TimeoutError("slow"))
    wrapped = retry(on=TimeoutError, idempotent=True, preset=QUICK)(flaky)
    assert wrapped() == "done"
    assert flaky.calls == 3


def test_unlisted_errors_are_not_retried() -> None:
    flaky = Flaky(ValueError("bad input"))
    wrapped = retry(on=TimeoutError, idempotent=True, preset=QUICK)(flaky)
    with pytest.raises(ValueError, match="bad input"):
        wrapped()
    assert flaky.calls == 1


def test_attempts_are_bounded_and_the_last_error_propagates() -> None:
    flaky = Flaky(*(ConnectionError(f"try {i}") for i in range(10)))
    wrapped = retry(on=ConnectionError, idempotent=True, preset=QUICK)(flaky)
    with pytest.raises(ConnectionError, match="try 3"):
        wrapped()
    assert flaky.calls == 4


def test_non_idempotent_operations_are_not_retried_after_a_timeout() -> None:
    """A timeout may come after the server acted: retrying could charge twice."""
    flaky = Flaky(TimeoutError("read timed out"))
    wrapped = retry(on=(TimeoutError, ConnectionError), idempotent=False, preset=QUICK)(flaky)
    with pytest.raises(TimeoutError):
        wrapped()
    assert flaky.calls == 1


def test_non_idempotent_operations_retry_a_refused_connection() -> None:
    """Refused (even wrapped by a client library): the request never left."""

    class ClientConnectionError(Exception):
        pass

    def client_error_raised_while_handling_a_refusal() -> ClientConnectionError:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError:
            try:
                raise ClientConnectionError("Error 111 connecting")
            except ClientConnectionError as exc:
                return exc

    error = client_error_raised_while_handling_a_refusal()
    assert isinstance(error.__context__, ConnectionRefusedError)
    flaky = Flaky(error, socket.gaierror(-2, "Name or service not known"))
    wrapped = retry(on=(ClientConnectionError, OSError), idempotent=False, preset=QUICK)(flaky)
    assert wrapped() == "done"
    assert flaky.calls == 3


def test_never_sent() -> None:
    assert never_sent(ConnectionRefusedError())
    assert not never_sent(TimeoutError())
    outer = RuntimeError("wrapper")
    outer.__cause__ = ValueError("middle")
    outer.__cause__.__context__ = ConnectionRefusedError()
    assert never_sent(outer)
    looping = RuntimeError("loop")
    looping.__context__ = looping
    assert not never_sent(looping)


def test_predicates_choose_errors() -> None:
    flaky = Flaky(RuntimeError("503"), RuntimeError("400"))
    wrapped = retry(on=lambda exc: "503" in str(exc), idempotent=True, preset=QUICK)(flaky)
    with pytest.raises(RuntimeError, match="400"):
        wrapped()
    assert flaky.calls == 2


async def test_async_functions_keep_their_signature() -> None:
    calls = 0

    @retry(on=ConnectionError, idempotent=True, preset=QUICK)
    async def fetch(user_id: int) -> str:
        """Fetch one."""
        nonlocal calls
        calls += 1
        if calls < 2:
            raise ConnectionError("reset")
        return f"user {user_id}"

    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch one."
    assert await fetch(7) == "user 7"
    assert calls == 2


def test_presets_are_sane() -> None:
    for preset in (RetryPreset.FAST, RetryPreset.STANDARD, RetryPreset.PATIENT):
        assert preset.wait_initial <= preset.wait_max < preset.timeout
    assert RetryPreset.FAST.timeout < RetryPreset.STANDARD.timeout < RetryPreset.PATIENT.timeout
    with pytest.raises(ConfigurationError):
        RetryPreset(attempts=0, timeout=1.0, wait_initial=0.1, wait_max=1.0, wait_jitter=0.1)
    with pytest.raises(ConfigurationError):
        RetryPreset(attempts=1, timeout=0.0, wait_initial=0.1, wait_max=1.0, wait_jitter=0.1)


def test_without_stamina_retry_names_the_extra_and_the_package_still_imports() -> None:
    code = """
import sys
sys.modules["stamina"] = None  # as if the extra were not installed
import backend_kit.resilience as resilience
from backend_kit.errors import MissingDependencyError
breaker = resilience.CircuitBreaker()  # the rest works without the extra
try:
    resilience.retry(on=OSError, idempotent=True)
except MissingDependencyError as exc:
    print(exc)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'backend-kit[resilience]'" in result.stdout
