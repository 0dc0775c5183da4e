"""The circuit breaker: a hypothesis state machine against a plain model, then the API.

Time is a fake clock the tests move by hand: no test here sleeps.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck as HypothesisHealthCheck
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from backend_kit.errors import CircuitOpenError, ConfigurationError
from backend_kit.resilience import CircuitBreaker, CircuitState, StateChange


class FakeClock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class BoomError(Exception):
    """A failure of the protected dependency."""


class NotFoundError(KeyError):
    """An excluded error: the dependency answered."""


CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


def state_of(breaker: CircuitBreaker) -> CircuitState:
    """The state, read afresh (a plain attribute read would let mypy narrow it for good)."""
    return breaker.state


@dataclass
class Model:
    """The breaker's rules, written as plainly as possible."""

    threshold: int | None
    ratio: float | None
    window: int
    minimum: int
    reset_timeout: float
    trials: int
    state: str = CLOSED
    era: int = 0  # bumps on every transition; a call's outcome counts only in its era
    consecutive: int = 0
    recent: list[bool] = field(default_factory=list)  # True = failed
    opened_at: float = 0.0
    in_flight: int = 0
    succeeded: int = 0
    changes: list[tuple[str, str, float]] = field(default_factory=list)

    def move(self, new: str, now: float) -> None:
        self.changes.append((self.state, new, now))
        self.state = new
        self.era += 1
        self.consecutive = 0
        self.recent = []
        self.in_flight = 0
        self.succeeded = 0
        if new == OPEN:
            self.opened_at = now

    def touch(self, now: float) -> None:
        if self.state == OPEN and now - self.opened_at >= self.reset_timeout:
            self.move(HALF_OPEN, now)

    def admit(self, now: float) -> int | None:
        """The era of an admitted call, or None when refused."""
        self.touch(now)
        if self.state == CLOSED:
            return self.era
        if self.state == HALF_OPEN and self.in_flight + self.succeeded < self.trials:
            self.in_flight += 1
            return self.era
        return None

    def finish(self, era: int, outcome: str, now: float) -> None:
        if era != self.era:
            return
        if outcome == "cancelled":
            if self.state == HALF_OPEN:
                self.in_flight -= 1
            return
        failed = outcome == "failure"
        if self.state == CLOSED:
            if self.ratio is None:
                assert self.threshold is not None
                self.consecutive = self.consecutive + 1 if failed else 0
                if self.consecutive >= self.threshold:
                    self.move(OPEN, now)
            else:
                self.recent = [*self.recent, failed][-self.window :]
                failures = sum(self.recent)
                if len(self.recent) >= self.minimum and failures >= self.ratio * len(self.recent):
                    self.move(OPEN, now)
        elif self.state == HALF_OPEN:
            self.in_flight -= 1
            if failed:
                self.move(OPEN, now)
            else:
                self.succeeded += 1
                if self.succeeded >= self.trials:
                    self.move(CLOSED, now)


@dataclass
class InFlight:
    context: contextvars.Context
    era: int


OUTCOMES = st.sampled_from(["success", "failure", "excluded", "cancelled"])


def _raise_for(outcome: str) -> BaseException | None:
    return {
        "success": None,
        "failure": BoomError("down"),
        "excluded": NotFoundError("no such row"),
        "cancelled": asyncio.CancelledError(),
    }[outcome]


