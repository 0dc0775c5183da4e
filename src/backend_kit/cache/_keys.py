"""Cache keys: arguments bound to the signature, encoded canonically, hashed.

A key looks like ``{namespace}:{module}.{qualname}:{digest}`` where ``digest``
is the 128-bit BLAKE2b digest (32 hex digits) of a canonical text form of
the bound arguments. The text form is Python-literal-like and
self-delimiting, so two different argument lists never produce the same text
(and a 128-bit digest makes a hash collision a non-event), and it never
depends on ``hash()``, ``id()`` or dict/set iteration order, so a key is the
same in every process and every Python run.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import fractions
import inspect
import pathlib
import uuid
from collections.abc import Callable, Iterable, Mapping
from hashlib import blake2b
from typing import Any

__all__ = ["KeyBuilder", "UnkeyableArgumentError", "canonical_text"]

_DIGEST_BYTES = 16  # 128-bit BLAKE2b digest: 32 hex digits in the key
_MEMO_ENTRIES = 512  # canonical texts whose key each function remembers...
_MEMO_MAX_TEXT = 256  # ...when they are at most this many characters

# Types whose repr() is a stable, unambiguous literal (no address, no hash order).
_REPR_TYPES: frozenset[type] = frozenset(
    {
        str,
        int,
        float,
        bool,
        type(None),
        bytes,
        bytearray,
        complex,
        decimal.Decimal,
        fractions.Fraction,
        uuid.UUID,
        datetime.datetime,
        datetime.date,
        datetime.time,
        datetime.timedelta,
        datetime.timezone,
        pathlib.PurePosixPath,
        pathlib.PureWindowsPath,
        pathlib.PosixPath,
        pathlib.WindowsPath,
        range,
    }
)
_REQUIRED = inspect.Parameter.empty


class UnkeyableArgumentError(TypeError):
    """An argument has no stable canonical form, so no cache key can be built from it."""


def _type_name(tp: type) -> str:
    return f"{tp.__module__}.{tp.__qualname__}"


def canonical_text(value: object) -> str:
    """Return the canonical text of ``value`` (the input of the key hash).

    Equal containers give equal text whatever their insertion order (dicts and
    sets are sorted by the text of their items); values of different types
    give different text (``1``, ``1.0``, ``True``, ``'1'`` and ``(1,)`` all
    differ). Raises :class:`UnkeyableArgumentError` (a ``TypeError``) for a
    value without a stable form, such as an object whose ``repr`` holds its
    memory address.
    """
    tp = type(value)
    if tp in _REPR_TYPES:
        return repr(value)
    if tp is tuple:
        return "(" + "".join(canonical_text(item) + "," for item in value) + ")"  # type: ignore[attr-defined]
    if tp is list:
        return "[" + ",".join(canonical_text(item) for item in value) + "]"  # type: ignore[attr-defined]
    if tp is dict:
        return _mapping_text("", value)  # type: ignore[arg-type]
    if tp is set or tp is frozenset:
        return f"{tp.__name__}{{" + ",".join(sorted(_items_text(value))) + "}"  # type: ignore[arg-type]
    return _special_text(value)


def _items_text(values: Iterable[object]) -> list[str]:
    return [canonical_text(item) for item in values]


def _mapping_text(tag: str, mapping: Mapping[Any, Any]) -> str:
    items = sorted(canonical_text(k) + ":" + canonical_text(v) for k, v in mapping.items())
    return tag + "{" + ",".join(items) + "}"


def _special_text(value: object) -> str:
    """Canonical text of anything that is not a builtin literal or container."""
    tp = type(value)
    custom = getattr(tp, "__cache_key__", None)
    if custom is not None:
        return f"K({_type_name(tp)!r},{canonical_text(custom(value))})"
    if isinstance(value, enum.Enum):
        return f"E({_type_name(tp)!r},{value.name!r})"
    if isinstance(value, type):
        return f"T({_type_name(value)!r})"
    if dataclasses.is_dataclass(value):
        fields = tuple((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
        return f"D({_type_name(tp)!r},{canonical_text(fields)})"
    dump = getattr(value, "model_dump", None)  # pydantic v2 models, duck-typed
    if dump is not None and hasattr(tp, "model_fields"):
        return f"M({_type_name(tp)!r},{canonical_text(dump(mode='json'))})"
    # Subclasses of builtins (a ``UserId(int)``): the base value plus the type.
    for base in (str, int, float, bytes):
        if isinstance(value, base):
            return f"S({_type_name(tp)!r},{base.__repr__(value)})"
    for base_container in (tuple, list):
        if isinstance(value, base_container):
            return f"S({_type_name(tp)!r},{canonical_text(base_container(value))})"
    if isinstance(value, Mapping):
        return _mapping_text(f"S({_type_name(tp)!r})", value)
    raise UnkeyableArgumentError(
        f"cannot build a cache key from a value of type {_type_name(tp)}: it has no stable "
        "canonical form; exclude the argument (exclude=[...]), pass key=..., or give the "
        "type a __cache_key__(self) method returning keyable data"
    )


class KeyBuilder:
    """Builds the cache key of one decorated function from its call arguments.

    Everything that does not depend on the call (the signature, the key
    prefix, which parameters are left out) is computed once here, at
    decoration time.

    Args:
        func: the undecorated function.
        namespace: the manager's namespace (first part of every key).
        skip_first: leave the first parameter out (``self``/``cls`` of a method).
        exclude: parameter names left out of the key (sessions, requests...).
        key: ``None`` for hashed keys; a ``str.format`` template over parameter
            names (``"user:{user_id}"``); or a callable taking the call's
            arguments and returning the key text. Both are prefixed by the
            namespace.
        version: part of the prefix; bump it when the function's result changes shape.

    Raises:
        ValueError: ``exclude`` names a parameter the function does not have.
    """

    __slots__ = (
        "_fast_defaults",
        "_fast_ok",
        "_hashed",
        "_keep",
        "_keep_slice",
        "_key_callable",
        "_memo",
        "_names",
        "_nparams",
        "_signature",
        "_template",
        "function_prefix",
        "namespace_prefix",
        "skips_first",
    )

    def __init__(
        self,
        func: Callable[..., object],
        *,
        namespace: str,
        skip_first: bool,
        exclude: Iterable[str] = (),
        key: str | Callable[..., str] | None = None,
        version: str | int | None = None,
    ) -> None:
        self._signature = inspect.signature(func)
        params = list(self._signature.parameters.values())
        names = [p.name for p in params]
        excluded = set(exclude)
        unknown = excluded - set(names)
        if unknown:
            raise ValueError(
                f"exclude names no parameter of {func.__qualname__}: {', '.join(sorted(unknown))}"
            )
        self.skips_first = skip_first and bool(names)
        first_skipped = {names[0]} if self.skips_first else set()
        self._keep = tuple(
            i for i, name in enumerate(names) if name not in excluded and name not in first_skipped
        )
        # The kept parameters are nearly always a contiguous run (all, or all
        # but self): then one slice picks them.
        keep = self._keep
        contiguous = not keep or keep == tuple(range(keep[0], keep[-1] + 1))
        self._keep_slice = slice(keep[0], keep[-1] + 1) if keep and contiguous else None
        if not keep:
            self._keep_slice = slice(0, 0)
        self._names = tuple(names)
        self._memo: dict[str, str] = {}
        self._nparams = len(params)
        # The fast binder handles the common shape: only positional-or-keyword
        # parameters, called positionally. Anything else goes through
        # Signature.bind (slower, always right).
        self._fast_ok = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
        self._fast_defaults = tuple(p.default for p in params)
        tag = f"{func.__module__}.{func.__qualname__}"
        if version is not None:
            tag += f"@{version}"
        self.namespace_prefix = f"{namespace}:"
        self.function_prefix = f"{namespace}:{tag}:"
        self._template = key if isinstance(key, str) else None
        self._key_callable = key if callable(key) else None
        self._hashed = key is None

    # ------------------------------------------------------------ binding
    def bound_values(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """All parameter values in signature order, defaults applied.

        Raises:
            TypeError: the arguments do not match the signature (as a call would).
        """
        if self._fast_ok and not kwargs:
            n = len(args)
            if n == self._nparams:
                return args
            if n < self._nparams:
                missing = self._fast_defaults[n:]
                if _REQUIRED not in missing:
                    return args + missing
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return tuple(bound.arguments.values())

    # --------------------------------------------------------------- keys
    def build(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """The key for a call with ``args`` / ``kwargs`` (``self`` included for methods).

        Raises:
            TypeError: an argument cannot be keyed (the message names it), or the
                arguments do not match the signature.
        """
        if not self._hashed:
            return self._custom(args, kwargs)
        if self._fast_ok and not kwargs and len(args) == self._nparams:
            values = args  # the common call: every parameter passed positionally
        else:
            values = self.bound_values(args, kwargs)
        keep = self._keep_slice
        kept = values[keep] if keep is not None else tuple(values[i] for i in self._keep)
        if _REPR_TYPES.issuperset(map(type, kept)):
            # All plain literals (the usual case): two passes in C, no Python frame.
            text = ",".join(map(repr, kept))
        else:
            text = ",".join(
                [
                    repr(value) if type(value) in _REPR_TYPES else self._encode_argument(i, value)
                    for i, value in zip(self._keep, kept, strict=True)
                ]
            )
        # Hot keys repeat: remember the last few hundred texts' keys (the text
        # is the injective form, so the memo can never mix two calls up).
        memo = self._memo
        key = memo.get(text)
        if key is None:
            # BLAKE2b with a 128-bit digest: as collision-safe here as SHA-256
            # truncated to 128 bits, and ~40 % cheaper for short inputs.
            digest = blake2b(text.encode("utf-8", "surrogatepass"), digest_size=_DIGEST_BYTES)
            key = self.function_prefix + digest.hexdigest()
            if len(text) <= _MEMO_MAX_TEXT:  # big arguments are not worth the memory
                if len(memo) >= _MEMO_ENTRIES:
                    memo.clear()  # crude, O(1) amortized, and safe under threads
                memo[text] = key
        return key

    def _encode_argument(self, index: int, value: object) -> str:
        try:
            return canonical_text(value)
        except UnkeyableArgumentError as exc:
            raise UnkeyableArgumentError(f"argument {self._names[index]!r}: {exc}") from None

    def _custom(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if self._key_callable is not None:
            return self.namespace_prefix + self._key_callable(*args, **kwargs)
        values = self.bound_values(args, kwargs)
        named = {self._names[i]: values[i] for i in self._keep}
        assert self._template is not None  # noqa: S101 - set in __init__ when not hashed
        return self.namespace_prefix + self._template.format_map(named)
