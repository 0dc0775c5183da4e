"""``EventHooks``: where metrics and tracing plug into a bus (Prometheus, OpenTelemetry...)."""

from __future__ import annotations

import logging

from backend_kit.events._event import Event

__all__ = ["EventHooks", "call_hook"]

logger = logging.getLogger("backend_kit.events")


class EventHooks:
    """Callbacks a bus calls as events flow; subclass and override what you need.

    Every method does nothing by default. They run inline on the hot path, so
    keep them cheap (increment a counter, record a histogram). An exception
    raised by a hook is logged and ignored: observing must never break delivery.
    """

    def on_published(self, event: Event) -> None:
        """The broker confirmed ``event`` (one call per event of ``publish_many`` too)."""

    def on_handled(self, event: Event, queue: str, seconds: float) -> None:
        """A handler on ``queue`` returned for ``event`` after ``seconds``."""

    def on_retry(self, event: Event, queue: str, attempt: int, error: str) -> None:
        """Attempt number ``attempt`` failed with ``error``; a retry is scheduled."""

    def on_dead_letter(self, event: Event | None, queue: str, reason: str, error: str) -> None:
        """A message left ``queue`` for its dead letters (``event`` is None if it did not parse)."""


def call_hook(hook_name: str, hooks: EventHooks | None, *args: object) -> None:
    """Call ``hooks.<hook_name>(*args)``; log (never raise) what it raises."""
    if hooks is None:
        return
    try:
        getattr(hooks, hook_name)(*args)
    except Exception:  # a broken metrics hook must not stop delivery: log it, go on
        logger.exception("event hook %s raised; ignored", hook_name)