class BreakerMachine(RuleBasedStateMachine):
    calls = Bundle("calls")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.events: list[StateChange] = []

    @initialize(
        mode=st.sampled_from(["threshold", "ratio"]),
        threshold=st.integers(1, 4),
        ratio=st.sampled_from([0.25, 0.5, 0.75, 1.0]),
        window=st.integers(1, 5),
        minimum_share=st.floats(0.0, 1.0),
        reset_timeout=st.sampled_from([0.0, 1.0, 5.0]),
        trials=st.integers(1, 3),
    )
    def configure(
        self,
        mode: str,
        threshold: int,
        ratio: float,
        window: int,
        minimum_share: float,
        reset_timeout: float,
        trials: int,
    ) -> None:
        minimum = max(1, round(minimum_share * window))
        if mode == "threshold":
            self.breaker = CircuitBreaker(
                "machine",
                failure_threshold=threshold,
                reset_timeout=reset_timeout,
                half_open_max_calls=trials,
                exclude=[NotFoundError],
                on_state_change=self.events.append,
                clock=self.clock,
            )
            self.model = Model(threshold, None, window, minimum, reset_timeout, trials)
        else:
            self.breaker = CircuitBreaker(
                "machine",
                failure_ratio=ratio,
                window=window,
                minimum_calls=minimum,
                reset_timeout=reset_timeout,
                half_open_max_calls=trials,
                exclude=[NotFoundError],
                on_state_change=self.events.append,
                clock=self.clock,
            )
            self.model = Model(None, ratio, window, minimum, reset_timeout, trials)

    @rule(seconds=st.sampled_from([0.0, 0.5, 1.0, 2.5, 5.0, 10.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(target=calls)
    def start(self) -> InFlight | None:
        # Each call lives in its own context, like a task or a thread, so
        # calls can finish in any order.
        context = contextvars.Context()
        era = self.model.admit(self.clock.now)
        refusal: CircuitOpenError | None = None
        try:
            context.run(self.breaker.__enter__)
        except CircuitOpenError as exc:
            refusal = exc
        if refusal is not None:
            assert era is None, "the breaker refused a call the model admits"
            assert refusal.name == "machine"
            if self.model.state == OPEN:
                expected = self.model.opened_at + self.model.reset_timeout - self.clock.now
                assert refusal.retry_after == pytest.approx(expected)
            else:
                assert refusal.retry_after is None
            return None
        assert era is not None, "the breaker admitted a call the model refuses"
        return InFlight(context, era)

    @rule(call=consumes(calls), outcome=OUTCOMES)
    def finish(self, call: InFlight | None, outcome: str) -> None:
        if call is None:
            return
        error = _raise_for(outcome)
        call.context.run(self.breaker.__exit__, None if error is None else type(error), error, None)
        self.model.finish(call.era, outcome, self.clock.now)

    @rule(outcome=OUTCOMES)
    def call_through_decorator(self, outcome: str) -> None:
        @self.breaker
        def protected() -> str:
            error = _raise_for(outcome)
            if error is not None:
                raise error
            return "ok"

        era = self.model.admit(self.clock.now)
        try:
            assert protected() == "ok"
        except CircuitOpenError:
            assert era is None
            return
        except (BoomError, NotFoundError, asyncio.CancelledError):
            pass
        assert era is not None
        self.model.finish(era, outcome, self.clock.now)

    @rule()
    def reset(self) -> None:
        self.breaker.reset()
        if self.model.state == CLOSED:
            self.model.consecutive = 0
            self.model.recent = []
        else:
            self.model.move(CLOSED, self.clock.now)

    @rule()
    def trip(self) -> None:
        self.breaker.trip()
        if self.model.state == OPEN:
            self.model.opened_at = self.clock.now
        else:
            self.model.move(OPEN, self.clock.now)

    @rule()
    def read_state(self) -> None:
        # Reading the state is one of the moments an elapsed timeout is noticed.
        self.model.touch(self.clock.now)
        assert self.breaker.state.value == self.model.state

    @invariant()
    def same_transitions(self) -> None:
        if not hasattr(self, "model"):
            return
        seen = [(e.old.value, e.new.value, e.at) for e in self.events]
        assert seen == self.model.changes
        assert self.breaker._state.value == self.model.state


BreakerMachine.TestCase.settings = settings(
    max_examples=500,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HypothesisHealthCheck.too_slow],
)
TestBreakerMachine = BreakerMachine.TestCase


# ---------------------------------------------------------------- the API
def test_opens_after_threshold_and_closes_after_a_trial_succeeds() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("db", failure_threshold=2, reset_timeout=10.0, clock=clock)

    @breaker
    def query(ok: bool) -> int:
        if not ok:
            raise BoomError("down")
        return 42

    with pytest.raises(BoomError):
        query(False)
    assert state_of(breaker) is CircuitState.CLOSED
    with pytest.raises(BoomError):
        query(False)
    assert state_of(breaker) is CircuitState.OPEN
    with pytest.raises(CircuitOpenError) as refused:
        query(True)
    assert refused.value.retry_after == pytest.approx(10.0)
    assert "'db' is open" in str(refused.value)
    clock.advance(10.0)
    assert state_of(breaker) is CircuitState.HALF_OPEN
    assert query(True) == 42
    assert state_of(breaker) is CircuitState.CLOSED


async def test_async_decorator_keeps_the_function_and_counts_failures() -> None:
    breaker = CircuitBreaker(failure_threshold=1, clock=FakeClock())

    @breaker
    async def fetch(user_id: int, *, verbose: bool = False) -> str:
        """Fetch a user."""
        if user_id < 0:
            raise BoomError("down")
        return f"user {user_id} {verbose}"

    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch a user."
    assert await fetch(1, verbose=True) == "user 1 True"
    with pytest.raises(BoomError):
        await fetch(-1)
    with pytest.raises(CircuitOpenError):
        await fetch(1)


async def test_async_context_manager_and_acall() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, clock=clock)

    async def fail() -> None:
        raise BoomError("down")

    async with breaker:
        await asyncio.sleep(0)
    with pytest.raises(BoomError):
        await breaker.acall(fail)
    with pytest.raises(CircuitOpenError):
        async with breaker:
            pytest.fail("an open breaker must not run the block")
    clock.advance(1.0)

    async def ok(x: int) -> int:
        return x * 2

    assert await breaker.acall(ok, 21) == 42
    assert state_of(breaker) is CircuitState.CLOSED


def test_sync_call_and_context_manager() -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    assert breaker.call(int, "7") == 7
    with pytest.raises(BoomError), breaker:
        raise BoomError("down")
    with pytest.raises(BoomError), breaker:
        raise BoomError("down")
    assert state_of(breaker) is CircuitState.OPEN


def test_excluded_exceptions_and_predicates_count_as_success() -> None:
    breaker = CircuitBreaker(
        failure_threshold=2,
        exclude=[NotFoundError, lambda exc: isinstance(exc, BoomError) and "4xx" in str(exc)],
        clock=FakeClock(),
    )
    for error in (
        BoomError("down"),
        NotFoundError("x"),
        BoomError("down"),
        BoomError("4xx bad request"),
    ):
        with pytest.raises(type(error)), breaker:
            raise error
    # Failure, success, failure, success: never two in a row.
    assert state_of(breaker) is CircuitState.CLOSED
    with pytest.raises(BoomError), breaker:
        raise BoomError("down")
    with pytest.raises(BoomError), breaker:
        raise BoomError("down")
    assert state_of(breaker) is CircuitState.OPEN


def test_failure_ratio_needs_minimum_calls() -> None:
    breaker = CircuitBreaker(failure_ratio=0.5, window=10, minimum_calls=4, clock=FakeClock())
    for _ in range(3):
        with pytest.raises(BoomError), breaker:
            raise BoomError("down")
    assert state_of(breaker) is CircuitState.CLOSED, "3 calls are fewer than minimum_calls"
    with breaker:
        pass
    assert state_of(breaker) is CircuitState.OPEN, "3 failures of 4 calls reach the 0.5 ratio"


def test_hooks_get_every_change_and_a_broken_hook_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    changes: list[StateChange] = []

    def broken(change: StateChange) -> None:
        raise RuntimeError("metrics backend down")

    breaker = CircuitBreaker(
        "api",
        failure_threshold=1,
        reset_timeout=5.0,
        on_state_change=[changes.append, broken],
        clock=clock,
    )
    with pytest.raises(BoomError), breaker:
        raise BoomError("down")
    clock.advance(5.0)
    with breaker:
        pass
    assert [(c.old, c.new, c.reason) for c in changes] == [
        (CircuitState.CLOSED, CircuitState.OPEN, "1 consecutive failures"),
        (CircuitState.OPEN, CircuitState.HALF_OPEN, "reset timeout elapsed"),
        (CircuitState.HALF_OPEN, CircuitState.CLOSED, "1 trial call(s) succeeded"),
    ]
    assert changes[0].at == 1000.0
    assert changes[1].at == 1005.0
    assert "on_state_change hook failed" in caplog.text
    assert "circuit 'api' opened: 1 consecutive failures" in caplog.text


def test_log_state_changes_off_keeps_the_hooks_and_silences_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    changes: list[StateChange] = []
    breaker = CircuitBreaker(
        "quiet",
        failure_threshold=1,
        reset_timeout=7.5,
        on_state_change=changes.append,
        log_state_changes=False,
        clock=FakeClock(),
    )
    assert breaker.reset_timeout == 7.5
    with caplog.at_level("DEBUG", logger="backend_kit.resilience"):
        breaker.trip()
        breaker.reset()
    assert [c.new for c in changes] == [CircuitState.OPEN, CircuitState.CLOSED]
    assert caplog.records == []


def test_an_outcome_from_before_the_breaker_opened_does_not_count() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=0.0, clock=clock)
    slow = contextvars.Context()
    slow.run(breaker.__enter__)  # admitted while closed
    breaker.trip()
    assert state_of(breaker) is CircuitState.HALF_OPEN  # reset_timeout 0
    # The slow call succeeds now; it was no trial, so the breaker stays half-open.
    slow.run(breaker.__exit__, None, None, None)
    assert state_of(breaker) is CircuitState.HALF_OPEN


