"""Retry presets on top of stamina (extra ``resilience``).

stamina (itself built on tenacity) gives exponential backoff with jitter, an
overall timeout, typed decorators that keep the wrapped signature for sync and
async functions, and a test mode without waits (``stamina.set_testing``).
This module only adds presets and one rule: an operation is retried on every
listed error only when the caller declares it idempotent.

stamina is imported when a decorator is built, never when
``backend_kit.resilience`` is imported.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, ParamSpec, TypeAlias, TypeVar

from backend_kit._optional import import_optional
from backend_kit.errors import ConfigurationError

__all__ = ["RetryOn", "RetryPreset", "never_sent", "retry"]

P = ParamSpec("P")
R = TypeVar("R")

RetryOn: TypeAlias = type[Exception] | tuple[type[Exception], ...] | Callable[[Exception], bool]
"""Which errors to retry: an exception class, a tuple of them, or a predicate."""

# Errors that prove the request never reached the other side: the connection
# was refused or the name did not resolve. Retrying those cannot repeat an
# operation, whatever it does.
_NEVER_SENT: tuple[type[BaseException], ...] = (ConnectionRefusedError, socket.gaierror)


@dataclass(frozen=True, slots=True)
class RetryPreset:
    """Backoff settings: exponential, capped, with random jitter.

    The wait before retry number ``n`` is
    ``min(wait_max, wait_initial * wait_exp_base ** (n - 1) + random(0, wait_jitter))``
    seconds; retrying stops after ``attempts`` attempts or ``timeout`` seconds
    in total, whichever comes first, and the last error propagates.

    Presets (class attributes):

    * ``RetryPreset.FAST``: 3 attempts within 2 s (0.05 s, then 0.1 s...),
      for calls made while a client waits (an HTTP request handler).
    * ``RetryPreset.STANDARD``: 5 attempts within 20 s, waits 0.1 s up to 3 s,
      for background work and service-to-service calls.
    * ``RetryPreset.PATIENT``: 20 attempts within 120 s, waits 0.5 s up to
      10 s, for start-up (waiting for a database or a broker to come up).
    """

    attempts: int
    timeout: float
    """Seconds for all attempts together."""
    wait_initial: float
    """Seconds before the first retry (plus jitter)."""
    wait_max: float
    """Upper bound of one wait, in seconds."""
    wait_jitter: float
    """Upper bound of the random part added to each wait, in seconds."""
    wait_exp_base: float = 2.0

    FAST: ClassVar[RetryPreset]
    STANDARD: ClassVar[RetryPreset]
    PATIENT: ClassVar[RetryPreset]

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigurationError("attempts must be at least 1")
        if self.timeout <= 0 or min(self.wait_initial, self.wait_max, self.wait_jitter) < 0:
            raise ConfigurationError("timeout must be positive and waits non-negative")


RetryPreset.FAST = RetryPreset(
    attempts=3, timeout=2.0, wait_initial=0.05, wait_max=0.5, wait_jitter=0.05
)
RetryPreset.STANDARD = RetryPreset(
    attempts=5, timeout=20.0, wait_initial=0.1, wait_max=3.0, wait_jitter=0.5
)
RetryPreset.PATIENT = RetryPreset(
    attempts=20, timeout=120.0, wait_initial=0.5, wait_max=10.0, wait_jitter=1.0
)


def never_sent(exc: BaseException) -> bool:
    """True when ``exc`` proves the request never left: connection refused or DNS failure.

    The whole chain is searched (``__cause__`` and ``__context__``), because
    clients wrap the socket error: redis-py raises its own ``ConnectionError``
    while handling ``ConnectionRefusedError``.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, _NEVER_SENT):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _matches(on: RetryOn, exc: Exception) -> bool:
    if isinstance(on, type | tuple):
        return isinstance(exc, on)
    return on(exc)


def retry(
    on: RetryOn,
    *,
    idempotent: bool,
    preset: RetryPreset = RetryPreset.STANDARD,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Retry a sync or async function on ``on`` errors, with the ``preset``'s backoff.

    ``idempotent`` has no default on purpose: the caller says whether running
    the operation twice is harmless.

    * ``idempotent=True`` (reads, PUT-like writes, upserts keyed by an id):
      every error matching ``on`` is retried.
    * ``idempotent=False`` (charging a card, appending to a log, sending an
      email): an error matching ``on`` is retried only when it proves the
      request never reached the server (:func:`never_sent`: connection refused,
      DNS failure); anything else, a timeout above all, propagates at once,
      because the operation may have happened.

    Example::

        @retry(on=httpx.TransportError, idempotent=True, preset=RetryPreset.FAST)
        async def fetch_profile(user_id: str) -> dict[str, object]: ...

    Raises:
        MissingDependencyError: stamina is not installed (extra ``resilience``).
    """
    import_optional("stamina", extra="resilience")
    import stamina

    if idempotent:
        predicate: Callable[[Exception], bool] = lambda exc: _matches(on, exc)  # noqa: E731
    else:
        predicate = lambda exc: _matches(on, exc) and never_sent(exc)  # noqa: E731
    return stamina.retry(
        on=predicate,
        attempts=preset.attempts,
        timeout=preset.timeout,
        wait_initial=preset.wait_initial,
        wait_max=preset.wait_max,
        wait_jitter=preset.wait_jitter,
        wait_exp_base=preset.wait_exp_base,
    )
