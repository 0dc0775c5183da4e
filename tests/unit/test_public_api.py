"""The public API is pinned: ``__all__`` lists exactly the public names, sorted."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

import backend_kit

# Each component pins its package's public names here when it lands, so an
# accidental addition or removal shows up in review.
PINNED: dict[str, list[str]] = {
    "backend_kit": [
        "BackendKitError",
        "ConfigurationError",
        "MissingDependencyError",
        "__version__",
        "redact_url",
    ],
    "backend_kit.discovery": [
        "BaseServiceRegistry",
        "CheckStatus",
        "ChooseStrategy",
        "DiscoveryError",
        "HttpCheck",
        "InMemoryServiceRegistry",
        "NoHealthyInstanceError",
        "RegistryUnavailableError",
        "ServiceCheck",
        "ServiceInstance",
        "ServiceRegistry",
        "StaleWhileUnavailableCache",
        "TtlCheck",
        "parse_duration",
    ],
    "backend_kit.db": [
        "DatabaseError",
        "ExecuteStyle",
        "PingResult",
        "PoolExhaustedError",
        "PoolStatus",
        "SlowQuery",
        "SlowQueryHook",
        "SlowQueryListener",
        "aping",
        "create_async_pooled_engine",
        "create_pooled_engine",
        "ping",
        "pool_status",
    ],
    "backend_kit.security": [
        "Argon2Parameters",
        "Argon2PasswordHasher",
        "Argon2Preset",
        "ExpiredTokenError",
        "InvalidTokenError",
        "MemoryRevocationStore",
        "PasswordHasher",
        "RevocationStore",
        "RevocationStoreError",
        "RevokedTokenError",
        "SecurityError",
        "SecurityManager",
        "SigningKey",
        "TokenError",
        "TokenPair",
    ],
    "backend_kit.cache": [
        "AsyncCachedFunction",
        "CacheBackend",
        "CacheBackendError",
        "CacheDecorator",
        "CacheError",
        "CacheEvent",
        "CacheHooks",
        "CacheManager",
        "CacheStats",
        "CachedFunction",
        "JsonSerializer",
        "LockingCacheBackend",
        "MemoryCache",
        "Outcome",
        "PickleSerializer",
        "Serializer",
        "SignedSerializer",
        "UnkeyableArgumentError",
        "canonical_text",
    ],
    "backend_kit.events": [
        "DeadLetter",
        "Event",
        "EventBus",
        "EventBusError",
        "EventHandler",
        "EventHooks",
        "InMemoryEventBus",
        "InvalidEventError",
        "NotConnectedError",
        "PoisonEventError",
        "PublishError",
        "PublishNackedError",
        "PublishTimeoutError",
        "RetryPolicy",
        "Subscription",
        "UnroutableEventError",
        "decode_event",
        "encode_event",
        "topic_matches",
    ],
    "backend_kit.resilience": [
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
    ],
    "backend_kit.users": [
        "DuplicateEmailError",
        "EventPublisher",
        "InMemoryUserRepository",
        "NewUser",
        "PasswordService",
        "User",
        "UserCredentials",
        "UserError",
        "UserNotFoundError",
        "UserPage",
        "UserRepository",
        "UserService",
        "UserValidationError",
        "normalize_email",
    ],
}

# Names a module namespace holds that are not part of its API.
_NOT_API = {"annotations", "TYPE_CHECKING"}


def _packages() -> list[str]:
    names = ["backend_kit"]
    names += [
        info.name
        for info in pkgutil.walk_packages(backend_kit.__path__, prefix="backend_kit.")
        if info.ispkg and not info.name.rsplit(".", 1)[-1].startswith("_")
    ]
    return sorted(names)


def _public_names(module: ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and name not in _NOT_API and not isinstance(value, ModuleType)
    }


@pytest.mark.parametrize("package", sorted(PINNED))
def test_pinned_public_api(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__ == PINNED[package]


@pytest.mark.parametrize("package", _packages())
def test_all_is_sorted_complete_and_resolvable(package: str) -> None:
    module = importlib.import_module(package)
    exported: list[str] = list(module.__all__)
    assert exported == sorted(exported), "keep __all__ sorted"
    assert len(exported) == len(set(exported))
    for name in exported:
        assert hasattr(module, name), f"{package}.__all__ names missing {name!r}"
    public = _public_names(module)
    assert public <= set(exported), f"public but not in __all__: {sorted(public - set(exported))}"


def test_every_package_is_pinned() -> None:
    assert set(_packages()) <= set(PINNED), sorted(set(_packages()) - set(PINNED))


def test_version_comes_from_installed_metadata() -> None:
    from importlib.metadata import version

    assert backend_kit.__version__ == version("backend-kit")
