"""UserService with the real InMemoryEventBus: user.created reaches a subscriber."""

from __future__ import annotations

import asyncio

import pytest

from backend_kit.events import Event, EventBus, InMemoryEventBus, UnroutableEventError
from backend_kit.users import EventPublisher, InMemoryUserRepository, NewUser, UserService
from tests.fakes.passwords import CheapPasswords

PASSWORD = "correct horse battery staple"


def test_the_event_bus_protocol_fits_the_users_publisher() -> None:
    # mypy checks this: any backend_kit EventBus can be given to UserService.
    bus: EventBus = InMemoryEventBus()
    publisher: EventPublisher = bus
    assert publisher is bus


async def test_user_created_reaches_a_subscriber_with_the_stored_user() -> None:
    repository = InMemoryUserRepository()
    received: asyncio.Queue[Event] = asyncio.Queue()
    seen_in_store: list[bool] = []

    async def on_user_created(event: Event) -> None:
        seen_in_store.append(await repository.get(event.data["id"]) is not None)
        await received.put(event)

    async with InMemoryEventBus() as bus:
        await bus.subscribe("user.*", on_user_created, group="welcome-mail")
        service = UserService(repository, CheapPasswords(), events=bus)
        user = await service.create_user(NewUser("ada@example.com", "Ada", PASSWORD))
        event = await asyncio.wait_for(received.get(), timeout=5)
    assert event.type == "user.created"
    assert dict(event.data) == user.to_dict()
    assert seen_in_store == [True]


async def test_unroutable_user_created_is_raised_and_the_user_is_kept() -> None:
    repository = InMemoryUserRepository()
    async with InMemoryEventBus() as bus:  # nobody subscribed: RabbitMQ would return it
        service = UserService(repository, CheapPasswords(), events=bus)
        with pytest.raises(UnroutableEventError) as raised:
            await service.create_user(NewUser("ada@example.com", "Ada", PASSWORD))
    stored = await repository.get_by_email("ada@example.com")
    assert stored is not None
    assert any(stored.id in note for note in getattr(raised.value, "__notes__", []))
