"""The MongoDB fake behaves like PyMongo's asyncio API where the repository can tell.

The awaitable shapes are compared with the real classes (no server needed to
inspect them); the query semantics that make the injection tests meaningful
are pinned here, so a fake that stopped interpreting operators would fail.
"""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.command_cursor import AsyncCommandCursor
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, InvalidOperation, OperationFailure

from backend_kit.users import DuplicateEmailError
from backend_kit.users.mongo import MongoCollection, MongoDatabase, MongoUserRepository
from tests.fakes.mongo import (
    FakeAsyncCollection,
    FakeAsyncCommandCursor,
    FakeAsyncCursor,
    FakeAsyncDatabase,
    FakeAsyncMongoClient,
)

PAIRS: list[tuple[type[Any], type[Any], list[str]]] = [
    (
        FakeAsyncCollection,
        AsyncCollection,
        [
            "insert_one",
            "find_one",
            "find",
            "update_one",
            "delete_one",
            "count_documents",
            "create_index",
            "index_information",
            "drop_index",
            "aggregate",
            "drop",
        ],
    ),
    (FakeAsyncCursor, AsyncCursor, ["sort", "limit", "skip", "next", "to_list", "close"]),
    (FakeAsyncCommandCursor, AsyncCommandCursor, ["next", "to_list", "close"]),
    (
        FakeAsyncDatabase,
        AsyncDatabase,
        ["get_collection", "list_collection_names", "drop_collection"],
    ),
    (FakeAsyncMongoClient, AsyncMongoClient, ["get_database", "drop_database", "close"]),
]


@pytest.mark.parametrize(
    ("fake", "real", "method"),
    [(fake, real, method) for fake, real, methods in PAIRS for method in methods],
    ids=lambda value: value if isinstance(value, str) else value.__name__,
)
def test_fake_methods_are_awaitable_exactly_where_the_real_ones_are(
    fake: type[Any], real: type[Any], method: str
) -> None:
    real_method = getattr(real, method)
    fake_method = getattr(fake, method)
    assert inspect.iscoroutinefunction(fake_method) == inspect.iscoroutinefunction(real_method)


def test_real_driver_shapes_the_repository_relies_on() -> None:
    """Pinned from PyMongo 4.20: find is synchronous, aggregate and close are coroutines."""
    assert not inspect.iscoroutinefunction(AsyncCollection.find)
    assert inspect.iscoroutinefunction(AsyncCollection.aggregate)
    assert inspect.iscoroutinefunction(AsyncMongoClient.close)
    assert inspect.iscoroutinefunction(AsyncCursor.close)
    assert hasattr(AsyncCursor, "__aiter__")
    assert hasattr(FakeAsyncCursor, "__aiter__")


def test_the_fake_and_the_real_driver_fit_the_repository_protocols() -> None:
    # mypy checks these assignments against MongoDatabase / MongoCollection.
    fake_db: MongoDatabase = FakeAsyncMongoClient()["app"]
    real_client = AsyncMongoClient[dict[str, Any]]("mongodb://127.0.0.1:1", connect=False)
    real_collection: MongoCollection = real_client["app"]["users"]
    assert isinstance(fake_db, FakeAsyncDatabase)
    assert isinstance(real_collection, AsyncCollection)


@pytest.fixture
def collection() -> FakeAsyncCollection:
    return FakeAsyncMongoClient()["db"]["users"]


async def test_operator_documents_are_interpreted_like_the_server_does(
    collection: FakeAsyncCollection,
) -> None:
    """Why a repository must never pass a caller's value through as a filter value."""
    await collection.insert_one({"email": "ada@example.com"})
    await collection.insert_one({"email": "bob@example.com"})
    leaked = await collection.find_one({"email": {"$gt": ""}})
    assert leaked is not None
    assert await collection.count_documents({"email": {"$ne": None}}) == 2
    assert await collection.count_documents({"email": {"$gt": 5}}) == 0  # type bracketing
    assert await collection.count_documents({"email": "$gt"}) == 0
    with pytest.raises(OperationFailure):
        await collection.find_one({"email": {"$bogus": 1}})


async def test_duplicate_key_error_is_the_real_one_with_code_11000(
    collection: FakeAsyncCollection,
) -> None:
    assert await collection.create_index([("email", 1)], unique=True) == "email_1"
    await collection.insert_one({"email": "ada@example.com"})
    with pytest.raises(DuplicateKeyError) as raised:
        await collection.insert_one({"email": "ada@example.com"})
    assert raised.value.code == 11000
    assert raised.value.details is not None
    assert raised.value.details["keyPattern"] == {"email": 1}
    assert raised.value.details["keyValue"] == {"email": "ada@example.com"}


