"""The circuit breaker: stop calling a dependency that keeps failing, try again later.

States::

    CLOSED ──(failure_threshold consecutive failures,
    │         or failure_ratio over the last `window` calls)──▶ OPEN
    ▲                                                           │
    │                                        (reset_timeout elapsed)
    │                                                           ▼
    └──(half_open_max_calls trial calls succeeded)──── HALF_OPEN ──(a trial failed)──▶ OPEN

The breaker is thread- and asyncio-safe: every state change happens under one
``threading.Lock`` that is never held across an ``await`` or a user call. The
success path of a closed breaker takes no lock at all (one attribute read
before the call, two after), which is what keeps its overhead well under a
microsecond.

Every admitted call carries the *generation* of the state it was admitted in;
the generation changes on every transition, so the outcome of a call that
started before the breaker opened (or closed) is ignored instead of counting
towards the new state.
"""

from __future__ import annotations

import enum
import functools
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ParamSpec, TypeAlias, TypeVar, cast

from backend_kit.errors import CircuitOpenError, ConfigurationError

__all__ = [
    "CircuitBreaker",
    "CircuitState",
    "StateChange",
    "StateChangeHook",
]

logger = logging.getLogger("backend_kit.resilience")

P = ParamSpec("P")
R = TypeVar("R")


class CircuitState(enum.StrEnum):
    """Where a :class:`CircuitBreaker` stands."""

    CLOSED = "closed"
    """Calls go through; failures are counted."""
    OPEN = "open"
    """Calls are refused with :class:`~backend_kit.errors.CircuitOpenError`."""
    HALF_OPEN = "half_open"
    """A limited number of trial calls go through to probe the dependency."""


@dataclass(frozen=True, slots=True)
class StateChange:
    """One transition of a breaker, as passed to ``on_state_change`` hooks."""

    breaker: str
    """The breaker's name."""
    old: CircuitState
    new: CircuitState
    at: float
    """The breaker's clock reading when it changed (seconds, ``time.monotonic`` by default)."""
    reason: str
    """Why, in words: ``"5 consecutive failures"``, ``"reset timeout elapsed"``..."""


StateChangeHook: TypeAlias = Callable[[StateChange], object]
"""A callable that gets each :class:`StateChange`; its return value is ignored."""

ExceptionFilter: TypeAlias = type[BaseException] | Callable[[BaseException], bool]

# The admitted calls of `with breaker:` blocks, per thread and per asyncio task
# (each task runs in a copy of its creator's context, so a push in one task is
# invisible to the others). One module-level variable for every breaker:
# context variables must not be created per instance (they are never freed).
_ACTIVE_CALLS: ContextVar[tuple[tuple[CircuitBreaker, int], ...]] = ContextVar(
    "backend_kit_breaker_calls", default=()
)

_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN


