"""Fail open with a cool-down: after a backend failure, skip the backend for a while.

A small private breaker, kept in one class so it can be swapped for
``backend_kit.resilience``'s circuit breaker later without touching the
manager. States: *closed* (``blocked_until == 0``: every call uses the
backend), *open* (calls skip the backend until ``blocked_until``), and
*half-open* (the first call after the cool-down probes the backend; it
closes the breaker on success and reopens it on failure).
"""

from __future__ import annotations

import logging
import time

__all__ = ["CoolDown"]


class CoolDown:
    """Decides whether to touch the backend, and logs failures once per interval."""

    __slots__ = ("_logger", "_next_log", "_suppressed", "blocked_until", "cooldown")

    def __init__(self, cooldown: float, logger: logging.Logger) -> None:
        if cooldown < 0:
            raise ValueError("cooldown must be >= 0 seconds")
        self.cooldown = cooldown
        self.blocked_until = 0.0  # monotonic seconds; 0.0 means closed (the fast check)
        self._logger = logger
        self._next_log = 0.0
        self._suppressed = 0

    def allows(self) -> bool:
        """Called only when ``blocked_until`` is set: may this call use the backend?

        After the cool-down the first caller becomes the probe (the window is
        pushed forward, so concurrent callers keep skipping while it runs).
        """
        now = time.monotonic()
        if now < self.blocked_until:
            return False
        self.blocked_until = now + self.cooldown
        return True

    def failed(self, operation: str, exc: BaseException) -> None:
        """The backend failed: open the breaker and log (at most once per cool-down)."""
        now = time.monotonic()
        self.blocked_until = now + self.cooldown if self.cooldown > 0 else 0.0
        if now >= self._next_log:
            more = (
                f" ({self._suppressed} more failures since the last warning)"
                if self._suppressed
                else ""
            )
            self._logger.warning(
                "cache backend failed on %s (%s: %s); calling through without the cache for %.1f s%s",
                operation,
                type(exc).__name__,
                exc,
                self.cooldown,
                more,
            )
            self._next_log = now + max(self.cooldown, 1.0)
            self._suppressed = 0
        else:
            self._suppressed += 1

    def recovered(self) -> None:
        """A probe succeeded: close the breaker."""
        self.blocked_until = 0.0
        self._logger.info("cache backend answers again; caching resumed")
