"""Cache keys: bound arguments, canonical text, stable across processes, no collisions."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import os
import subprocess
import sys
import textwrap
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend_kit.cache import CacheManager, MemoryCache, UnkeyableArgumentError, canonical_text
from backend_kit.cache._keys import KeyBuilder


class Color(enum.Enum):
    RED = 1
    ALSO_RED = 2


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


class UserId(int):
    pass


def target(a: Any, b: Any = 2, *rest: Any, c: Any = 3, **extra: Any) -> None:
    return None


def builder(**options: Any) -> KeyBuilder:
    return KeyBuilder(target, namespace="ns", skip_first=False, **options)


def test_bound_arguments_share_a_key() -> None:
    keys = builder()
    same = {
        keys.build((1,), {}),
        keys.build((), {"a": 1}),
        keys.build((1, 2), {}),
        keys.build((1,), {"b": 2, "c": 3}),
    }
    assert len(same) == 1
    assert keys.build((1, 3), {}) not in same
    assert keys.build((1, 2, 9), {}) not in same
    assert keys.build((1,), {"zz": 1}) not in same


def test_key_shape_and_golden_value() -> None:
    """The exact key of a known call: a change here breaks every deployed cache.

    The digest is blake2b("42,'EUR'", digest_size=16), the canonical text of (42, "EUR").
    """

    def price(item_id: int, currency: str = "EUR") -> None:
        return None

    price.__module__, price.__qualname__ = "shop", "price"
    keys = KeyBuilder(price, namespace="app", skip_first=False)
    assert keys.build((42,), {}) == "app:shop.price:a7d89cefb7defe7411d0a0b59eb4e30b"
    versioned = KeyBuilder(price, namespace="app", skip_first=False, version=2)
    assert versioned.build((42,), {}).startswith("app:shop.price@2:")


def test_self_exclude_template_and_callable_keys() -> None:
    def method(self: object, user_id: int, session: object = None) -> None:
        return None

    keys = KeyBuilder(method, namespace="ns", skip_first=True, exclude=["session"])
    assert keys.build((object(), 1, object()), {}) == keys.build((object(), 1), {})
    template = KeyBuilder(method, namespace="ns", skip_first=True, key="user:{user_id}")
    assert template.build((object(), 5), {}) == "ns:user:5"
    from_callable = KeyBuilder(
        method,
        namespace="ns",
        skip_first=True,
        key=lambda self, user_id, session=None: f"u{user_id}",
    )
    assert from_callable.build((None, 6), {}) == "ns:u6"
    with pytest.raises(ValueError, match="nope"):
        KeyBuilder(method, namespace="ns", skip_first=True, exclude=["nope"])


def test_unkeyable_argument_names_the_argument() -> None:
    keys = builder()
    with pytest.raises(TypeError, match=r"argument 'b'.*object"):
        keys.build((1, object()), {})
    assert issubclass(UnkeyableArgumentError, TypeError)
    manager = CacheManager(MemoryCache())

    @manager.cache_result(ttl=5)
    def f(session: object) -> int:
        return 1

    with pytest.raises(TypeError, match="'session'"):
        f(object())


def test_types_are_told_apart_and_containers_are_canonical() -> None:
    values = [1, 1.0, True, "1", b"1", (1,), [1], {1}, frozenset({1}), None, "None", Decimal("1")]
    texts = [canonical_text(v) for v in values]
    assert len(set(texts)) == len(values)
    assert canonical_text({"a": 1, "b": 2}) == canonical_text({"b": 2, "a": 1})
    assert canonical_text({"x", "y", "z"}) == canonical_text({"z", "y", "x"})
    assert canonical_text(Color.RED) != canonical_text(Color.ALSO_RED)
    assert canonical_text(Point(1, 2)) != canonical_text(Point(2, 1))
    assert canonical_text(UserId(3)) != canonical_text(3)
    assert canonical_text(datetime.date(2024, 1, 2)) != canonical_text("2024-01-02")
    assert canonical_text(uuid.UUID(int=5)) == canonical_text(uuid.UUID(int=5))


keyable = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=4), inner, max_size=4)
        | st.frozensets(st.integers() | st.text(max_size=4), max_size=4)
    ),
    max_leaves=12,
)


def _identity(value: Any) -> Any:
    """Equality that also tells 1 / 1.0 / True and list / tuple apart, like the keys do."""
    if isinstance(value, float) and value == 0.0:
        return ("float", str(value))  # 0.0 and -0.0 are equal but keyed apart
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(_identity(v) for v in value))
    if isinstance(value, dict):
        return ("dict", frozenset((k, _identity(v)) for k, v in value.items()))
    if isinstance(value, frozenset):
        return ("frozenset", frozenset(_identity(v) for v in value))
    return (type(value).__name__, value)


@given(keyable, keyable)
def test_distinct_arguments_never_share_a_key(first: Any, second: Any) -> None:
    keys = builder()
    same_key = keys.build((first,), {}) == keys.build((second,), {})
    assert same_key == (_identity(first) == _identity(second))


@given(st.dictionaries(st.text(max_size=5), st.integers(), max_size=6))
def test_dict_order_never_changes_the_key(mapping: dict[str, int]) -> None:
    reordered = dict(reversed(list(mapping.items())))
    assert canonical_text(mapping) == canonical_text(reordered)


def test_keys_are_stable_across_processes() -> None:
    """Two fresh interpreters (different PYTHONHASHSEED) build the same keys."""
    code = textwrap.dedent(
        """
        from backend_kit.cache._keys import KeyBuilder
        def fetch(user, filters=None, tags=frozenset()):
            return None
        fetch.__module__ = "svc"
        keys = KeyBuilder(fetch, namespace="ns", skip_first=False)
        print(keys.build(("ada",), {"filters": {"b": [1, 2.5], "a": None}, "tags": frozenset({"x", "y", "z"})}))
        print(keys.build((7,), {}))
        """
    )
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=True,
        )
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
    assert outputs[0].count("ns:svc.fetch:") == 2


def test_key_memo_is_bounded_and_never_mixes_calls() -> None:
    keys = builder()
    first = [keys.build((n,), {}) for n in range(2000)]
    again = [keys.build((n,), {}) for n in range(2000)]
    assert first == again
    assert len(set(first)) == 2000
    assert len(keys._memo) <= 512
    big = keys.build(("x" * 1000,), {})
    assert big not in keys._memo.values()
