"""How cached values become bytes: JSON by default, pickle only signed and on request."""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
from collections.abc import Iterable
from typing import Any

__all__ = ["JsonSerializer", "PickleSerializer", "SignedSerializer"]

_MIN_SECRET_BYTES = 16
_MAC_BYTES = 32  # HMAC-SHA256


def _check_json_native(value: object) -> None:
    """Refuse what the stdlib encoder would silently change (non-str dict keys)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            for k, v in item.items():
                if type(k) is not str:
                    raise TypeError(f"dict key {k!r} is not a str; JSON would turn it into one")
                stack.append(v)
        elif type(item) in (list, tuple):
            stack.extend(item)  # type: ignore[arg-type]


class JsonSerializer:
    """JSON values (orjson when installed, else the stdlib), compact UTF-8.

    Round-trips ``dict`` (str keys), ``list``, ``str``, ``int``, ``float``,
    ``bool`` and ``None``; a ``tuple`` comes back as a ``list``. Anything
    else (datetimes, dataclasses, sets, non-str dict keys) makes :meth:`dumps`
    raise ``TypeError`` so the manager returns the result uncached instead of
    caching something that would come back different. NaN and infinities are
    refused too (orjson would store them as ``null``).
    """

    __slots__ = ("_orjson_dumps", "dumps", "loads", "name")

    def __init__(self, *, use_orjson: bool | None = None) -> None:
        """``use_orjson``: ``None`` picks orjson when it is installed; ``False`` forces stdlib."""
        orjson: Any = None
        if use_orjson is not False:
            try:
                import orjson  # optional speed-up, imported only when used
            except ImportError:
                if use_orjson:
                    raise
        if orjson is not None:
            options = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
            raw_dumps = orjson.dumps

            def dumps(value: Any) -> bytes:
                _check_floats(value)
                return raw_dumps(value, option=options)  # type: ignore[no-any-return]

            self.dumps = dumps
            self.loads = orjson.loads
            self.name = "orjson"
        else:
            encoder = json.JSONEncoder(
                separators=(",", ":"), ensure_ascii=False, allow_nan=False
            ).encode
            decode = json.loads

            def std_dumps(value: Any) -> bytes:
                _check_json_native(value)
                return encoder(value).encode()

            self.dumps = std_dumps
            self.loads = decode
            self.name = "json"

    def __repr__(self) -> str:
        return f"JsonSerializer({self.name})"


def _check_floats(value: object) -> None:
    """orjson writes NaN/inf as ``null``: refuse them so a value never changes on the way."""
    stack = [value]
    while stack:
        item = stack.pop()
        tp = type(item)
        if tp is float:
            if item != item or item in (float("inf"), float("-inf")):
                raise ValueError("NaN and infinity are not JSON")
        elif tp is dict:
            stack.extend(item.values())  # type: ignore[attr-defined]
        elif tp is list or tp is tuple:
            stack.extend(item)  # type: ignore[arg-type]


def _secret_bytes(secret: str | bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if len(key) < _MIN_SECRET_BYTES:
        raise ValueError(f"the signing secret must be at least {_MIN_SECRET_BYTES} bytes")
    return key


class SignedSerializer:
    """Wraps another serializer and signs every value with HMAC-SHA256.

    A value whose signature does not verify (tampered with, written by
    another application, or signed with an unknown secret) makes
    :meth:`loads` raise ``ValueError``, which the manager treats as a miss.
    ``old_secrets`` still verify (for rotating the secret) but never sign.

    Raises:
        ValueError: a secret shorter than 16 bytes.
    """

    __slots__ = ("_inner", "_keys", "_sign_key")

    def __init__(
        self, inner: Any, secret: str | bytes, *, old_secrets: Iterable[str | bytes] = ()
    ) -> None:
        self._inner = inner
        self._sign_key = _secret_bytes(secret)
        self._keys = (self._sign_key, *(_secret_bytes(s) for s in old_secrets))

    def dumps(self, value: Any) -> bytes:
        payload: bytes = self._inner.dumps(value)
        return hmac.new(self._sign_key, payload, hashlib.sha256).digest() + payload

    def loads(self, data: bytes) -> Any:
        mac, payload = data[:_MAC_BYTES], data[_MAC_BYTES:]
        for key in self._keys:
            if hmac.compare_digest(mac, hmac.new(key, payload, hashlib.sha256).digest()):
                return self._inner.loads(payload)
        raise ValueError("cached value signature does not verify")


class _RawPickle:
    __slots__ = ()

    def dumps(self, value: Any) -> bytes:
        try:
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, AttributeError) as exc:
            raise TypeError(f"cannot pickle {type(value).__name__}") from exc

    def loads(self, data: bytes) -> Any:
        try:
            # Only ever reached after the HMAC verified: the bytes are ours.
            return pickle.loads(data)  # noqa: S301
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError) as exc:
            raise ValueError("cached pickle does not load") from exc


class PickleSerializer(SignedSerializer):
    """Pickle, always HMAC-signed: for results JSON cannot hold (datetimes, models...).

    Never the default: choose it explicitly, with a secret from your
    configuration (never from code). Unsigned pickle from a shared cache would
    let anyone who can write to Redis run code in your process; the signature
    means only a holder of the secret can produce a value that gets unpickled.

    Raises:
        ValueError: a secret shorter than 16 bytes.
    """

    __slots__ = ()

    def __init__(self, secret: str | bytes, *, old_secrets: Iterable[str | bytes] = ()) -> None:
        super().__init__(_RawPickle(), secret, old_secrets=old_secrets)
