"""An in-process fake of PyMongo's asyncio API, for tests where no MongoDB server can run.

It follows the real driver (PyMongo 4.13+ ``pymongo.asynchronous``) where the
code under test can tell the difference:

- the same awaitables: ``insert_one``, ``find_one``, ``update_one``,
  ``delete_one``, ``count_documents``, ``create_index``, ``drop``, the client's
  ``close`` and the cursors' ``close``/``next``/``to_list`` are coroutines;
  ``find`` is a plain method returning a cursor; ``aggregate`` is a coroutine
  that returns a cursor (in Motor it is not: that is why the repository never
  calls it). ``tests/unit/test_users_mongo_fake.py`` checks each of these
  against the real classes;
- the real result classes (``InsertOneResult``, ``UpdateResult``,
  ``DeleteResult``) and the real ``DuplicateKeyError`` (code 11000, with the
  write error document the server sends: ``keyPattern``, ``keyValue``);
- BSON storage: documents are deep-copied in and out, dates come back naive
  UTC truncated to milliseconds, ``insert_one`` adds an ``_id`` to the caller's
  document when it has none;
- query semantics: a filter value that is a document of ``$`` operators *is*
  interpreted as operators (``{"email": {"$gt": ""}}`` matches every non-empty
  email, as on a real server), with type bracketing for comparisons; so a test
  that a repository never lets such a value through can really fail.

Unsupported operators raise :class:`FakeMongoUnsupportedError` instead of guessing.
"""

from __future__ import annotations

import copy
import functools
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Self

from bson import ObjectId
from pymongo.errors import DuplicateKeyError, InvalidOperation, OperationFailure
from pymongo.results import DeleteResult, InsertOneResult, UpdateResult

__all__ = [
    "FakeAsyncCollection",
    "FakeAsyncCommandCursor",
    "FakeAsyncCursor",
    "FakeAsyncDatabase",
    "FakeAsyncMongoClient",
    "FakeMongoUnsupportedError",
]

Document = dict[str, Any]
_MISSING = object()


class FakeMongoUnsupportedError(NotImplementedError):
    """The code under test used something this fake does not model."""


