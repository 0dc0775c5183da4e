"""Rate limits, their results, the limiter protocol and the in-memory limiter.

Two algorithms, chosen per limit (``RateLimit.algorithm``):

``"sliding_window"`` (the default): ``RateLimit(amount, period)`` admits at most
``amount`` calls in *any* window of ``period`` seconds. Each admitted call is
remembered until it is ``period`` old (a log of timestamps: O(amount) memory
per key); a call of ``cost`` at ``now`` is allowed when the calls of the last
``period`` seconds plus ``cost`` stay within ``amount``. A refused call is not
recorded. This is what ``"100/minute"`` means to users of slowapi / ``limits``
(their "moving window").

``"gcra"`` (opt in): the generic cell rate algorithm, a token bucket computed
from one number per key, the *theoretical arrival time* (TAT):

* it allows ``burst`` calls at once (``amount`` unless set) and refills
  continuously at ``amount / period`` calls per second: one call every
  ``interval = period / amount`` seconds;
* a call of ``cost`` at time ``now`` is allowed when
  ``max(tat, now) - (burst - cost) * interval <= now``; if allowed the TAT
  moves to ``max(tat, now) + cost * interval``, otherwise nothing changes.

GCRA needs O(1) memory and smooths traffic, but "100/minute" then means *a
burst of up to 100, then 100 a minute sustained*: a window of ``period``
seconds can see up to ``burst + amount - 1`` calls.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeAlias, runtime_checkable

from backend_kit.errors import ConfigurationError, RateLimitExceededError

__all__ = [
    "BackendDownPolicy",
    "MemoryRateLimiter",
    "RateLimit",
    "RateLimitAlgorithm",
    "RateLimitResult",
    "RateLimiter",
]

BackendDownPolicy: TypeAlias = Literal["allow", "deny", "raise"]
"""What a limiter backed by a server does when the server cannot be reached.

