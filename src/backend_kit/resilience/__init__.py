"""Resilience: circuit breaker, retry presets and rate limiting.

Everything here is dependency-free except :func:`retry`, which imports stamina
(extra ``resilience``) when it builds a decorator. The Redis rate limiter lives
in :mod:`backend_kit.resilience.redis` (extra ``redis``).
"""

from __future__ import annotations

from backend_kit.errors import (
    CircuitOpenError,
    RateLimiterUnavailableError,
    RateLimitExceededError,
    ResilienceError,
)
from backend_kit.resilience._breaker import (
    CircuitBreaker,
    CircuitState,
    StateChange,
    StateChangeHook,
)
from backend_kit.resilience._ratelimit import (
    BackendDownPolicy,
    MemoryRateLimiter,
    RateLimit,
    RateLimitAlgorithm,
    RateLimiter,
    RateLimitResult,
)
from backend_kit.resilience._retry import RetryOn, RetryPreset, never_sent, retry

__all__ = [
    "BackendDownPolicy",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "MemoryRateLimiter",
    "RateLimit",
    "RateLimitAlgorithm",
    "RateLimitExceededError",
    "RateLimitResult",
    "RateLimiter",
    "RateLimiterUnavailableError",
    "ResilienceError",
    "RetryOn",
    "RetryPreset",
    "StateChange",
    "StateChangeHook",
    "never_sent",
    "retry",
]