# ------------------------------------------------------------------ BSON
def _to_bson(value: Any) -> Any:
    """What a round trip through BSON and the server does to a value."""
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"documents must have only string keys, key was {key!r}")
        return {key: _to_bson(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_bson(item) for item in value]
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    if value is None or isinstance(value, (str, int, float, bool, bytes, ObjectId, uuid.UUID)):
        return value
    raise TypeError(f"cannot encode object: {value!r}, of type: {type(value)!r}")


# BSON comparison order of types (MongoDB "Comparison/Sort Order").
def _type_rank(value: Any) -> int:
    if value is _MISSING or value is None:
        return 1
    if isinstance(value, bool):
        return 8
    if isinstance(value, (int, float)):
        return 2
    if isinstance(value, str):
        return 3
    if isinstance(value, dict):
        return 4
    if isinstance(value, list):
        return 5
    if isinstance(value, (bytes, uuid.UUID)):
        return 6
    if isinstance(value, ObjectId):
        return 7
    if isinstance(value, datetime):
        return 9
    raise FakeMongoUnsupportedError(f"no BSON order for {type(value).__name__}")


def _sort_key(value: Any) -> tuple[int, Any]:
    rank = _type_rank(value)
    if rank == 1:
        return (1, 0)
    if rank in (4, 5):
        raise FakeMongoUnsupportedError("sorting on documents or arrays")
    if isinstance(value, uuid.UUID):
        return (rank, value.bytes)
    return (rank, value)


def _get_path(document: Mapping[str, Any], path: str) -> Any:
    value: Any = document
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return _MISSING
    return value


# ----------------------------------------------------------------- queries
_COMPARISONS = {"$gt", "$gte", "$lt", "$lte"}


def _compare(op: str, value: Any, target: Any) -> bool:
    # Comparison operators only match values of the same BSON type bracket.
    if value is _MISSING or _type_rank(value) != _type_rank(target):
        return False
    left, right = _sort_key(value), _sort_key(target)
    if op == "$gt":
        return left > right
    if op == "$gte":
        return left >= right
    if op == "$lt":
        return left < right
    return left <= right


def _equals(value: Any, target: Any) -> bool:
    if target is None:
        return value is _MISSING or value is None
    if value is _MISSING:
        return False
    if isinstance(value, list) and not isinstance(target, list):
        return any(_equals(item, target) for item in value)
    if _type_rank(value) != _type_rank(target):
        return False
    return bool(value == target)


def _is_operator_document(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and next(iter(value)).startswith("$")


def _match_field(value: Any, condition: Any) -> bool:
    if not _is_operator_document(condition):
        return _equals(value, _to_bson(condition))
    for op, raw_target in condition.items():
        target = _to_bson(raw_target)
        if op == "$eq":
            ok = _equals(value, target)
        elif op == "$ne":
            ok = not _equals(value, target)
        elif op in _COMPARISONS:
            candidates = value if isinstance(value, list) else [value]
            ok = any(_compare(op, item, target) for item in candidates)
        elif op == "$in":
            ok = any(_equals(value, item) for item in target)
        elif op == "$nin":
            ok = not any(_equals(value, item) for item in target)
        elif op == "$exists":
            ok = (value is not _MISSING) == bool(target)
        elif op.startswith("$"):
            if op in {"$regex", "$elemMatch", "$size", "$type", "$mod", "$all", "$not"}:
                raise FakeMongoUnsupportedError(f"query operator {op}")
            # What the server answers (error code 2, BadValue).
            raise OperationFailure(f"unknown operator: {op}", 2)
        else:
            raise OperationFailure(f"unknown operator: {op}", 2)
        if not ok:
            return False
    return True


def _matches(document: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    for key, condition in query.items():
        if key in ("$or", "$and", "$nor"):
            if not isinstance(condition, list) or not condition:
                raise OperationFailure(f"{key} must be a nonempty array", 2)
            results = [_matches(document, part) for part in condition]
            if key == "$or" and not any(results):
                return False
            if key == "$and" and not all(results):
                return False
            if key == "$nor" and any(results):
                return False
        elif key == "$where":
            raise FakeMongoUnsupportedError("$where (server-side JavaScript)")
        elif key.startswith("$"):
            raise OperationFailure(f"unknown top level operator: {key}", 2)
        elif not _match_field(_get_path(document, key), condition):
            return False
    return True


def _index_keys(keys: Any, direction: Any = None) -> list[tuple[str, Any]]:
    if isinstance(keys, str):
        return [(keys, 1 if direction is None else direction)]
    if isinstance(keys, Mapping):
        return list(keys.items())
    if isinstance(keys, Sequence):
        result: list[tuple[str, Any]] = []
        for item in keys:
            if isinstance(item, str):
                result.append((item, 1))
            else:
                name, item_direction = item
                result.append((name, item_direction))
        return result
    raise TypeError("keys must be a string, a list of (key, direction) pairs or a mapping")


def _field_sort_key(field: str, document: Document) -> tuple[int, Any]:
    return _sort_key(_get_path(document, field))


def _sort_documents(documents: list[Document], spec: list[tuple[str, Any]]) -> list[Document]:
    # Stable sorts from the last key to the first give a multi-key sort.
    for field, direction in reversed(spec):
        if direction not in (1, -1):
            raise FakeMongoUnsupportedError(f"sort direction {direction!r}")
        documents.sort(key=functools.partial(_field_sort_key, field), reverse=direction == -1)
    return documents


def _project(document: Document, projection: Mapping[str, Any] | None) -> Document:
    if not projection:
        return document
    include = {key for key, flag in projection.items() if flag and key != "_id"}
    if include:
        result = {key: value for key, value in document.items() if key in include}
        if projection.get("_id", 1) and "_id" in document:
            result["_id"] = document["_id"]
        return result
    return {key: value for key, value in document.items() if key not in projection}


# ----------------------------------------------------------------- cursors
class FakeAsyncCursor:
    """Like ``pymongo.asynchronous.cursor.AsyncCursor``: chainable until iterated."""

    def __init__(
        self, collection: FakeAsyncCollection, query: Mapping[str, Any], projection: Any
    ) -> None:
        self._collection = collection
        self._query = dict(query)
        self._projection = projection
        self._sort: list[tuple[str, Any]] = []
        self._limit = 0
        self._skip = 0
        self._results: Iterator[Document] | None = None
        self._closed = False

    def _check_okay_to_chain(self) -> None:
        if self._results is not None:
            # The real driver's message.
            raise InvalidOperation("cannot set options after executing query")

    def sort(self, key_or_list: Any, direction: Any = None) -> Self:
        self._check_okay_to_chain()
        self._sort = _index_keys(key_or_list, direction)
        return self

    def limit(self, limit: int) -> Self:
        if not isinstance(limit, int):
            raise TypeError("limit must be an integer")
        self._check_okay_to_chain()
        self._limit = limit
        return self

    def skip(self, skip: int) -> Self:
        if not isinstance(skip, int):
            raise TypeError("skip must be an integer")
        if skip < 0:
            raise ValueError("skip must be >= 0")
        self._check_okay_to_chain()
        self._skip = skip
        return self

    def _execute(self) -> Iterator[Document]:
        if self._results is None:
            documents = [
                doc for doc in self._collection._documents.values() if _matches(doc, self._query)
            ]
            documents = _sort_documents(documents, self._sort)[self._skip :]
            if self._limit:
                documents = documents[: abs(self._limit)]
            self._results = iter(
                [_project(copy.deepcopy(doc), self._projection) for doc in documents]
            )
        return self._results

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Document:
        if self._closed:
            raise StopAsyncIteration
        try:
            return next(self._execute())
        except StopIteration:
            raise StopAsyncIteration from None

    async def next(self) -> Document:
        return await self.__anext__()

    async def to_list(self, length: int | None = None) -> list[Document]:
        if length is not None and length < 1:
            # PyMongo async refuses to_list(0) (Motor accepted it).
            raise ValueError("to_list() length must be greater than 0")
        result: list[Document] = []
        async for document in self:
            result.append(document)
            if length is not None and len(result) >= length:
                break
        return result

    async def close(self) -> None:
        self._closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class FakeAsyncCommandCursor(FakeAsyncCursor):
    """Like ``AsyncCommandCursor``: what ``await collection.aggregate(...)`` returns."""

    def __init__(self, documents: list[Document]) -> None:
        self._results = iter(documents)
        self._closed = False


# ------------------------------------------------------------- collection
class FakeAsyncCollection:
    """Like ``pymongo.asynchronous.collection.AsyncCollection``, in memory."""

    def __init__(self, database: FakeAsyncDatabase, name: str) -> None:
        self.database = database
        self.name = name
        self._documents: dict[Any, Document] = {}
        # name -> (keys, unique)
        self._indexes: dict[str, tuple[list[tuple[str, Any]], bool]] = {
            "_id_": ([("_id", 1)], True)
        }

    @property
    def full_name(self) -> str:
        return f"{self.database.name}.{self.name}"

    # ------------------------------------------------------------ indexes
    def _duplicate(self, candidate: Document, ignore_id: Any = _MISSING) -> None:
        for index_name, (keys, unique) in self._indexes.items():
            if not unique:
                continue
            wanted = [_get_path(candidate, field) for field, _ in keys]
            wanted = [None if value is _MISSING else value for value in wanted]
            for existing in self._documents.values():
                if existing["_id"] == ignore_id:
                    continue
                values = [_get_path(existing, field) for field, _ in keys]
                values = [None if value is _MISSING else value for value in values]
                if values == wanted:
                    key_pattern = dict(keys)
                    key_value = {
                        field: value for (field, _), value in zip(keys, wanted, strict=True)
                    }
                    shown = ", ".join(f"{field}: {value!r}" for field, value in key_value.items())
                    message = (
                        f"E11000 duplicate key error collection: {self.full_name} "
                        f"index: {index_name} dup key: {{ {shown} }}"
                    )
                    # The write error document a server sends, as the driver passes it on.
                    details = {
                        "index": 0,
                        "code": 11000,
                        "errmsg": message,
                        "keyPattern": key_pattern,
                        "keyValue": key_value,
                    }
                    raise DuplicateKeyError(message, 11000, details)

    async def create_index(self, keys: Any, **kwargs: Any) -> str:
        key_list = _index_keys(keys)
        unique = bool(kwargs.pop("unique", False))
        name = kwargs.pop("name", None) or "_".join(
            f"{field}_{direction}" for field, direction in key_list
        )
        if kwargs:
            raise FakeMongoUnsupportedError(f"index options {sorted(kwargs)}")
        existing = self._indexes.get(name)
        if existing is not None:
            if existing != (key_list, unique):
                # IndexKeySpecsConflict / IndexOptionsConflict on a real server.
                raise OperationFailure(
                    f"An existing index has the same name as the requested index: {name}", 86
                )
            return name
        for other_name, (other_keys, _) in self._indexes.items():
            if other_keys == key_list:
                raise OperationFailure(
                    f"Index already exists with a different name: {other_name}", 85
                )
        if unique:
            # Building a unique index over existing duplicates fails with E11000 too.
            seen: set[str] = set()
            for document in self._documents.values():
                values = repr([_get_path(document, field) for field, _ in key_list])
                if values in seen:
                    raise DuplicateKeyError(
                        f"E11000 duplicate key error collection: {self.full_name} index: {name}",
                        11000,
                        {"code": 11000, "keyPattern": dict(key_list)},
                    )
                seen.add(values)
        self._indexes[name] = (key_list, unique)
        return name

    async def index_information(self) -> dict[str, dict[str, Any]]:
        info: dict[str, dict[str, Any]] = {}
        for name, (keys, unique) in self._indexes.items():
            info[name] = {"key": list(keys), "v": 2}
            if unique and name != "_id_":
                info[name]["unique"] = True
        return info

    async def drop_index(self, name: str) -> None:
        if name == "_id_":
            raise OperationFailure("cannot drop _id index", 72)
        if self._indexes.pop(name, None) is None:
            raise OperationFailure(f"index not found with name [{name}]", 27)

    # ------------------------------------------------------------- writes
    async def insert_one(self, document: Document, *args: Any, **kwargs: Any) -> InsertOneResult:
        if not isinstance(document, Mapping):
            raise TypeError("document must be an instance of dict, bson.son.SON, ...")
        if "_id" not in document:
            document["_id"] = ObjectId()  # the real driver mutates the caller's dict too
        stored = _to_bson(document)
        self._duplicate(stored)
        self._documents[stored["_id"]] = stored
        return InsertOneResult(stored["_id"], True)

    async def update_one(
        self,
        filter: Mapping[str, Any],
        update: Mapping[str, Any],
        upsert: bool = False,
        **kwargs: Any,
    ) -> UpdateResult:
        if not update or not all(key.startswith("$") for key in update):
            raise ValueError("update only works with $ operators")
        if upsert or kwargs:
            raise FakeMongoUnsupportedError("update_one options")
        for document in self._documents.values():
            if _matches(document, filter):
                updated = copy.deepcopy(document)
                for op, changes in update.items():
                    for field, value in changes.items():
                        if "." in field:
                            raise FakeMongoUnsupportedError("dotted update paths")
                        if op == "$set":
                            updated[field] = _to_bson(value)
                        elif op == "$unset":
                            updated.pop(field, None)
                        elif op == "$inc":
                            updated[field] = updated.get(field, 0) + value
                        else:
                            raise FakeMongoUnsupportedError(f"update operator {op}")
                if "_id" in updated and updated["_id"] != document["_id"]:
                    raise OperationFailure(
                        "Performing an update on the path '_id' would modify the immutable field '_id'",
                        66,
                    )
                self._duplicate(updated, ignore_id=document["_id"])
                modified = updated != document
                self._documents[document["_id"]] = updated
                raw = {"n": 1, "nModified": int(modified), "ok": 1.0, "updatedExisting": True}
                return UpdateResult(raw, True)
        return UpdateResult({"n": 0, "nModified": 0, "ok": 1.0, "updatedExisting": False}, True)

    async def delete_one(
        self, filter: Mapping[str, Any], *args: Any, **kwargs: Any
    ) -> DeleteResult:
        for key, document in self._documents.items():
            if _matches(document, filter):
                del self._documents[key]
                return DeleteResult({"n": 1, "ok": 1.0}, True)
        return DeleteResult({"n": 0, "ok": 1.0}, True)

    async def drop(self, *args: Any, **kwargs: Any) -> None:
        self._documents.clear()
        self._indexes = {"_id_": ([("_id", 1)], True)}
        self.database._collections.pop(self.name, None)

    # -------------------------------------------------------------- reads
    def find(
        self, filter: Mapping[str, Any] | None = None, projection: Any = None, **kwargs: Any
    ) -> FakeAsyncCursor:
        if kwargs:
            raise FakeMongoUnsupportedError(f"find options {sorted(kwargs)}")
        if filter is not None and not isinstance(filter, Mapping):
            raise TypeError(
                "filter must be an instance of dict, bson.son.SON, or any other type that inherits from collections.Mapping"
            )
        return FakeAsyncCursor(self, filter or {}, projection)

    async def find_one(
        self, filter: Any | None = None, *args: Any, **kwargs: Any
    ) -> Document | None:
        if filter is not None and not isinstance(filter, Mapping):
            filter = {"_id": filter}  # the real driver's shorthand
        async for document in self.find(filter, *args, **kwargs).limit(-1):
            return document
        return None

    async def count_documents(self, filter: Mapping[str, Any], **kwargs: Any) -> int:
        if kwargs:
            raise FakeMongoUnsupportedError(f"count_documents options {sorted(kwargs)}")
        return sum(1 for doc in self._documents.values() if _matches(doc, filter))

    async def aggregate(
        self, pipeline: list[Mapping[str, Any]], **kwargs: Any
    ) -> FakeAsyncCommandCursor:
        """A coroutine returning a cursor, as in PyMongo (not Motor)."""
        documents = [copy.deepcopy(doc) for doc in self._documents.values()]
        for stage in pipeline:
            (name, spec), *rest = stage.items()
            if rest:
                raise OperationFailure(
                    "A pipeline stage specification object must contain exactly one field.", 40323
                )
            if name == "$match":
                documents = [doc for doc in documents if _matches(doc, spec)]
            elif name == "$sort":
                documents = _sort_documents(documents, _index_keys(spec))
            elif name == "$limit":
                documents = documents[:spec]
            elif name == "$skip":
                documents = documents[spec:]
            elif name == "$count":
                documents = [{spec: len(documents)}] if documents else []
            else:
                raise FakeMongoUnsupportedError(f"aggregation stage {name}")
        return FakeAsyncCommandCursor(documents)


# ----------------------------------------------------------------- database
class FakeAsyncDatabase:
    """Like ``AsyncDatabase``: ``db[name]`` / ``db.get_collection(name)`` give collections."""

    def __init__(self, client: FakeAsyncMongoClient, name: str) -> None:
        self.client = client
        self.name = name
        self._collections: dict[str, FakeAsyncCollection] = {}

    def __getitem__(self, name: str) -> FakeAsyncCollection:
        return self.get_collection(name)

    def get_collection(self, name: str) -> FakeAsyncCollection:
        if name not in self._collections:
            self._collections[name] = FakeAsyncCollection(self, name)
        return self._collections[name]

    async def list_collection_names(self) -> list[str]:
        return sorted(self._collections)

    async def drop_collection(self, name: str) -> dict[str, Any]:
        self._collections.pop(name, None)
        return {"ok": 1.0}


class FakeAsyncMongoClient:
    """Like ``AsyncMongoClient``: ``client[name]`` is a database; ``close`` is a coroutine."""

    def __init__(self) -> None:
        self._databases: dict[str, FakeAsyncDatabase] = {}
        self.closed = False

    def __getitem__(self, name: str) -> FakeAsyncDatabase:
        return self.get_database(name)

    def get_database(self, name: str) -> FakeAsyncDatabase:
        if self.closed:
            raise InvalidOperation("Cannot use AsyncMongoClient after close")
        if name not in self._databases:
            self._databases[name] = FakeAsyncDatabase(self, name)
        return self._databases[name]

    async def drop_database(self, name: str) -> None:
        self._databases.pop(name, None)

    async def close(self) -> None:
        self.closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
