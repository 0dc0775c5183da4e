"""Counters of what the cache did, kept per decorated function."""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["CacheStats", "Counters"]


class Counters:
    """Mutable counters on the hot path (plain attribute increments)."""

    __slots__ = (
        "bypassed",
        "computations",
        "corrupt",
        "errors",
        "hits",
        "joined",
        "misses",
        "refreshes",
        "unserializable",
    )

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.joined = 0
        self.computations = 0
        self.bypassed = 0
        self.errors = 0
        self.corrupt = 0
        self.unserializable = 0
        self.refreshes = 0

    def snapshot(self) -> CacheStats:
        return CacheStats(**{f.name: getattr(self, f.name) for f in fields(CacheStats)})


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A snapshot of cache counters (for one function, or summed over a manager)."""

    hits: int = 0
    """Calls served from the cache."""
    misses: int = 0
    """Calls that found nothing usable in the cache."""
    joined: int = 0
    """Misses that awaited another caller's computation instead of computing (stampede)."""
    computations: int = 0
    """Times the wrapped function actually ran."""
    bypassed: int = 0
    """Calls that skipped the cache: the manager's circuit breaker was open (cooling down)."""
    errors: int = 0
    """Backend failures absorbed (the call still returned its result)."""
    corrupt: int = 0
    """Stored values that did not decode (treated as misses)."""
    unserializable: int = 0
    """Results returned uncached because the serializer refused them."""
    refreshes: int = 0
    """Early refreshes started (value recomputed shortly before it expired)."""

    @property
    def hit_ratio(self) -> float:
        """``hits / (hits + misses)``, 0.0 before the first call."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def __add__(self, other: CacheStats) -> CacheStats:
        return CacheStats(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(CacheStats)}
        )