def test_nested_blocks_of_two_breakers() -> None:
    outer = CircuitBreaker("outer", failure_threshold=1, clock=FakeClock())
    inner = CircuitBreaker("inner", failure_threshold=1, clock=FakeClock())
    with pytest.raises(BoomError), outer, inner:
        raise BoomError("down")
    assert state_of(outer) is CircuitState.OPEN
    assert state_of(inner) is CircuitState.OPEN


def test_generators_are_refused() -> None:
    breaker = CircuitBreaker()

    def numbers() -> object:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        breaker(numbers)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"failure_threshold": 3, "failure_ratio": 0.5},
        {"failure_threshold": 0},
        {"failure_ratio": 0.0},
        {"failure_ratio": 1.5},
        {"failure_ratio": 0.5, "window": 5, "minimum_calls": 6},
        {"reset_timeout": -1},
        {"half_open_max_calls": 0},
    ],
)
def test_invalid_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        CircuitBreaker(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------ concurrency
def test_half_open_lets_exactly_the_trial_calls_through_threads() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        failure_threshold=1, reset_timeout=1.0, half_open_max_calls=2, clock=clock
    )
    breaker.trip()
    clock.advance(1.0)
    release = threading.Event()
    entered = threading.Semaphore(0)
    admitted: list[int] = []
    refused: list[int] = []
    lock = threading.Lock()

    @breaker
    def trial(i: int) -> None:
        with lock:
            admitted.append(i)
        entered.release()
        assert release.wait(10)

    def worker(i: int) -> None:
        try:
            trial(i)
        except CircuitOpenError:
            with lock:
                refused.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for _ in range(2):
        assert entered.acquire(timeout=10)
    # Wait for the other 14 to be refused while the 2 trials hold their slots.
    for _ in range(1000):
        with lock:
            if len(refused) == 14:
                break
        threading.Event().wait(0.005)
    release.set()
    for thread in threads:
        thread.join(10)
    assert len(admitted) == 2
    assert len(refused) == 14
    assert state_of(breaker) is CircuitState.CLOSED


def test_consecutive_failures_from_many_threads_are_all_counted() -> None:
    breaker = CircuitBreaker(failure_ratio=1.0, window=400, minimum_calls=400, clock=FakeClock())
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(50):
            try:
                with breaker:
                    raise BoomError("down")
            except (BoomError, CircuitOpenError):
                pass

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    # 400 failures were needed, and 400 happened: no lost update.
    assert state_of(breaker) is CircuitState.OPEN


async def test_half_open_trials_across_tasks_and_cancellation_hands_the_slot_back() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, clock=clock)
    breaker.trip()
    clock.advance(1.0)
    gate = asyncio.Event()

    @breaker
    async def trial() -> str:
        await gate.wait()
        return "ok"

    first = asyncio.create_task(trial())
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpenError, match="trial calls are in flight"):
        await trial()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    # The cancelled trial gave its slot back: the next call is the trial.
    second = asyncio.create_task(trial())
    await asyncio.sleep(0)
    gate.set()
    assert await second == "ok"
    assert state_of(breaker) is CircuitState.CLOSED
