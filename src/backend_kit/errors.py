"""Every error backend_kit raises on purpose.

One base class, so ``except BackendKitError`` catches everything the library
raises by design; driver errors are chained (``raise ... from exc``) so the
cause stays visible to a debugger but messages stay free of internals.

The tree::

    BackendKitError
    ├── MissingDependencyError (also ImportError)    an extra is not installed
    ├── ConfigurationError (also ValueError)         bad or missing settings
    ├── CacheError                                   cache backend trouble
    │   └── CacheBackendError                        (normally absorbed: the cache fails open)
    ├── SecurityError
    │   ├── TokenError                               any token that is not accepted
    │   │   ├── ExpiredTokenError
    │   │   ├── InvalidTokenError
    │   │   └── RevokedTokenError
    │   └── RevocationStoreError                     the revocation store cannot be reached
    ├── DatabaseError
    │   └── PoolExhaustedError (also TimeoutError)   no connection within pool_timeout
    ├── UserError
    │   ├── DuplicateEmailError
    │   ├── UserNotFoundError (also LookupError)
    │   └── UserValidationError (also ValueError)
    ├── EventBusError
    │   ├── NotConnectedError                        used before connect() / after close()
    │   ├── InvalidEventError (also ValueError)      a body is not a valid event envelope
    │   ├── PoisonEventError (also ValueError)       a handler says: never retry, dead-letter now
    │   └── PublishError                             the broker did not take the event
    │       ├── PublishTimeoutError (also TimeoutError)
    │       ├── PublishNackedError
    │       └── UnroutableEventError                 no queue is bound for the routing key
    ├── DiscoveryError
    │   ├── RegistryUnavailableError                 the registry (Consul agent) cannot be reached
    │   └── NoHealthyInstanceError (also LookupError)  no passing instance to choose
    └── ResilienceError
        ├── CircuitOpenError                         the breaker refuses calls for now
        ├── RateLimitExceededError                   a rate limit refused the call
        └── RateLimiterUnavailableError              the limiter's store is down (policy "raise")

Messages are written to be safe to show: they never carry a secret, a bound SQL
parameter, a token or a stack trace.
"""

from __future__ import annotations

__all__ = [
    "BackendKitError",
    "CacheBackendError",
    "CacheError",
    "CircuitOpenError",
    "ConfigurationError",
    "DatabaseError",
    "DiscoveryError",
    "DuplicateEmailError",
    "EventBusError",
    "ExpiredTokenError",
    "InvalidEventError",
    "InvalidTokenError",
    "MissingDependencyError",
    "NoHealthyInstanceError",
    "NotConnectedError",
    "PoisonEventError",
    "PoolExhaustedError",
    "PublishError",
    "PublishNackedError",
    "PublishTimeoutError",
    "RateLimitExceededError",
    "RateLimiterUnavailableError",
    "RegistryUnavailableError",
    "ResilienceError",
    "RevocationStoreError",
    "RevokedTokenError",
    "SecurityError",
    "TokenError",
    "UnroutableEventError",
    "UserError",
    "UserNotFoundError",
    "UserValidationError",
]


class BackendKitError(Exception):
    """Base class of every error backend_kit raises on purpose."""


class MissingDependencyError(BackendKitError, ImportError):
    """An optional dependency (an *extra*) is not installed.

    The message names the exact command that fixes it, for example
    ``pip install 'backend-kit[redis]'``.
    """

    def __init__(self, package: str, extra: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{package!r} is not installed; it comes with the {extra!r} extra: "
            f"pip install 'backend-kit[{extra}]'",
            name=package,
        )


class ConfigurationError(BackendKitError, ValueError):
    """A setting is missing or invalid (constructor argument or environment variable)."""


# --------------------------------------------------------------------- cache
class CacheError(BackendKitError):
    """Base class of cache errors."""


class CacheBackendError(CacheError):
    """The cache backend failed (unreachable, timed out, pool exhausted).

    ``CacheManager`` absorbs it and runs the wrapped function instead (fail
    open); backends raise it so that policy lives in one place.
    """


# ------------------------------------------------------------------ security
class SecurityError(BackendKitError):
    """Base class of password and token errors."""


class TokenError(SecurityError):
    """A token was not accepted. The message is safe to show to a client."""


