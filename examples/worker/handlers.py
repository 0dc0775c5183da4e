"""The welcome-email worker: what happens to a ``user.created`` event.

Three behaviours a real consumer needs, each visible here:

- **Handle** a valid event: "send" a welcome email (the :class:`LoggingMailer`
  logs it instead), once per event even though delivery is at least once
  (duplicates are recognised by ``event.id``).
- **Retry a flaky step**: the mail relay refuses connections now and then. A
  refused connection proves nothing was sent, so ``backend_kit.resilience.retry``
  retries it at once with backoff even though sending mail is not idempotent.
  Anything else that fails (a timeout: the mail may have gone) is left to the
  bus, which redelivers later.
- **Dead-letter a poison event**: an event whose data can never be handled
  (no usable email) raises ``backend_kit.events.PoisonEventError``; the bus
  does not retry it: it goes straight to the group's dead-letter queue with
  the error in its headers, and the worker carries on with the next event.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from backend_kit.events import Event, PoisonEventError
from backend_kit.resilience import RetryPreset, retry

__all__ = [
    "USER_CREATED",
    "WELCOME_EMAIL_GROUP",
    "LoggingMailer",
    "Mailer",
    "PoisonEventError",
    "SentEmail",
    "WelcomeEmailWorker",
]

logger = logging.getLogger("examples.worker")

#: The event this worker consumes.
USER_CREATED = "user.created"
#: Its consumer group: one durable queue, shared by every worker process.
WELCOME_EMAIL_GROUP = "welcome-email"


@dataclass(frozen=True, slots=True)
class SentEmail:
    """One email the mailer accepted."""

    to: str
    subject: str
    body: str


class Mailer(Protocol):
    """Sends one email; raises ``ConnectionRefusedError`` when the relay is unreachable."""

    async def send(self, to: str, subject: str, body: str) -> None: ...


class LoggingMailer:
    """A mailer that logs instead of sending, and can be flaky on purpose.

    Args:
        refusals: How many of the first send attempts raise
            ``ConnectionRefusedError`` (a mail relay restarting), to show the
            retry. ``0`` (default): never.
    """

    def __init__(self, *, refusals: int = 0) -> None:
        self.refusals_left = refusals
        self.attempts = 0
        self.sent: list[SentEmail] = []

    async def send(self, to: str, subject: str, body: str) -> None:
        self.attempts += 1
        if self.refusals_left > 0:
            self.refusals_left -= 1
            raise ConnectionRefusedError("the mail relay refused the connection")
        self.sent.append(SentEmail(to, subject, body))
        logger.info("welcome email sent to %s", to)


class WelcomeEmailWorker:
    """Handles ``user.created``: one welcome email per event.

    Args:
        mailer: Where emails go.
        preset: Backoff for a refused mail relay (default ``RetryPreset.FAST``:
            3 attempts within 2 s).
        remember: How many handled event ids to keep for de-duplication.
    """

    def __init__(
        self, mailer: Mailer, *, preset: RetryPreset = RetryPreset.FAST, remember: int = 10_000
    ) -> None:
        self.mailer = mailer
        self._handled: OrderedDict[str, None] = OrderedDict()
        self._remember = remember
        # Sending mail is not idempotent: only errors proving nothing was sent
        # (connection refused) are retried here; see backend_kit.resilience.retry.
        self._send = retry(on=ConnectionRefusedError, idempotent=False, preset=preset)(mailer.send)

    @property
    def handled(self) -> int:
        """Distinct events handled so far (bounded by ``remember``)."""
        return len(self._handled)

    async def handle(self, event: Event) -> None:
        """Send the welcome email for ``event`` (a ``user.created``).

        Raises:
            PoisonEventError: the event carries no usable email or name; the
                bus dead-letters it at once, without retries.
            ConnectionRefusedError: the relay still refused after the retries;
                the bus redelivers the event later.
        """
        if event.id in self._handled:
            logger.info("event %s already handled; skipping the duplicate", event.id)
            return
        email = event.data.get("email")
        name = event.data.get("name")
        if not isinstance(email, str) or "@" not in email or not isinstance(name, str):
            # The message names what is wrong, never the payload (personal data).
            raise PoisonEventError(f"{event.type} event {event.id} has no usable email or name")
        await self._send(email, "Welcome!", f"Hello {name}, welcome aboard.")
        self._handled[event.id] = None
        if len(self._handled) > self._remember:
            self._handled.popitem(last=False)
