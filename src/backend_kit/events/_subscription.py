"""What both buses share about subscriptions: naming, retry policy, headers, dead letters."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from backend_kit.errors import ConfigurationError
from backend_kit.events._event import Event
from backend_kit.events._topic import has_wildcards

__all__ = [
    "ATTEMPTS_HEADER",
    "DEAD_LETTER_SUFFIX",
    "ERROR_HEADER",
    "FAILED_AT_HEADER",
    "QUEUE_HEADER",
    "REASON_HANDLER_FAILED",
    "REASON_HEADER",
    "REASON_INVALID_ENVELOPE",
    "REASON_POISON",
    "REASON_REJECTED",
    "ROUTING_KEY_HEADER",
    "DeadLetter",
    "EventHandler",
    "RetryPolicy",
    "Subscription",
    "describe_error",
    "work_queue_name",
]

logger = logging.getLogger("backend_kit.events")

EventHandler = Callable[[Event], Awaitable[object]]
"""An async callable taking the :class:`Event`; raising means "failed, retry me"."""

# Headers a retried or dead-lettered message carries (AMQP headers; the same
# names in the in-memory bus's DeadLetter).
ATTEMPTS_HEADER = "x-bk-attempts"  # handler attempts that failed so far
ERROR_HEADER = "x-bk-error"  # "ExceptionType: message" of the last failure
REASON_HEADER = "x-bk-reason"  # why the message is a dead letter (REASON_*)
FAILED_AT_HEADER = "x-bk-failed-at"  # ISO 8601 UTC time of the last failure
QUEUE_HEADER = "x-bk-queue"  # the work queue it came from
ROUTING_KEY_HEADER = "x-bk-routing-key"  # its original routing key (the event type)

REASON_HANDLER_FAILED = "handler-failed"  # the handler raised on every attempt
REASON_INVALID_ENVELOPE = "invalid-envelope"  # the body is not an event envelope
REASON_POISON = "poison"  # the handler raised PoisonEventError: never retried
REASON_REJECTED = "rejected"  # the broker dead-lettered it (we could not republish)

DEAD_LETTER_SUFFIX = ".dead"

_MAX_ERROR_LENGTH = 500


def describe_error(exc: BaseException) -> str:
    """``"TypeName: message"``, truncated: what a dead letter records (no traceback)."""
    text = f"{type(exc).__qualname__}: {exc}"
    if len(text) > _MAX_ERROR_LENGTH:
        text = text[: _MAX_ERROR_LENGTH - 3] + "..."
    return text


_QUEUE_NAME = re.compile(r"[a-zA-Z0-9\-_.:@#,/+ ]+")  # what AMQP clients accept (pamqp)
_MAX_QUEUE_NAME = 200  # 255 bytes minus room for the ".dead" / ".retry.<ms>ms" suffixes


def work_queue_name(exchange: str, group: str, pattern: str) -> str:
    """The queue a subscription group consumes: ``"{exchange}.{group}.{pattern}"``.

    ``*`` is not allowed in queue names, so it is written ``+`` (as in MQTT):
    group ``billing`` on ``order.*`` consumes ``events.billing.order.+``.
    With the default exchange (``exchange=""``) messages are routed by queue
    name, so the queue is the event type itself (``pattern`` must be literal).

    Raises:
        ConfigurationError: empty group, a wildcard with the default exchange,
            or a name with characters AMQP does not allow in queue names.
    """
    if not exchange:
        if has_wildcards(pattern):
            raise ConfigurationError(
                "the default exchange (exchange='') routes by queue name: "
                "subscribe to a literal event type, not a pattern"
            )
        name = pattern
    else:
        if not group:
            raise ConfigurationError("group must be a non-empty name (the consuming service)")
        if not pattern:
            raise ConfigurationError("pattern must not be empty ('#' matches every event)")
        name = f"{exchange}.{group}.{pattern.replace('*', '+')}"
    if len(name.encode()) > _MAX_QUEUE_NAME or not _QUEUE_NAME.fullmatch(name):
        raise ConfigurationError(
            f"queue name {name!r} is too long or has characters AMQP does not allow "
            "(letters, digits and - _ . : @ # , / + and space)"
        )
    return name


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failing handler is retried.

    ``max_retries`` retries follow the first attempt (so ``1 + max_retries``
    attempts in all) before the message becomes a dead letter. Retry *n* waits
    ``delays[n - 1]`` seconds, the last delay repeating: ``(1, 5, 30)`` backs off.
    """

    max_retries: int
    delays: tuple[float, ...]

    @classmethod
    def build(cls, max_retries: int, retry_delay: float | Sequence[float]) -> RetryPolicy:
        """Validate the ``subscribe()`` arguments.

        Raises:
            ConfigurationError: a negative count or delay, or an empty delay list.
        """
        if isinstance(max_retries, bool) or max_retries < 0:
            raise ConfigurationError("max_retries must be an integer >= 0")
        delays = (
            (float(retry_delay),)
            if isinstance(retry_delay, int | float)
            else tuple(float(d) for d in retry_delay)
        )
        if not delays or any(d < 0 for d in delays):
            raise ConfigurationError("retry_delay must be >= 0 seconds (or a non-empty list)")
        return cls(max_retries=max_retries, delays=delays)

    def delay_for(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        return self.delays[min(retry, len(self.delays)) - 1]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that will not be handled: its body, the event if it parsed, and why.

    Attributes:
        event: The decoded event, or ``None`` when the body was not an envelope.
        body: The raw message body, as received.
        reason: ``"handler-failed"``, ``"invalid-envelope"`` or ``"rejected"``.
        error: ``"ExceptionType: message"`` of the last failure (no traceback).
        attempts: Handler attempts made (0 for an invalid envelope).
        queue: The work queue the message came from.
        routing_key: Its original routing key (the event type).
        failed_at: When it was dead-lettered (UTC), if known.
    """

    event: Event | None
    body: bytes
    reason: str
    error: str | None
    attempts: int
    queue: str
    routing_key: str
    failed_at: datetime | None


class Subscription:
    """A live subscription: what it consumes, its counters, and ``cancel()``.

    Returned by ``EventBus.subscribe``; also an async context manager that
    cancels on exit. Counters are updated by the bus (read them, do not set them).

    Attributes:
        pattern: The AMQP topic pattern bound to the queue.
        group: The consumer group (one queue per group and pattern).
        queue: The work queue's name.
        dead_letter_queue: Where messages that will not be handled go.
        prefetch: Messages handled concurrently at most, by this subscriber.
        retry: The retry policy.
        handled: Events handled successfully (acknowledged).
        retried: Failures scheduled for a retry.
        dead_lettered: Messages sent to the dead letters by this subscriber.
    """

    __slots__ = (
        "_cancel",
        "_cancelled",
        "_inflight",
        "dead_letter_queue",
        "dead_lettered",
        "group",
        "handled",
        "handler",
        "pattern",
        "prefetch",
        "queue",
        "retried",
        "retry",
    )

    def __init__(
        self,
        *,
        pattern: str,
        group: str,
        queue: str,
        handler: EventHandler,
        prefetch: int,
        retry: RetryPolicy,
        cancel: Callable[[Subscription, float | None], Awaitable[None]],
    ) -> None:
        self.pattern = pattern
        self.group = group
        self.queue = queue
        self.dead_letter_queue = queue + DEAD_LETTER_SUFFIX
        self.handler = handler
        self.prefetch = prefetch
        self.retry = retry
        self.handled = 0
        self.retried = 0
        self.dead_lettered = 0
        self._cancel = cancel
        self._cancelled = False
        self._inflight: set[asyncio.Task[object]] = set()

    def __repr__(self) -> str:
        state = "cancelled" if self._cancelled else "active"
        return f"<Subscription {self.pattern!r} group={self.group!r} queue={self.queue!r} {state}>"

    @property
    def active(self) -> bool:
        """True until ``cancel()`` (or the bus's ``close()``)."""
        return not self._cancelled

    @property
    def in_flight(self) -> int:
        """Handlers running right now."""
        return len(self._inflight)

    async def cancel(self, grace: float | None = None) -> None:
        """Stop consuming, let running handlers finish (up to ``grace`` s), then detach.

        ``grace=None`` uses the bus's ``shutdown_timeout``. Handlers still
        running after it are cancelled and their messages are redelivered
        later (never lost). The queue and its bindings stay: events published
        meanwhile wait for the group's next subscriber. Idempotent.
        """
        if self._cancelled:
            return
        self._cancelled = True
        await self._cancel(self, grace)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.cancel()

    # -- for the buses --------------------------------------------------------
    def track(self, task: asyncio.Task[object]) -> None:
        """Register a running handler task (the bus calls this)."""
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` s for running handlers, then cancel the rest."""
        if not self._inflight:
            return
        pending = set(self._inflight)
        _, still_running = await asyncio.wait(pending, timeout=grace)
        if still_running:
            logger.warning(
                "%d handler(s) on %s still running after %.3g s; cancelling them "
                "(their messages will be redelivered)",
                len(still_running),
                self.queue,
                grace,
            )
            for task in still_running:
                task.cancel()
            await asyncio.gather(*still_running, return_exceptions=True)
