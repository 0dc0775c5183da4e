"""The error tree: one base, documented branches, safe messages."""

from __future__ import annotations

import inspect

import pytest

from backend_kit import errors
from backend_kit.errors import BackendKitError, MissingDependencyError


def _error_classes() -> list[type[BaseException]]:
    return [
        value
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, BaseException) and name in errors.__all__
    ]


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_every_error_is_a_backend_kit_error_and_drawn_in_the_tree(cls: type[BaseException]) -> None:
    assert issubclass(cls, BackendKitError)
    assert errors.__doc__ is not None
    assert cls.__name__ in errors.__doc__, "draw every error in the module docstring's tree"


def test_missing_dependency_error_names_the_install_line() -> None:
    exc = MissingDependencyError("redis", "redis")
    assert isinstance(exc, ImportError)
    assert exc.name == "redis"
    assert "pip install 'backend-kit[redis]'" in str(exc)


def test_errors_that_are_also_builtin_types_can_be_caught_as_those() -> None:
    assert issubclass(errors.ConfigurationError, ValueError)
    assert issubclass(errors.UserValidationError, ValueError)
    assert issubclass(errors.UserNotFoundError, LookupError)
    assert issubclass(errors.PoolExhaustedError, TimeoutError)
    assert issubclass(errors.PublishTimeoutError, TimeoutError)
    assert issubclass(errors.ExpiredTokenError, errors.TokenError)


def test_rate_limit_error_carries_retry_after() -> None:
    exc = errors.RateLimitExceededError("slow down", retry_after=1.5)
    assert exc.retry_after == 1.5
    assert str(exc) == "slow down"