class CircuitBreaker:
    """Refuse calls to a failing dependency for a while, then probe it with trial calls.

    Use it as a decorator (sync or async functions, signature kept), or as a
    context manager (``with breaker:`` / ``async with breaker:``)::

        breaker = CircuitBreaker("payments", failure_threshold=5, reset_timeout=30.0)

        @breaker
        async def charge(order_id: str) -> Receipt: ...

        async with breaker:
            await client.refund(order_id)

    Args:
        name: Shown in logs, errors and :class:`StateChange` events.
        failure_threshold: Open after this many consecutive failures (default 5).
            Mutually exclusive with ``failure_ratio``.
        failure_ratio: Instead of consecutive failures, open when the share of
            failed calls among the last ``window`` calls reaches this ratio
            (0 < ratio <= 1), once at least ``minimum_calls`` calls were recorded.
        window: How many recent calls ``failure_ratio`` looks at (default 20).
        minimum_calls: Calls needed before the ratio is judged (default: ``window``).
        reset_timeout: Seconds the breaker stays open before it lets trial calls
            through (default 30.0).
        half_open_max_calls: Trial calls allowed while half-open (default 1).
            The breaker closes once that many trials succeeded and opens again
            at the first trial that fails; calls beyond it are refused.
        exclude: Exceptions that do *not* count as failures: exception classes,
            or predicates ``(exc) -> bool`` returning True for an excluded one.
            An excluded exception still propagates; it means the dependency
            answered (a 404, a validation error), so it counts as a success.
        on_state_change: A hook, or several, called with every
            :class:`StateChange` after the transition, outside the lock. Keep
            hooks quick; an exception in a hook is logged and otherwise ignored.
        clock: Seconds from a monotonic clock (default ``time.monotonic``);
            inject a fake one to drive the reset timeout in tests.
        log_state_changes: Log each transition on ``backend_kit.resilience``
            (opening as a warning, the others as info; default True). Turn it
            off when the owner logs the failures itself (the cache does), so
            one outage is not reported twice.

    Only exceptions derived from ``Exception`` count as failures. A call ended
    by ``asyncio.CancelledError``, ``KeyboardInterrupt`` and the like records
    no outcome (a half-open trial slot is handed back).

    Raises:
        ConfigurationError: for invalid settings.
    """

    __slots__ = (
        "_clock",
        "_closed_generation",
        "_exclude_predicates",
        "_exclude_types",
        "_failure_ratio",
        "_failure_threshold",
        "_failures",
        "_generation",
        "_half_open_max_calls",
        "_hooks",
        "_lock",
        "_log_state_changes",
        "_minimum_calls",
        "_opened_at",
        "_outcomes",
        "_reset_timeout",
        "_state",
        "_trial_successes",
        "_trials_in_flight",
        "_window_failures",
        "name",
    )

    def __init__(
        self,
        name: str = "circuit",
        *,
        failure_threshold: int | None = None,
        failure_ratio: float | None = None,
        window: int = 20,
        minimum_calls: int | None = None,
        reset_timeout: float = 30.0,
        half_open_max_calls: int = 1,
        exclude: Iterable[ExceptionFilter] = (),
        on_state_change: StateChangeHook | Iterable[StateChangeHook] = (),
        clock: Callable[[], float] = time.monotonic,
        log_state_changes: bool = True,
    ) -> None:
        if failure_threshold is not None and failure_ratio is not None:
            msg = "give either failure_threshold (consecutive failures) or failure_ratio, not both"
            raise ConfigurationError(msg)
        if failure_ratio is not None:
            if not 0.0 < failure_ratio <= 1.0:
                raise ConfigurationError("failure_ratio must be in (0, 1]")
            if window < 1:
                raise ConfigurationError("window must be at least 1 call")
            minimum = window if minimum_calls is None else minimum_calls
            if not 1 <= minimum <= window:
                raise ConfigurationError("minimum_calls must be between 1 and window")
        else:
            minimum = 0
        threshold = 5 if failure_threshold is None else failure_threshold
        if threshold < 1:
            raise ConfigurationError("failure_threshold must be at least 1")
        if reset_timeout < 0:
            raise ConfigurationError("reset_timeout must be >= 0 seconds")
        if half_open_max_calls < 1:
            raise ConfigurationError("half_open_max_calls must be at least 1")

        self.name = name
        self._failure_threshold = threshold
        self._failure_ratio = failure_ratio
        self._minimum_calls = minimum
        self._reset_timeout = float(reset_timeout)
        self._half_open_max_calls = half_open_max_calls
        types: list[type[BaseException]] = []
        predicates: list[Callable[[BaseException], bool]] = []
        for item in exclude:
            if isinstance(item, type):
                types.append(item)
            else:
                predicates.append(item)
        self._exclude_types = tuple(types)
        self._exclude_predicates = tuple(predicates)
        if callable(on_state_change):
            self._hooks: tuple[StateChangeHook, ...] = (on_state_change,)
        else:
            self._hooks = tuple(on_state_change)
        self._clock = clock
        self._log_state_changes = log_state_changes

        self._lock = threading.Lock()
        self._state = _CLOSED
        self._generation = 0
        # The generation while CLOSED, -1 otherwise: the lock-free fast path
        # reads this single attribute to admit a call.
        self._closed_generation = 0
        self._failures = 0  # consecutive failures (threshold mode)
        self._outcomes: deque[bool] = deque(maxlen=window)  # True = failed (ratio mode)
        self._window_failures = 0
        self._opened_at = 0.0
        self._trials_in_flight = 0
        self._trial_successes = 0

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self._state.value}>"

    # ------------------------------------------------------------ public state
    @property
    def reset_timeout(self) -> float:
        """Seconds the breaker stays open before it lets trial calls through."""
        return self._reset_timeout

    @property
    def state(self) -> CircuitState:
        """The current state; an open breaker whose reset timeout elapsed reports half-open."""
        if self._state is _OPEN:
            with self._lock:
                change = self._half_open_if_due()
            if change is not None:
                self._notify(change)
        return self._state

    def reset(self) -> None:
        """Close the breaker now and forget recorded failures (an operator's override)."""
        with self._lock:
            change = self._move(_CLOSED, "reset() called") if self._state is not _CLOSED else None
            self._failures = 0
            self._outcomes.clear()
            self._window_failures = 0
        if change is not None:
            self._notify(change)

    def trip(self) -> None:
        """Open the breaker now, as if the failure threshold had been reached.

        On an open breaker it only restarts the reset timeout (no hook call).
        """
        with self._lock:
            if self._state is _OPEN:
                self._opened_at = self._clock()
                return
            change = self._move(_OPEN, "trip() called")
        self._notify(change)

    # -------------------------------------------------------------- decorator
    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Wrap ``func`` (sync or async) so each call goes through the breaker.

        Raises:
            TypeError: for generator functions (their body runs after the call returns).
        """
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError("a circuit breaker cannot wrap a generator function")
        if inspect.iscoroutinefunction(func):
            afunc = cast(Callable[..., Any], func)

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                token = self._admit()
                try:
                    result = await afunc(*args, **kwargs)
                except Exception as exc:
                    self._record_error(token, exc)
                    raise
                except BaseException:
                    self._record_abort(token)
                    raise
                self._record_success(token)
                return result

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            token = self._admit()
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                self._record_error(token, exc)
                raise
            except BaseException:
                self._record_abort(token)
                raise
            self._record_success(token)
            return result

        return wrapper

    def call(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``func(*args, **kwargs)`` through the breaker.

        Raises:
            CircuitOpenError: the breaker refused the call (``func`` was not called).
        """
        token = self._admit()
        try:
            result = func(*args, **kwargs)
        except Exception as exc:
            self._record_error(token, exc)
            raise
        except BaseException:
            self._record_abort(token)
            raise
        self._record_success(token)
        return result

    async def acall(
        self, func: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``func(*args, **kwargs)`` through the breaker; the async twin of :meth:`call`.

        Raises:
            CircuitOpenError: the breaker refused the call (``func`` was not called).
        """
        token = self._admit()
        try:
            result = await func(*args, **kwargs)
        except Exception as exc:
            self._record_error(token, exc)
            raise
        except BaseException:
            self._record_abort(token)
            raise
        self._record_success(token)
        return result

    # -------------------------------------------------------- context managers
    def __enter__(self) -> CircuitBreaker:
        token = self._admit()
        _ACTIVE_CALLS.set((*_ACTIVE_CALLS.get(), (self, token)))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        token = self._pop_active_call()
        if exc is None:
            self._record_success(token)
        elif isinstance(exc, Exception):
            self._record_error(token, exc)
        else:
            self._record_abort(token)

    async def __aenter__(self) -> CircuitBreaker:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)

    def _pop_active_call(self) -> int:
        calls = _ACTIVE_CALLS.get()
        for index in range(len(calls) - 1, -1, -1):
            if calls[index][0] is self:
                _ACTIVE_CALLS.set(calls[:index] + calls[index + 1 :])
                return calls[index][1]
        raise RuntimeError(f"{self!r} exited a block it did not enter")  # pragma: no cover

    # ------------------------------------------------------------ the machine
    def _admit(self) -> int:
        """Let a call through and return its generation, or raise CircuitOpenError."""
        generation = self._closed_generation
        if generation >= 0:
            return generation
        return self._admit_slow()

    def _admit_slow(self) -> int:
        with self._lock:
            change = self._half_open_if_due()
            state = self._state
            if state is _HALF_OPEN:
                if self._trials_in_flight + self._trial_successes < self._half_open_max_calls:
                    self._trials_in_flight += 1
                    token: int | None = self._generation
                    retry_after: float | None = None
                else:
                    token, retry_after = None, None
            elif state is _OPEN:
                token = None
                retry_after = max(0.0, self._opened_at + self._reset_timeout - self._clock())
            else:  # closed again since the lock-free read
                token, retry_after = self._generation, None
        if change is not None:
            self._notify(change)
        if token is None:
            if retry_after is None:
                message = f"circuit {self.name!r} is half-open and its trial calls are in flight"
            else:
                message = f"circuit {self.name!r} is open; next trial in {retry_after:.3g} s"
            raise CircuitOpenError(message, name=self.name, retry_after=retry_after)
        return token

    def _record_success(self, token: int) -> None:
        # Lock-free when there is nothing to record: closed, counting
        # consecutive failures, and none counted. A failure recorded
        # concurrently is still counted (it simply ran "after" this success).
        if token == self._closed_generation and self._failures == 0 and self._failure_ratio is None:
            return
        self._record(token, failed=False)

    def _record_error(self, token: int, exc: Exception) -> None:
        self._record(token, failed=not self._is_excluded(exc))

    def _is_excluded(self, exc: BaseException) -> bool:
        if isinstance(exc, self._exclude_types):
            return True
        return any(predicate(exc) for predicate in self._exclude_predicates)

    def _record(self, token: int, *, failed: bool) -> None:
        with self._lock:
            if token != self._generation:
                return  # admitted in an earlier state: its outcome no longer counts
            change = None
            if self._state is _CLOSED:
                change = self._count_outcome(failed)
            elif self._state is _HALF_OPEN:
                self._trials_in_flight -= 1
                if failed:
                    change = self._move(_OPEN, "a trial call failed")
                else:
                    self._trial_successes += 1
                    if self._trial_successes >= self._half_open_max_calls:
                        change = self._move(
                            _CLOSED, f"{self._trial_successes} trial call(s) succeeded"
                        )
        if change is not None:
            self._notify(change)

    def _record_abort(self, token: int) -> None:
        """A call ended without an outcome (cancelled): hand back its trial slot."""
        with self._lock:
            if token == self._generation and self._state is _HALF_OPEN:
                self._trials_in_flight -= 1

    def _count_outcome(self, failed: bool) -> StateChange | None:
        """Record a closed-state outcome; return the change to OPEN when it trips. Lock held."""
        ratio = self._failure_ratio
        if ratio is None:
            if not failed:
                self._failures = 0
                return None
            self._failures += 1
            if self._failures >= self._failure_threshold:
                return self._move(_OPEN, f"{self._failures} consecutive failures")
            return None
        outcomes = self._outcomes
        if len(outcomes) == outcomes.maxlen and outcomes[0]:
            self._window_failures -= 1
        outcomes.append(failed)
        if failed:
            self._window_failures += 1
        calls = len(outcomes)
        # Judged after every outcome: a success can complete minimum_calls.
        if calls >= self._minimum_calls and self._window_failures >= ratio * calls:
            return self._move(_OPEN, f"{self._window_failures} of the last {calls} calls failed")
        return None

    def _half_open_if_due(self) -> StateChange | None:
        """OPEN -> HALF_OPEN once the reset timeout has elapsed. Lock held."""
        if self._state is _OPEN and self._clock() - self._opened_at >= self._reset_timeout:
            return self._move(_HALF_OPEN, "reset timeout elapsed")
        return None

    def _move(self, new: CircuitState, reason: str) -> StateChange:
        """Enter ``new`` with a fresh generation and fresh counters. Lock held."""
        old = self._state
        now = self._clock()
        self._state = new
        self._generation += 1
        self._closed_generation = self._generation if new is _CLOSED else -1
        self._failures = 0
        self._outcomes.clear()
        self._window_failures = 0
        self._trials_in_flight = 0
        self._trial_successes = 0
        if new is _OPEN:
            self._opened_at = now
        return StateChange(self.name, old, new, now, reason)

    def _notify(self, change: StateChange) -> None:
        if not self._log_state_changes:
            pass
        elif change.new is _OPEN:
            logger.warning("circuit %r opened: %s", change.breaker, change.reason)
        else:
            logger.info("circuit %r is %s: %s", change.breaker, change.new.value, change.reason)
        for hook in self._hooks:
            try:
                hook(change)
            except Exception:
                # A broken metrics hook must not break the calls it observes.
                logger.exception("circuit %r: on_state_change hook failed", change.breaker)