async def test_unique_index_over_existing_duplicates_fails(collection: FakeAsyncCollection) -> None:
    await collection.insert_one({"email": "a@example.com"})
    await collection.insert_one({"email": "a@example.com"})
    with pytest.raises(DuplicateKeyError):
        await collection.create_index([("email", 1)], unique=True)
    assert "email_1" not in await collection.index_information()


async def test_documents_round_trip_like_bson(collection: FakeAsyncCollection) -> None:
    document: dict[str, Any] = {
        "at": datetime(2026, 1, 1, 10, 0, 0, 123456, tzinfo=UTC),
        "tags": ("a", "b"),
    }
    result = await collection.insert_one(document)
    assert isinstance(document["_id"], ObjectId)  # the driver adds _id to the caller's dict
    assert result.inserted_id == document["_id"]
    stored = await collection.find_one({"_id": document["_id"]})
    assert stored == {
        "_id": document["_id"],
        "at": datetime(2026, 1, 1, 10, 0, 0, 123000),  # naive UTC, milliseconds
        "tags": ["a", "b"],
    }
    stored["tags"].append("mutated")
    again = await collection.find_one({"_id": document["_id"]})
    assert again is not None
    assert again["tags"] == ["a", "b"]


async def test_cursor_sort_limit_and_no_options_after_iterating(
    collection: FakeAsyncCollection,
) -> None:
    for number in [3, 1, 2]:
        await collection.insert_one({"n": number})
    cursor = collection.find({}).sort([("n", -1)]).limit(2)
    assert [doc["n"] async for doc in cursor] == [3, 2]
    with pytest.raises(InvalidOperation):
        cursor.sort("n")
    assert [doc["n"] for doc in await collection.find({}).sort("n").to_list()] == [1, 2, 3]
    with pytest.raises(ValueError, match="greater than 0"):
        await collection.find({}).to_list(0)


async def test_aggregate_is_a_coroutine_returning_a_cursor(
    collection: FakeAsyncCollection,
) -> None:
    for number in range(5):
        await collection.insert_one({"n": number})
    pending = collection.aggregate([{"$match": {"n": {"$gte": 2}}}, {"$sort": {"n": -1}}])
    assert inspect.iscoroutine(pending)
    cursor = await pending
    assert [doc["n"] async for doc in cursor] == [4, 3, 2]
    await cursor.close()


async def test_update_and_delete_results_are_the_real_classes(
    collection: FakeAsyncCollection,
) -> None:
    await collection.insert_one({"_id": 1, "x": 1})
    updated = await collection.update_one({"_id": 1}, {"$set": {"x": 2}})
    assert (updated.matched_count, updated.modified_count) == (1, 1)
    missing = await collection.update_one({"_id": 2}, {"$set": {"x": 2}})
    assert missing.matched_count == 0
    with pytest.raises(ValueError, match="\\$ operators"):
        await collection.update_one({"_id": 1}, {"x": 3})
    assert (await collection.delete_one({"_id": 1})).deleted_count == 1
    assert (await collection.delete_one({"_id": 1})).deleted_count == 0


async def test_client_close_is_awaited_and_closes() -> None:
    async with FakeAsyncMongoClient() as client:
        client["db"]
    assert client.closed
    with pytest.raises(InvalidOperation):
        client["db"]


async def test_repository_creates_its_indexes_before_the_first_write() -> None:
    database = FakeAsyncMongoClient()["app"]
    repository = MongoUserRepository(database)
    assert await database["users"].index_information() == {"_id_": {"key": [("_id", 1)], "v": 2}}
    await repository.add(email="ada@example.com", name="Ada", password_hash="h")
    indexes = await database["users"].index_information()
    assert indexes["email_1"] == {"key": [("email", 1)], "v": 2, "unique": True}
    assert indexes["created_at_1__id_1"]["key"] == [("created_at", 1), ("_id", 1)]
    with pytest.raises(DuplicateEmailError):
        await repository.add(email="ADA@example.com", name="Ada", password_hash="h")
    await repository.ensure_indexes()  # idempotent
    assert await database["users"].count_documents({}) == 1


async def test_repository_keeps_a_duplicate_key_on_another_index_as_is() -> None:
    database = FakeAsyncMongoClient()["app"]
    repository = MongoUserRepository(database)
    await database["users"].create_index([("name", 1)], unique=True)
    await repository.add(email="ada@example.com", name="Ada", password_hash="h")
    with pytest.raises(DuplicateKeyError):
        await repository.add(email="other@example.com", name="Ada", password_hash="h")
