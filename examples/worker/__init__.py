"""The worker example: consumes ``user.created`` and sends welcome emails.

:mod:`examples.worker.handlers` holds what happens to an event (handle, retry
a flaky step, dead-letter a poison event); :mod:`examples.worker.runner` runs
it on a bus. Start it with ``python -m examples.worker``.
"""

from __future__ import annotations

from examples.worker.handlers import (
    USER_CREATED,
    WELCOME_EMAIL_GROUP,
    LoggingMailer,
    Mailer,
    PoisonEventError,
    SentEmail,
    WelcomeEmailWorker,
)

__all__ = [
    "USER_CREATED",
    "WELCOME_EMAIL_GROUP",
    "LoggingMailer",
    "Mailer",
    "PoisonEventError",
    "SentEmail",
    "WelcomeEmailWorker",
]