class ExpiredTokenError(TokenError):
    """The token's ``exp`` is in the past (beyond the configured leeway)."""


class InvalidTokenError(TokenError):
    """The token is malformed, forged, of the wrong type or fails a claim check."""


class RevokedTokenError(TokenError):
    """The token's ``jti`` has been revoked."""


class RevocationStoreError(SecurityError):
    """The revocation store (Redis) failed, so a token's status is unknown.

    Tokens are refused rather than accepted unchecked (fail closed); this is
    not a :class:`TokenError` because the token itself may be fine: a web app
    should answer 503, not 401.
    """


# ------------------------------------------------------------------------ db
class DatabaseError(BackendKitError):
    """Base class of database errors raised by backend_kit itself."""


class PoolExhaustedError(DatabaseError, TimeoutError):
    """No pooled connection became free within ``pool_timeout``."""


# --------------------------------------------------------------------- users
class UserError(BackendKitError):
    """Base class of user-storage errors."""


class DuplicateEmailError(UserError):
    """A user with that email (compared case-insensitively) already exists."""


class UserNotFoundError(UserError, LookupError):
    """No user has that id or email."""


class UserValidationError(UserError, ValueError):
    """Input broke a rule. Names the field; never echoes a password.

    ``field`` is the name of the offending input (``"email"``, ``"name"``,
    ``"password"``, ``"limit"``, ``"after"``) or ``None``; the message starts
    with it and describes the rule, never the value.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


# -------------------------------------------------------------------- events
class EventBusError(BackendKitError):
    """Base class of event-bus errors."""


class NotConnectedError(EventBusError):
    """The bus was used before ``connect()`` or after ``close()``."""


class InvalidEventError(EventBusError, ValueError):
    """A message body is not a valid event envelope, or event data is not JSON-serializable.

    Consumers never raise it to the caller: such a message goes to the dead letters.
    """


class PoisonEventError(EventBusError, ValueError):
    """Raised by a handler: this event can never be handled, however often it is retried.

    The bus does not retry it: the message goes to the dead letters at once,
    with reason ``"poison"`` and this error in its headers, and the consumer
    goes on with the next message.
    """


class PublishError(EventBusError):
    """The broker did not confirm the event; it may not have been stored.

    ``event_ids`` lists the ids of the events that were not confirmed (for
    ``publish_many``, every event not known to be stored), so the caller can
    retry exactly those. Retrying may duplicate an event whose confirm was lost:
    consumers deduplicate by id.
    """

    def __init__(self, message: str, *, event_ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.event_ids = event_ids


class PublishTimeoutError(PublishError, TimeoutError):
    """No confirm arrived within the publish timeout (broker down or overloaded)."""


class PublishNackedError(PublishError):
    """The broker refused the event (negative acknowledgement)."""


class UnroutableEventError(PublishError):
    """The broker returned the event: no queue is bound for its routing key."""


# ----------------------------------------------------------------- discovery
class DiscoveryError(BackendKitError):
    """Base class of service-discovery errors."""


class RegistryUnavailableError(DiscoveryError):
    """The registry cannot be reached and no cached answer is fresh enough."""


class NoHealthyInstanceError(DiscoveryError, LookupError):
    """``choose`` found no passing instance of the service."""


# ---------------------------------------------------------------- resilience
class ResilienceError(BackendKitError):
    """Base class of circuit-breaker and rate-limit errors."""


class CircuitOpenError(ResilienceError):
    """The circuit breaker is open and refuses calls until it half-opens.

    ``name`` is the breaker's name; ``retry_after`` the seconds until it lets a
    trial call through (``None`` when trial calls are already in flight).
    """

    def __init__(
        self,
        message: str = "the circuit breaker is open",
        *,
        name: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.name = name
        self.retry_after = retry_after


class RateLimitExceededError(ResilienceError):
    """A rate limit refused the call; ``retry_after`` says when to try again."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimiterUnavailableError(ResilienceError):
    """The rate limiter's store (Redis) cannot be reached and its policy is ``"raise"``.

    With the default policies (``"allow"``, ``"deny"``) the limiter answers
    instead of raising; see :class:`backend_kit.resilience.BackendDownPolicy`.
    """
