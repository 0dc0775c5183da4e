"""UserService with the real SecurityManager (Argon2id via libpass, legacy bcrypt verify-only)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import bcrypt
import pytest

from backend_kit.security import SecurityManager
from backend_kit.users import (
    InMemoryUserRepository,
    NewUser,
    PasswordService,
    UserService,
    UserValidationError,
)

PASSWORD = "correct horse battery staple"
SECRET_KEY = "test-only-secret-key-0123456789abcdef"


class CountingSecurity:
    """Delegates to a SecurityManager and counts the calls the login path makes."""

    def __init__(self, manager: SecurityManager) -> None:
        self.manager = manager
        self.dummy_verifies = 0
        self.verifies = 0

    async def ahash_password(self, password: str) -> str:
        return await self.manager.ahash_password(password)

    async def averify_and_update(
        self, password: str, password_hash: str
    ) -> tuple[bool, str | None]:
        self.verifies += 1
        return await self.manager.averify_and_update(password, password_hash)

    async def adummy_verify(self) -> None:
        self.dummy_verifies += 1
        await self.manager.adummy_verify()


@pytest.fixture
async def manager() -> AsyncIterator[SecurityManager]:
    async with SecurityManager(secret_key=SECRET_KEY, argon2="owasp_minimum") as security:
        yield security


@pytest.fixture
def security(manager: SecurityManager) -> CountingSecurity:
    return CountingSecurity(manager)


@pytest.fixture
def repository() -> InMemoryUserRepository:
    return InMemoryUserRepository()


@pytest.fixture
def service(repository: InMemoryUserRepository, security: CountingSecurity) -> UserService:
    return UserService(repository, security)


def test_security_manager_is_a_password_service(manager: SecurityManager) -> None:
    # mypy checks this assignment: SecurityManager must keep fitting the protocol.
    password_service: PasswordService = manager
    assert password_service is manager


async def test_create_user_stores_an_argon2id_hash_at_the_configured_parameters(
    service: UserService, repository: InMemoryUserRepository
) -> None:
    await service.create_user(NewUser("ada@example.com", "Ada", PASSWORD))
    credentials = await repository.get_credentials("ada@example.com")
    assert credentials is not None
    assert credentials.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


@pytest.mark.parametrize(
    "password",
    [
        "\ud800 lone surrogate password",  # valid str, not valid Unicode text (JSON allows it)
        "\u00e9" * 600,  # 600 characters (allowed) but 1200 UTF-8 bytes: over the hasher's limit
    ],
)
async def test_a_password_the_hasher_refuses_is_a_validation_error(
    service: UserService, repository: InMemoryUserRepository, password: str
) -> None:
    with pytest.raises(UserValidationError) as raised:
        await service.create_user(NewUser("ada@example.com", "Ada", password))
    assert raised.value.field == "password"
    assert password not in str(raised.value)
    assert await repository.get_credentials("ada@example.com") is None


async def test_right_wrong_and_unknown(service: UserService, security: CountingSecurity) -> None:
    ada = await service.create_user(NewUser("ada@example.com", "Ada", PASSWORD))
    assert await service.authenticate("ADA@example.com", PASSWORD) == ada
    assert await service.authenticate("ada@example.com", PASSWORD.upper()) is None
    assert (security.verifies, security.dummy_verifies) == (2, 0)
    assert await service.authenticate("nobody@example.com", PASSWORD) is None
    assert (security.verifies, security.dummy_verifies) == (2, 1)  # the dummy verify ran


async def test_legacy_bcrypt_hash_is_upgraded_to_argon2id_on_login(
    service: UserService, repository: InMemoryUserRepository
) -> None:
    legacy = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    user = await repository.add(email="old@example.com", name="Old", password_hash=legacy)
    assert await service.authenticate("old@example.com", PASSWORD) == user
    credentials = await repository.get_credentials("old@example.com")
    assert credentials is not None
    assert credentials.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert await service.authenticate("old@example.com", PASSWORD) == user
    assert await service.authenticate("old@example.com", "not the password") is None


async def test_long_password_against_a_bcrypt_hash_is_a_failed_login_not_an_error(
    service: UserService, repository: InMemoryUserRepository
) -> None:
    legacy = bcrypt.hashpw(b"x" * 72, bcrypt.gensalt(rounds=4)).decode()
    await repository.add(email="old@example.com", name="Old", password_hash=legacy)
    # bcrypt itself raises ValueError beyond 72 bytes; the login must just fail.
    assert await service.authenticate("old@example.com", "x" * 73) is None
    credentials = await repository.get_credentials("old@example.com")
    assert credentials is not None
    assert credentials.password_hash == legacy


async def test_garbage_stored_hash_is_a_failed_login(
    service: UserService, repository: InMemoryUserRepository
) -> None:
    await repository.add(email="odd@example.com", name="Odd", password_hash="not-a-hash")
    assert await service.authenticate("odd@example.com", PASSWORD) is None