``"allow"`` (fail open): the call is allowed; ``"deny"`` (fail closed): it is
refused with ``retry_after`` set to the limiter's ``retry_after_when_down``;
``"raise"``: :class:`~backend_kit.errors.RateLimiterUnavailableError`. Every
answer given by a policy has ``degraded=True``.
"""

RateLimitAlgorithm: TypeAlias = Literal["sliding_window", "gcra"]
"""How a :class:`RateLimit` counts: ``"sliding_window"`` (default) or ``"gcra"``."""

_ALGORITHMS = ("sliding_window", "gcra")

_UNIT_SECONDS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_UNIT_NAMES = {
    "second": ("s", "sec", "secs", "second", "seconds"),
    "minute": ("m", "min", "mins", "minute", "minutes"),
    "hour": ("h", "hr", "hrs", "hour", "hours"),
    "day": ("d", "day", "days"),
}
_UNITS: dict[str, float] = {
    name: _UNIT_SECONDS[unit] for unit, names in _UNIT_NAMES.items() for name in names
}
_LIMIT_RE = re.compile(
    r"^\s*(?P<amount>\d+)\s*(?:/|per)\s*(?P<count>\d+(?:\.\d+)?)?\s*(?P<unit>[a-z]+)\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``amount`` calls in any window of ``period`` seconds (by default).

    Build one directly (``RateLimit(100, 60.0)``) or parse it
    (``RateLimit.parse("100/minute")``).

    ``algorithm="sliding_window"`` (the default) is exact: no window of
    ``period`` seconds ever holds more than ``amount`` allowed calls.
    ``algorithm="gcra"`` is a token bucket: bursts of up to ``burst`` calls
    (default ``amount``), refilled continuously at ``amount / period``; it
    needs O(1) memory per key, but a window of ``period`` can see up to
    ``burst + amount - 1`` calls. ``burst`` applies to GCRA only.

    Raises:
        ConfigurationError: for a non-positive amount, period or burst, an
            unknown algorithm, or a burst without ``algorithm="gcra"``.
    """

    amount: int
    period: float
    """Seconds."""
    burst: int = 0
    """GCRA only: calls allowed at once; 0 (the default) means ``amount``.
    A sliding window's burst is always ``amount``."""
    algorithm: RateLimitAlgorithm = "sliding_window"
    """``"sliding_window"`` (default) or ``"gcra"``."""
    interval: float = field(init=False, repr=False, compare=False)
    """Seconds between two calls at the sustained rate: ``period / amount``."""
    key_part: str = field(init=False, repr=False, compare=False)
    """How the limit appears in storage keys, so two limits on one key stay apart."""

    def __post_init__(self) -> None:
        if self.amount < 1:
            raise ConfigurationError("a rate limit's amount must be at least 1")
        if not self.period > 0 or math.isinf(self.period):
            raise ConfigurationError("a rate limit's period must be a positive number of seconds")
        if self.algorithm not in _ALGORITHMS:
            msg = f"a rate limit's algorithm is 'sliding_window' or 'gcra', not {self.algorithm!r}"
            raise ConfigurationError(msg)
        if self.burst < 0:
            raise ConfigurationError("a rate limit's burst must be at least 1")
        if self.algorithm == "sliding_window":
            if self.burst not in (0, self.amount):
                # A sliding window never admits more than `amount` per period:
                # a different burst would be silently meaningless.
                msg = "burst applies to GCRA only: pass algorithm='gcra' with burst"
                raise ConfigurationError(msg)
            object.__setattr__(self, "burst", self.amount)
            key_part = f"{self.amount}/{self.period:g}s/w"
        else:
            if self.burst == 0:
                object.__setattr__(self, "burst", self.amount)
            key_part = f"{self.amount}/{self.period:g}s/{self.burst}"
        object.__setattr__(self, "interval", self.period / self.amount)
        object.__setattr__(self, "key_part", key_part)

    @classmethod
    def parse(
        cls, text: str, *, algorithm: RateLimitAlgorithm = "sliding_window", burst: int = 0
    ) -> RateLimit:
        """Parse ``"100/minute"``, ``"10 per second"``, ``"5/30s"``, ``"1000/2 hours"``.

        Units: s/sec/second(s), m/min/minute(s), h/hr/hour(s), d/day(s).
        ``algorithm`` and ``burst`` are passed on (``burst`` needs ``"gcra"``).

        Raises:
            ConfigurationError: the text is not a rate limit.
        """
        match = _LIMIT_RE.match(text)
        unit = match["unit"].lower() if match else ""
        if match is None or unit not in _UNITS:
            msg = f"not a rate limit: {text!r} (expected e.g. '100/minute' or '5/30s')"
            raise ConfigurationError(msg)
        count = float(match["count"]) if match["count"] else 1.0
        return cls(int(match["amount"]), count * _UNITS[unit], burst, algorithm)

    def __str__(self) -> str:
        """``"100/minute"``, ``"5/30s"``, ``"100/minute (gcra)"``, ``"100/minute (gcra, burst 10)"``."""
        unit = next(
            (name for name, seconds in _UNIT_SECONDS.items() if seconds == self.period), None
        )
        text = f"{self.amount}/{unit}" if unit else f"{self.amount}/{self.period:g}s"
        if self.algorithm == "sliding_window":
            return text
        if self.burst == self.amount:
            return f"{text} (gcra)"
        return f"{text} (gcra, burst {self.burst})"


@dataclass(frozen=True, slots=True)
class RateLimitResult:
    """The answer to one check: allowed or not, and what the HTTP headers need."""

    allowed: bool
    limit: RateLimit
    remaining: int
    """Calls still allowed right now, after this one (a refused call takes nothing)."""
    reset_after: float
    """Seconds until the limit is fully replenished (``remaining == burst``): for a
    sliding window, until the newest counted call leaves the window."""
    retry_after: float
    """Seconds until a call of the same cost would be allowed; 0.0 when allowed."""
    degraded: bool = False
    """True when the backend was unreachable and the down-policy answered."""

    def headers(self) -> dict[str, str]:
        """HTTP response headers for this result.

        ``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset`` (whole
        seconds, rounded up) and ``RateLimit-Policy`` as in the IETF draft
        (draft-ietf-httpapi-ratelimit-headers-06, the form most clients parse),
        plus ``Retry-After`` (whole seconds, rounded up, at least 1) when refused.
        """
        limit = self.limit
        headers = {
            "RateLimit-Limit": str(limit.burst),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.reset_after)),
            "RateLimit-Policy": f"{limit.amount};w={math.ceil(limit.period)}",
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers

    def raise_if_refused(self) -> None:
        """Raise :class:`~backend_kit.errors.RateLimitExceededError` when not allowed."""
        if not self.allowed:
            raise RateLimitExceededError(
                f"rate limit {self.limit} exceeded; retry in {self.retry_after:.3g} s",
                retry_after=self.retry_after,
            )


