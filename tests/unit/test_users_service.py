"""UserService over the memory repository with real (cheap) Argon2id and bcrypt hashing."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import bcrypt
import pytest

from backend_kit.errors import PublishError
from backend_kit.users import (
    DuplicateEmailError,
    EventPublisher,
    InMemoryUserRepository,
    NewUser,
    PasswordService,
    User,
    UserNotFoundError,
    UserService,
    UserValidationError,
)
from tests.fakes.passwords import CheapPasswords

PASSWORD = "correct horse battery staple"


class RecordingBus:
    """An EventPublisher that records what it got and what the store held at that moment."""

    def __init__(self, repository: InMemoryUserRepository, *, fail: bool = False) -> None:
        self.repository = repository
        self.fail = fail
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.stored_when_published: list[bool] = []

    async def publish_event(self, event_type: str, data: dict[str, Any]) -> object:
        self.stored_when_published.append(await self.repository.get(data["id"]) is not None)
        if self.fail:
            raise PublishError("the broker did not confirm the event")
        self.events.append((event_type, data))
        return None


@pytest.fixture
def repository() -> InMemoryUserRepository:
    return InMemoryUserRepository()


@pytest.fixture
def passwords() -> CheapPasswords:
    return CheapPasswords()


@pytest.fixture
def service(repository: InMemoryUserRepository, passwords: CheapPasswords) -> UserService:
    return UserService(repository, passwords)


def test_the_doubles_fit_the_protocols(
    repository: InMemoryUserRepository, passwords: CheapPasswords
) -> None:
    # Checked by mypy: these assignments fail type checking if a protocol drifts.
    security: PasswordService = passwords
    events: EventPublisher = RecordingBus(repository)
    assert UserService(repository, security, events).events is events


# ------------------------------------------------------------------ create
async def test_create_user_stores_a_hash_never_the_password(
    service: UserService, repository: InMemoryUserRepository
) -> None:
    user = await service.create_user(NewUser("Ada@Example.com", "Ada", PASSWORD))
    assert user.email == "ada@example.com"
    credentials = await repository.get_credentials("ada@example.com")
    assert credentials is not None
    assert credentials.user == user
    assert credentials.password_hash.startswith("$argon2id$")
    assert PASSWORD not in credentials.password_hash
    assert PASSWORD not in repr(user)


async def test_create_user_publishes_user_created_after_storing(
    repository: InMemoryUserRepository, passwords: CheapPasswords
) -> None:
    bus = RecordingBus(repository)
    service = UserService(repository, passwords, events=bus)
    user = await service.create_user(NewUser("ada@example.com", "Ada", PASSWORD))
    assert bus.events == [("user.created", user.to_dict())]
    assert bus.stored_when_published == [True]
    event_data = bus.events[0][1]
    assert set(event_data) == {"id", "email", "name", "created_at"}
    assert all(PASSWORD not in value and "$argon2" not in value for value in event_data.values())


async def test_no_event_for_a_duplicate(
    repository: InMemoryUserRepository, passwords: CheapPasswords
) -> None:
    bus = RecordingBus(repository)
    service = UserService(repository, passwords, events=bus)
    await service.create_user(NewUser("ada@example.com", "Ada", PASSWORD))
    with pytest.raises(DuplicateEmailError):
        await service.create_user(NewUser("ADA@example.com", "Other Ada", PASSWORD))
    assert len(bus.events) == 1
    assert len(repository) == 1


async def test_a_failed_publish_is_raised_and_says_the_user_was_stored(
    repository: InMemoryUserRepository, passwords: CheapPasswords
) -> None:
    service = UserService(repository, passwords, events=RecordingBus(repository, fail=True))
    with pytest.raises(PublishError) as raised:
        await service.create_user(NewUser("ada@example.com", "Ada", PASSWORD))
    stored = await repository.get_by_email("ada@example.com")
    assert stored is not None
    notes = getattr(raised.value, "__notes__", [])
    assert notes == [f"user {stored.id} was stored; its user.created event was not published"]


async def test_fifty_concurrent_create_user_on_memory(service: UserService) -> None:
    results = await asyncio.gather(
        *(service.create_user(NewUser("race@example.com", f"n{i}", PASSWORD)) for i in range(50)),
        return_exceptions=True,
    )
    assert sum(isinstance(result, User) for result in results) == 1
    assert sum(isinstance(result, DuplicateEmailError) for result in results) == 49


# ------------------------------------------------------------ authenticate
async def test_right_password_logs_in_in_any_email_case(service: UserService) -> None:
    user = await service.create_user(NewUser("ada@example.com", "Ada", PASSWORD))
    assert await service.authenticate("ada@example.com", PASSWORD) == user
    assert await service.authenticate("  ADA@Example.com ", PASSWORD) == user


async def test_wrong_password_is_refused_with_a_real_verify(
    service: UserService, passwords: CheapPasswords
) -> None:
    await service.create_user(NewUser("ada@example.com", "Ada", PASSWORD))
    assert await service.authenticate("ada@example.com", PASSWORD + "!") is None
    assert await service.authenticate("ada@example.com", "") is None
    assert passwords.verify_calls == 2
    assert passwords.dummy_verifies == 0


@pytest.mark.parametrize(
    "email",
    [
        "nobody@example.com",
        "not an email",
        "",
        {"$gt": ""},
        None,
        "'; DROP TABLE users; --",
    ],
)
async def test_unknown_or_impossible_email_runs_the_dummy_verify(
    service: UserService, passwords: CheapPasswords, email: object
) -> None:
    await service.create_user(NewUser("ada@example.com", "Ada", PASSWORD))
    assert await service.authenticate(email, PASSWORD) is None  # type: ignore[arg-type]
    assert passwords.dummy_verifies == 1
    assert passwords.verify_calls == 0


@pytest.mark.parametrize("password", ["x" * 1025, None, {"$gt": ""}])
async def test_impossible_password_runs_the_dummy_verify(
    service: UserService, passwords: CheapPasswords, password: object
) -> None:
    await service.create_user(NewUser("ada@example.com", "Ada", PASSWORD))
    assert await service.authenticate("ada@example.com", password) is None  # type: ignore[arg-type]
    assert passwords.dummy_verifies == 1
    assert passwords.verify_calls == 0


async def test_legacy_bcrypt_hash_is_upgraded_to_argon2id_on_login(
    service: UserService, repository: InMemoryUserRepository, caplog: pytest.LogCaptureFixture
) -> None:
    legacy = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    user = await repository.add(email="old@example.com", name="Old", password_hash=legacy)
    with caplog.at_level(logging.INFO, logger="backend_kit.users"):
        assert await service.authenticate("old@example.com", PASSWORD) == user
    credentials = await repository.get_credentials("old@example.com")
    assert credentials is not None
    upgraded = credentials.password_hash
    assert upgraded.startswith("$argon2id$")
    assert [record.getMessage() for record in caplog.records] == [
        f"password hash of user {user.id} upgraded on login"
    ]
    # Logs in with the new hash, which is current: no second upgrade.
    assert await service.authenticate("old@example.com", PASSWORD) == user
    again = await repository.get_credentials("old@example.com")
    assert again is not None
    assert again.password_hash == upgraded


async def test_wrong_password_never_upgrades_a_legacy_hash(
    service: UserService, repository: InMemoryUserRepository
) -> None:
    legacy = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    await repository.add(email="old@example.com", name="Old", password_hash=legacy)
    assert await service.authenticate("old@example.com", "not the password") is None
    credentials = await repository.get_credentials("old@example.com")
    assert credentials is not None
    assert credentials.password_hash == legacy


async def test_argon2id_hash_with_old_parameters_is_upgraded(
    repository: InMemoryUserRepository,
) -> None:
    old_service = UserService(repository, CheapPasswords(time_cost=1))
    await old_service.create_user(NewUser("ada@example.com", "Ada", PASSWORD))
    new_service = UserService(repository, CheapPasswords(time_cost=2))
    assert await new_service.authenticate("ada@example.com", PASSWORD) is not None
    credentials = await repository.get_credentials("ada@example.com")
    assert credentials is not None
    assert ",t=2," in credentials.password_hash


async def test_user_deleted_during_login_upgrade_is_not_logged_in(
    passwords: CheapPasswords,
) -> None:
    class DeletingRepository(InMemoryUserRepository):
        async def set_password_hash(self, user_id: str, password_hash: str) -> None:
            await self.delete(user_id)  # someone deleted the account meanwhile
            await super().set_password_hash(user_id, password_hash)

    repository = DeletingRepository()
    legacy = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    await repository.add(email="old@example.com", name="Old", password_hash=legacy)
    assert (
        await UserService(repository, passwords).authenticate("old@example.com", PASSWORD) is None
    )


# ----------------------------------------------------------------- lookups
async def test_get_user_and_get_user_by_email(service: UserService) -> None:
    user = await service.create_user(NewUser("ada@example.com", "Ada", PASSWORD))
    assert await service.get_user(user.id) == user
    assert await service.get_user_by_email("ADA@example.com") == user
    with pytest.raises(UserNotFoundError):
        await service.get_user("no-such-id")
    with pytest.raises(UserNotFoundError):
        await service.get_user_by_email("nobody@example.com")


async def test_list_users_pages_through_everyone(service: UserService) -> None:
    created = [
        await service.create_user(NewUser(f"user{i}@example.com", f"User {i}", PASSWORD))
        for i in range(5)
    ]
    first = await service.list_users(limit=2)
    second = await service.list_users(limit=2, after=first.next_cursor)
    third = await service.list_users(limit=2, after=second.next_cursor)
    assert [*first.users, *second.users, *third.users] == created
    assert third.next_cursor is None
    with pytest.raises(UserValidationError):
        await service.list_users(limit=0)


async def test_change_password(service: UserService, passwords: CheapPasswords) -> None:
    user = await service.create_user(NewUser("ada@example.com", "Ada", PASSWORD))
    with pytest.raises(UserValidationError) as raised:
        await service.change_password(user.id, "short")
    assert raised.value.field == "password"
    assert "short" not in str(raised.value)
    await service.change_password(user.id, "a brand new passphrase")
    assert await service.authenticate("ada@example.com", PASSWORD) is None
    assert await service.authenticate("ada@example.com", "a brand new passphrase") == user
    with pytest.raises(UserNotFoundError):
        await service.change_password("no-such-id", "a brand new passphrase")


async def test_delete_user(service: UserService) -> None:
    user = await service.create_user(NewUser("ada@example.com", "Ada", PASSWORD))
    await service.delete_user(user.id)
    with pytest.raises(UserNotFoundError):
        await service.get_user(user.id)
    assert await service.authenticate("ada@example.com", PASSWORD) is None
    with pytest.raises(UserNotFoundError):
        await service.delete_user(user.id)
