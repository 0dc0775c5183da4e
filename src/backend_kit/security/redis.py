"""RedisRevocationStore: revoked token ids shared by every process, gone when the token expires.

Needs the ``redis`` extra (``pip install 'backend-kit[redis]'``). Each key is
written with ``SET … EXAT <token expiry>``, so Redis forgets a revocation at
the moment the token would be refused anyway, and nothing needs cleaning.
"""

from __future__ import annotations

from backend_kit._closing import Closeable
from backend_kit._optional import import_optional

import_optional("redis", extra="redis")

import os  # noqa: E402 - the extra check above must run first
from collections.abc import Mapping  # noqa: E402
from typing import Final  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import redis  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from redis.exceptions import RedisError  # noqa: E402

from backend_kit._redact import redact_url  # noqa: E402
from backend_kit.errors import ConfigurationError, RevocationStoreError  # noqa: E402

__all__ = ["RedisRevocationStore"]

_UNAVAILABLE: Final = "the token revocation store (Redis) is unavailable"


class RedisRevocationStore(Closeable):
    """A :class:`~backend_kit.security.RevocationStore` on Redis, sync and async.

    Give a ``url`` (the store creates and closes its own clients, each on
    first use) or ready-made ``client`` / ``async_client`` (the store uses
    them and leaves closing them to you). The sync methods need a sync client
    and the async ones an async client.

    Args:
        url: ``redis://`` or ``rediss://`` URL (credentials in the URL are never logged).
        client: a ``redis.Redis`` for the sync methods.
        async_client: a ``redis.asyncio.Redis`` for the async methods.
        key_prefix: prepended to every key (default ``"backend_kit:security:"``),
            so several services can share a database.
        socket_timeout: seconds before a Redis call fails (default 1.0); only
            for clients the store creates.

    Every Redis failure raises :class:`~backend_kit.errors.RevocationStoreError`:
    tokens are refused rather than accepted unchecked (fail closed).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: redis.Redis | None = None,
        async_client: aioredis.Redis | None = None,
        key_prefix: str = "backend_kit:security:",
        socket_timeout: float = 1.0,
    ) -> None:
        if url is None and client is None and async_client is None:
            raise ConfigurationError("RedisRevocationStore needs a url or a client")
        if url is not None and (client is not None or async_client is not None):
            raise ConfigurationError("give RedisRevocationStore a url or clients, not both")
        if url is not None:
            try:
                urlsplit(url).port  # noqa: B018 - a bad port raises here, not at the first check
            except ValueError:
                raise ConfigurationError("malformed Redis URL (bad host or port)") from None
        self._url = url
        self._client = client
        self._async_client = async_client
        self._owns_clients = url is not None
        self._prefix = key_prefix
        self._socket_timeout = socket_timeout

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, key_prefix: str = "backend_kit:security:"
    ) -> RedisRevocationStore:
        """A store on ``REDIS_URL``.

        Raises:
            ConfigurationError: ``REDIS_URL`` is not set.
        """
        env = os.environ if environ is None else environ
        url = env.get("REDIS_URL", "").strip()
        if not url:
            raise ConfigurationError("REDIS_URL is not set")
        return cls(url, key_prefix=key_prefix)

    def __repr__(self) -> str:
        where = redact_url(self._url) if self._url is not None else "given clients"
        return f"RedisRevocationStore({where}, key_prefix={self._prefix!r})"

    # --------------------------------------------------------------- sync API
    def revoke(self, key: str, *, expires_at: int) -> None:
        """Remember ``key`` until ``expires_at`` (Unix seconds); a past deadline is a no-op."""
        try:
            self._sync().set(self._prefix + key, b"1", exat=expires_at)
        except RedisError as exc:
            raise RevocationStoreError(_UNAVAILABLE) from exc

    def is_revoked(self, *keys: str) -> bool:
        """True when any of ``keys`` is stored (one ``EXISTS`` for all of them)."""
        if not keys:
            return False
        try:
            found: int = self._sync().exists(*(self._prefix + key for key in keys))
        except RedisError as exc:
            raise RevocationStoreError(_UNAVAILABLE) from exc
        return found > 0

    def mark_used(self, key: str, *, expires_at: int) -> bool:
        """``SET NX EXAT``: True only for the first caller, across every process."""
        try:
            created = self._sync().set(self._prefix + key, b"1", exat=expires_at, nx=True)
        except RedisError as exc:
            raise RevocationStoreError(_UNAVAILABLE) from exc
        return bool(created)

    # -------------------------------------------------------------- async API
    async def arevoke(self, key: str, *, expires_at: int) -> None:
        """Async :meth:`revoke`."""
        try:
            await self._async().set(self._prefix + key, b"1", exat=expires_at)
        except RedisError as exc:
            raise RevocationStoreError(_UNAVAILABLE) from exc

    async def ais_revoked(self, *keys: str) -> bool:
        """Async :meth:`is_revoked`."""
        if not keys:
            return False
        try:
            found: int = await self._async().exists(*(self._prefix + key for key in keys))
        except RedisError as exc:
            raise RevocationStoreError(_UNAVAILABLE) from exc
        return found > 0

    async def amark_used(self, key: str, *, expires_at: int) -> bool:
        """Async :meth:`mark_used`."""
        try:
            created = await self._async().set(self._prefix + key, b"1", exat=expires_at, nx=True)
        except RedisError as exc:
            raise RevocationStoreError(_UNAVAILABLE) from exc
        return bool(created)

    # -------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Close the sync client if the store created it. Idempotent."""
        client, self._client = (self._client, None) if self._owns_clients else (None, None)
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close both clients if the store created them. Idempotent."""
        self.close()
        if self._owns_clients:
            async_client, self._async_client = self._async_client, None
            if async_client is not None:
                await async_client.aclose()

    # ---------------------------------------------------------------- clients
    def _sync(self) -> redis.Redis:
        client = self._client
        if client is None:
            if self._url is None:
                raise ConfigurationError(
                    "this RedisRevocationStore has no sync client; give client= or a url"
                )
            client = self._client = redis.Redis.from_url(
                self._url,
                socket_timeout=self._socket_timeout,
                socket_connect_timeout=self._socket_timeout,
            )
        return client

    def _async(self) -> aioredis.Redis:
        client = self._async_client
        if client is None:
            if self._url is None:
                raise ConfigurationError(
                    "this RedisRevocationStore has no async client; give async_client= or a url"
                )
            client = self._async_client = aioredis.Redis.from_url(
                self._url,
                socket_timeout=self._socket_timeout,
                socket_connect_timeout=self._socket_timeout,
            )
        return client