@runtime_checkable
class RateLimiter(Protocol):
    """Counts calls per key against a :class:`RateLimit`.

    ``key`` names who is limited (a user id, an API key, a client IP); a key
    checked against two different limits is counted separately for each.
    ``cost`` is how many calls this one counts for (0 only looks).
    """

    def hit(self, key: str, limit: RateLimit, *, cost: int = 1) -> RateLimitResult:
        """Count a call and say whether it is allowed."""
        ...

    async def ahit(self, key: str, limit: RateLimit, *, cost: int = 1) -> RateLimitResult:
        """Count a call and say whether it is allowed (async)."""
        ...

    def reset(self, key: str, limit: RateLimit) -> None:
        """Forget what ``key`` used of ``limit`` (after a successful login, say)."""
        ...

    async def areset(self, key: str, limit: RateLimit) -> None:
        """Forget what ``key`` used of ``limit`` (async)."""
        ...


def check_cost(limit: RateLimit, cost: int) -> None:
    """Reject a cost no amount of waiting could ever allow (above the amount; GCRA: the burst)."""
    if cost < 0 or cost > limit.burst:
        most = "amount" if limit.algorithm == "sliding_window" else "burst"
        msg = f"cost must be between 0 and the limit's {most} ({limit.burst}), got {cost}"
        raise ConfigurationError(msg)


# A frozen dataclass's __init__ sets each field through object.__setattr__
# (about 0.5 µs for six fields); the limiters' hot path fills the slots
# directly instead, which is what __init__ does minus the indirection.
_new_result = object.__new__
_set_allowed, _set_limit, _set_remaining, _set_reset_after, _set_retry_after, _set_degraded = (
    getattr(RateLimitResult, name).__set__
    for name in ("allowed", "limit", "remaining", "reset_after", "retry_after", "degraded")
)


def gcra_result(
    limit: RateLimit, *, allowed: bool, tat_ahead: float, retry_after: float
) -> RateLimitResult:
    """Build a result from how far the TAT is ahead of now after the check (seconds)."""
    # Calls that fit in the slack left before the TAT is a whole burst ahead;
    # the epsilon keeps 2.9999999 (float rounding) from reading as 2.
    remaining = int(limit.burst - tat_ahead / limit.interval + 1e-9)
    result: RateLimitResult = _new_result(RateLimitResult)
    _set_allowed(result, allowed)
    _set_limit(result, limit)
    _set_remaining(result, remaining if remaining > 0 else 0)
    _set_reset_after(result, tat_ahead if tat_ahead > 0.0 else 0.0)
    _set_retry_after(result, retry_after if retry_after > 0.0 else 0.0)
    _set_degraded(result, False)
    return result


def window_result(
    limit: RateLimit, *, allowed: bool, remaining: int, reset_after: float, retry_after: float
) -> RateLimitResult:
    """Build a sliding-window result (seconds; negatives read as 0)."""
    result: RateLimitResult = _new_result(RateLimitResult)
    _set_allowed(result, allowed)
    _set_limit(result, limit)
    _set_remaining(result, remaining if remaining > 0 else 0)
    _set_reset_after(result, reset_after if reset_after > 0.0 else 0.0)
    _set_retry_after(result, retry_after if retry_after > 0.0 else 0.0)
    _set_degraded(result, False)
    return result


class MemoryRateLimiter:
    """Rate limiter in this process's memory, for one process and for tests.

    Both algorithms (the limit says which): a sliding window keeps, per key,
    a deque of the times its counted calls leave the window (one entry per
    unit of cost, at most ``amount``); GCRA keeps one float per key.
    Exact within the process and thread-safe; not shared between processes
    (use :class:`backend_kit.resilience.redis.RedisRateLimiter` for that).
    Keys with nothing left to remember are dropped every ``sweep_every``
    checks, so memory follows the number of keys recently limited.

    Args:
        clock: Seconds from a monotonic clock (default ``time.monotonic``);
            inject a fake one to drive time in tests.
        sweep_every: Checks between two sweeps of replenished keys (default 1024).
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, sweep_every: int = 1024
    ) -> None:
        self._clock = clock
        self._tats: dict[tuple[str, str], float] = {}
        self._windows: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()
        self._sweep_every = max(1, sweep_every)
        self._checks = 0

    def __len__(self) -> int:
        """Keys currently holding state."""
        return len(self._tats) + len(self._windows)

    def hit(self, key: str, limit: RateLimit, *, cost: int = 1) -> RateLimitResult:
        """Count a call of ``cost`` for ``key`` against ``limit``.

        Raises:
            ConfigurationError: ``cost`` is negative or larger than the burst.
        """
        check_cost(limit, cost)
        if limit.algorithm == "sliding_window":
            return self._hit_window(key, limit, cost)
        slot = (limit.key_part, key)
        with self._lock:
            now = self._clock()
            tat = max(self._tats.get(slot, now), now)
            new_tat = tat + cost * limit.interval
            # Not new_tat - burst * interval: that rounds, and a call of cost
            # == burst on a full bucket would be refused by 1e-15 s.
            allow_at = tat - (limit.burst - cost) * limit.interval
            allowed = allow_at <= now
            if allowed:
                self._tats[slot] = new_tat
            self._count_check(now)
        if allowed:
            return gcra_result(limit, allowed=True, tat_ahead=new_tat - now, retry_after=0.0)
        return gcra_result(limit, allowed=False, tat_ahead=tat - now, retry_after=allow_at - now)

    def _hit_window(self, key: str, limit: RateLimit, cost: int) -> RateLimitResult:
        slot = (limit.key_part, key)
        with self._lock:
            now = self._clock()
            # Expiry times, oldest first: a call made at t counts while now < t + period.
            window = self._windows.get(slot)
            if window is None:
                window = self._windows[slot] = deque()
            while window and window[0] <= now:
                window.popleft()
            count = len(window)
            allowed = count + cost <= limit.amount
            if allowed:
                if cost:
                    window.extend([now + limit.period] * cost)
                count += cost
                retry_after = 0.0
            else:
                # The call fits once the (count + cost - amount)-th oldest entry leaves.
                retry_after = window[count + cost - limit.amount - 1] - now
            reset_after = window[-1] - now if window else 0.0
            if not window:
                del self._windows[slot]
            self._count_check(now)
        return window_result(
            limit,
            allowed=allowed,
            remaining=limit.amount - count,
            reset_after=reset_after,
            retry_after=retry_after,
        )

    async def ahit(self, key: str, limit: RateLimit, *, cost: int = 1) -> RateLimitResult:
        """Async twin of :meth:`hit` (it never waits)."""
        return self.hit(key, limit, cost=cost)

    def reset(self, key: str, limit: RateLimit) -> None:
        """Forget what ``key`` used of ``limit``."""
        with self._lock:
            self._tats.pop((limit.key_part, key), None)
            self._windows.pop((limit.key_part, key), None)

    async def areset(self, key: str, limit: RateLimit) -> None:
        """Async twin of :meth:`reset`."""
        self.reset(key, limit)

    def _count_check(self, now: float) -> None:
        """Sweep every ``sweep_every`` checks. Lock held."""
        self._checks += 1
        if self._checks % self._sweep_every == 0:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        """Drop keys with nothing to remember: a TAT in the past, a window whose
        newest call has left it. Lock held."""
        stale = [slot for slot, tat in self._tats.items() if tat <= now]
        for slot in stale:
            del self._tats[slot]
        empty = [slot for slot, window in self._windows.items() if not window or window[-1] <= now]
        for slot in empty:
            del self._windows[slot]
