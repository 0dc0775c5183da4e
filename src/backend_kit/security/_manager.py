"""SecurityManager: passwords (Argon2id, rehash on login) and JWTs (pinned, typed, revocable)."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Final, NamedTuple, TypeVar, cast

from backend_kit._closing import Closeable
from backend_kit.errors import ConfigurationError, ExpiredTokenError, RevokedTokenError
from backend_kit.security._keys import SigningKey
from backend_kit.security._passwords import Argon2Parameters, Argon2PasswordHasher, Argon2Preset
from backend_kit.security._revocation import MemoryRevocationStore, RevocationStore
from backend_kit.security._tokens import RESERVED_CLAIMS, TokenCodec

if TYPE_CHECKING:
    from jwt.algorithms import AllowedPrivateKeys, AllowedPublicKeys

    from backend_kit.security._passwords import PasswordHasher

__all__ = ["MAX_LEEWAY", "SecurityManager", "TokenPair"]

logger = logging.getLogger("backend_kit.security")

T = TypeVar("T")

#: RFC 8725 leaves skew to the application; more than two minutes of grace
#: turns a short-lived token into a long-lived one, so larger values are refused.
MAX_LEEWAY: Final = timedelta(minutes=2)

_REVOKED: Final = "The token has been revoked."
_REUSED: Final = "This refresh token was already used; the session has been revoked."


class TokenPair(NamedTuple):
    """An access token and the refresh token of the same session (family)."""

    access_token: str
    refresh_token: str


def _default_workers() -> int:
    """About one hashing thread per core this process may use."""
    process_cpu_count = getattr(os, "process_cpu_count", None)  # Python 3.13+
    if process_cpu_count is not None:
        count = process_cpu_count()
    elif hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:  # pragma: no cover - macOS / Windows on 3.11-3.12
        count = os.cpu_count()
    return max(1, count or 1)


def _lower_thread_priority(niceness: int) -> None:
    """Pool initializer: make this hashing thread yield the CPU to the event loop.

    Argon2 keeps every core busy; without this, the loop thread waits for a
    core behind the hashing threads (measured: tens of ms of stall on a busy
    2-core machine). Linux applies ``setpriority`` to the one thread (and to
    the threads libargon2 starts from it); POSIX would apply it to the whole
    process, so other systems are left alone.
    """
    if niceness == 0 or not sys.platform.startswith("linux"):
        return
    thread_id = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread_id)
        os.setpriority(os.PRIO_PROCESS, thread_id, min(19, current + niceness))
    except OSError as exc:  # a sandbox may forbid it; hashing still works
        logger.debug("could not lower the hashing thread priority: %s", exc)


def _new_id() -> str:
    # 128 random bits, URL-safe: unguessable token and family ids.
    return secrets.token_urlsafe(16)


def _seconds(value: timedelta, name: str) -> int:
    seconds = value.total_seconds()
    if not seconds > 0:
        raise ConfigurationError(f"{name} must be positive")
    return math.ceil(seconds)


class SecurityManager(Closeable):
    """Password hashing and JWT issuing/checking for one service.

    Passwords: Argon2id (argon2-cffi's RFC 9106 low-memory profile by default:
    64 MiB, t=3, p=4); bcrypt and other legacy hashes verify and come back
    upgraded from :meth:`verify_and_update`. The ``a``-prefixed twins run on a
    bounded thread pool (about one worker per core, created on first use,
    shut down by :meth:`close`) so hashing never blocks the event loop.

    Tokens: the algorithm is bound to each key from configuration, never read
    from a token; ``exp``, ``iat``, ``sub``, ``jti`` and ``type`` are required;
    ``iss``/``aud`` are set and checked when configured. Refresh tokens rotate
    and a reused refresh token revokes its whole family. Every decoding
    failure raises a :class:`~backend_kit.errors.TokenError` subclass with a
    message safe to show a client.

    Key configuration, one of:

    * ``secret_key=`` with ``algorithm="HS256"`` (or HS384/HS512): at least
      32/48/64 bytes;
    * ``private_key=`` (and/or ``public_key=``) with ``algorithm="EdDSA"``,
      ``"ES256"``, ``"RS256"``...: ``cryptography`` key objects or PEM text;
    * ``keys=[SigningKey(...), ...]`` for rotation: the first signs, every one
      verifies tokens whose ``kid`` header names it.

    Args:
        access_token_expires: access token lifetime (default 15 minutes).
        refresh_token_expires: refresh token lifetime (default 14 days).
        issuer: ``iss`` to set and require (default: none).
        audience: ``aud`` to set and require (default: none; then tokens
            that carry an ``aud`` are refused).
        leeway: clock skew allowed on ``exp``/``iat``/``nbf``
            (default 30 s, at most 2 minutes).
        revocation_store: where revoked ids live (default: a fresh
            :class:`MemoryRevocationStore`, right for one process only).
            The manager does not close a store it was given.
        argon2: Argon2id preset name or :class:`Argon2Parameters`
            (default ``"rfc_9106_low_memory"``); ignored with ``password_hasher``.
        password_hasher: a custom :class:`PasswordHasher` instead of the default.
        max_workers: threads for the async password API (default: cores available).
        hashing_niceness: how much lower the hashing threads' CPU priority is
            than the event loop's (Linux ``nice`` increment, default 10, 0 to
            keep it equal). On a busy machine the loop thread then gets the
            cores first, so hashing slows down instead of the loop stalling.
            Only Linux can lower one thread's priority; elsewhere it is ignored.
        max_token_length: tokens longer than this many characters are refused
            unparsed (default 8192).
        clock: current Unix time in seconds (default ``time.time``); for tests.

    Raises:
        ConfigurationError: missing, weak or inconsistent settings.
        MissingDependencyError: the ``security`` extra is not installed.
    """

    def __init__(
        self,
        *,
        secret_key: str | bytes | None = None,
        algorithm: str = "HS256",
        private_key: AllowedPrivateKeys | str | bytes | None = None,
        public_key: AllowedPublicKeys | str | bytes | None = None,
        kid: str | None = None,
        keys: Sequence[SigningKey] | None = None,
        access_token_expires: timedelta = timedelta(minutes=15),
        refresh_token_expires: timedelta = timedelta(days=14),
        issuer: str | None = None,
        audience: str | None = None,
        leeway: timedelta = timedelta(seconds=30),
        revocation_store: RevocationStore | None = None,
        argon2: Argon2Parameters | Argon2Preset = "rfc_9106_low_memory",
        password_hasher: PasswordHasher | None = None,
        max_workers: int | None = None,
        hashing_niceness: int = 10,
        max_token_length: int = 8192,
        clock: Callable[[], float] = time.time,
    ) -> None:
        single = secret_key is not None or private_key is not None or public_key is not None
        if keys is not None and (single or kid is not None):
            raise ConfigurationError(
                "give either keys=[...] or secret_key/private_key/public_key, not both"
            )
        if keys is None:
            if not single:
                raise ConfigurationError(
                    "a JWT key is required: secret_key=... (HS256) or private_key=... "
                    "(EdDSA, ES256, RS256), or set JWT_SECRET_KEY and use from_env()"
                )
            keys = [
                SigningKey(
                    algorithm=algorithm,
                    secret=secret_key,
                    private_key=private_key,
                    public_key=public_key,
                    kid=kid,
                )
            ]
        leeway_seconds = leeway.total_seconds()
        if not 0 <= leeway_seconds <= MAX_LEEWAY.total_seconds():
            raise ConfigurationError("leeway must be between 0 and 2 minutes")
        for name, value in (("issuer", issuer), ("audience", audience)):
            if value is not None and (not isinstance(cast(object, value), str) or not value):
                raise ConfigurationError(f"{name} must be a non-empty string or None")
        if max_token_length < 256:
            raise ConfigurationError("max_token_length must be at least 256")
        if max_workers is not None and max_workers < 1:
            raise ConfigurationError("max_workers must be at least 1")
        if not 0 <= hashing_niceness <= 19:
            raise ConfigurationError("hashing_niceness must be between 0 and 19")

        self._access_seconds = _seconds(access_token_expires, "access_token_expires")
        self._refresh_seconds = _seconds(refresh_token_expires, "refresh_token_expires")
        self._leeway_seconds = math.ceil(leeway_seconds)
        self._clock = clock
        self._codec = TokenCodec(
            keys,
            issuer=issuer,
            audience=audience,
            leeway=leeway_seconds,
            max_token_length=max_token_length,
            clock=clock,
        )
        # Claims every token carries besides the per-token ones, made once.
        self._fixed_claims: dict[str, str] = {}
        if issuer is not None:
            self._fixed_claims["iss"] = issuer
        if audience is not None:
            self._fixed_claims["aud"] = audience
        self.revocation_store: Final[RevocationStore] = (
            revocation_store if revocation_store is not None else MemoryRevocationStore(clock=clock)
        )
        self.password_hasher: Final[PasswordHasher] = (
            password_hasher if password_hasher is not None else Argon2PasswordHasher(argon2)
        )
        self._max_workers = max_workers or _default_workers()
        self._hashing_niceness = hashing_niceness
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------ construction
    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> SecurityManager:
        """Build from environment variables; keyword arguments override them.

        Variables: ``JWT_SECRET_KEY`` (HMAC) or ``JWT_PRIVATE_KEY`` /
        ``JWT_PUBLIC_KEY`` (PEM text; literal ``\\n`` sequences are turned into
        newlines), ``JWT_ALGORITHM`` (default HS256), ``JWT_KEY_ID``,
        ``JWT_ISSUER``, ``JWT_AUDIENCE``, ``JWT_ACCESS_TOKEN_EXPIRE_MINUTES``
        (default 15), ``JWT_REFRESH_TOKEN_EXPIRE_DAYS`` (default 14),
        ``JWT_LEEWAY_SECONDS`` (default 30), ``ARGON2_PRESET``
        (``rfc_9106_low_memory`` or ``owasp_minimum``).

        Raises:
            ConfigurationError: no key variable is set, or a number does not parse.
        """
        env = os.environ if environ is None else environ

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def pem(name: str) -> str | None:
            value = text(name)
            if value is not None and "\n" not in value:
                value = value.replace("\\n", "\n")
            return value

        def number(name: str, default: float) -> float:
            value = text(name)
            if value is None:
                return default
            try:
                return float(value)
            except ValueError:
                raise ConfigurationError(f"{name} must be a number") from None

        settings: dict[str, Any] = {
            "secret_key": text("JWT_SECRET_KEY"),
            "private_key": pem("JWT_PRIVATE_KEY"),
            "public_key": pem("JWT_PUBLIC_KEY"),
            "algorithm": text("JWT_ALGORITHM") or "HS256",
            "kid": text("JWT_KEY_ID"),
            "issuer": text("JWT_ISSUER"),
            "audience": text("JWT_AUDIENCE"),
            "access_token_expires": timedelta(
                minutes=number("JWT_ACCESS_TOKEN_EXPIRE_MINUTES", 15)
            ),
            "refresh_token_expires": timedelta(days=number("JWT_REFRESH_TOKEN_EXPIRE_DAYS", 14)),
            "leeway": timedelta(seconds=number("JWT_LEEWAY_SECONDS", 30)),
        }
        if text("ARGON2_PRESET") is not None:
            settings["argon2"] = text("ARGON2_PRESET")
        settings.update(overrides)
        if settings.get("keys") is not None:
            for name in ("secret_key", "private_key", "public_key", "kid"):
                if name not in overrides:
                    settings[name] = None
        return cls(**settings)

    def __repr__(self) -> str:
        key = self._codec.current_key
        return (
            f"SecurityManager(algorithm={key.algorithm!r}, kid={key.kid!r}, "
            f"issuer={self._codec.issuer!r}, audience={self._codec.audience!r})"
        )

    @property
    def access_token_expires(self) -> timedelta:
        """Lifetime of access tokens (for an OAuth ``expires_in``)."""
        return timedelta(seconds=self._access_seconds)

    @property
    def refresh_token_expires(self) -> timedelta:
        """Lifetime of refresh tokens."""
        return timedelta(seconds=self._refresh_seconds)

    # --------------------------------------------------------------- passwords
    def hash_password(self, password: str) -> str:
        """A new Argon2id hash of ``password``. Blocks for the hash time; see :meth:`ahash_password`.

        Raises:
            ValueError: the password is empty or absurdly long (over 1024 bytes by default).
        """
        return self.password_hasher.hash(password)

    def verify_password(self, password: str, password_hash: str) -> bool:
        """True when ``password`` matches; False (never an exception) for any unusable input."""
        return self.password_hasher.verify(password, password_hash)

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the stored hash is a legacy scheme or has other Argon2 parameters."""
        return self.password_hasher.needs_rehash(password_hash)

    def verify_and_update(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        """``(matches, new_hash)``: store ``new_hash`` when it is not None (rehash on login)."""
        return self.password_hasher.verify_and_update(password, password_hash)

    def dummy_verify(self) -> None:
        """Spend one verification's time: call it when the user does not exist."""
        self.password_hasher.dummy_verify()

    async def ahash_password(self, password: str) -> str:
        """:meth:`hash_password` on the hashing thread pool; the loop keeps running."""
        return await self._in_pool(partial(self.password_hasher.hash, password))

    async def averify_password(self, password: str, password_hash: str) -> bool:
        """:meth:`verify_password` on the hashing thread pool."""
        return await self._in_pool(partial(self.password_hasher.verify, password, password_hash))

    async def averify_and_update(
        self, password: str, password_hash: str
    ) -> tuple[bool, str | None]:
        """:meth:`verify_and_update` on the hashing thread pool."""
        return await self._in_pool(
            partial(self.password_hasher.verify_and_update, password, password_hash)
        )

    async def adummy_verify(self) -> None:
        """:meth:`dummy_verify` on the hashing thread pool."""
        await self._in_pool(self.password_hasher.dummy_verify)

    async def _in_pool(self, call: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), call)

    def _executor(self) -> ThreadPoolExecutor:
        pool = self._pool
        if pool is None or self._closed:
            with self._pool_lock:
                if self._closed:
                    raise RuntimeError("this SecurityManager is closed")
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        max_workers=self._max_workers,
                        thread_name_prefix="backend-kit-hash",
                        initializer=_lower_thread_priority,
                        initargs=(self._hashing_niceness,),
                    )
                pool = self._pool
        return pool

    # ------------------------------------------------------------------ tokens
    def create_access_token(
        self, data: Mapping[str, Any], expires_delta: timedelta | None = None
    ) -> str:
        """Sign an access token carrying ``data`` (``sub`` required) plus exp/iat/jti/type.

        Args:
            data: the claims; ``sub`` must be a non-empty string. The claims
                the manager sets (exp, iat, nbf, jti, type, iss, aud, fam) are refused.
            expires_delta: lifetime instead of ``access_token_expires``; positive.

        Raises:
            ValueError: no ``sub``, a reserved claim, or a non-positive lifetime.
            TypeError: a claim value is not JSON-serialisable.
        """
        lifetime = (
            self._access_seconds
            if expires_delta is None
            else _lifetime_seconds(expires_delta, "expires_delta")
        )
        return self._issue(_checked_claims(data), "access", lifetime, None)

    def create_refresh_token(self, subject: str) -> str:
        """Sign a refresh token for ``subject`` that starts a new session (token family)."""
        return self._issue(
            {"sub": _checked_subject(subject)}, "refresh", self._refresh_seconds, None
        )

    def create_token_pair(self, data: Mapping[str, Any]) -> TokenPair:
        """An access token with ``data`` and a refresh token, both in a new family.

        Revoking the family (reuse detection, or ``revoke(token, family=True)``)
        rejects both, and every token later refreshed from them.
        """
        claims = _checked_claims(data)
        return self._pair(claims, _new_id())

    def decode_access_token(self, token: str) -> dict[str, Any]:
        """Check an access token and return its claims.

        Raises:
            ExpiredTokenError: it has expired.
            RevokedTokenError: its id or its family was revoked.
            InvalidTokenError: anything else (forged, malformed, wrong type,
                issuer, audience, algorithm or key), whatever the input.
            RevocationStoreError: the revocation store failed (not the token's fault).
        """
        claims = self._codec.decode(token, "access")
        if self.revocation_store.is_revoked(*_revocation_keys(claims)):
            raise RevokedTokenError(_REVOKED)
        return claims

    async def adecode_access_token(self, token: str) -> dict[str, Any]:
        """:meth:`decode_access_token` with the store's async API (no blocking I/O)."""
        claims = self._codec.decode(token, "access")
        if await self.revocation_store.ais_revoked(*_revocation_keys(claims)):
            raise RevokedTokenError(_REVOKED)
        return claims

    def refresh(
        self, refresh_token: str, *, extra_claims: Mapping[str, Any] | None = None
    ) -> TokenPair:
        """Exchange a refresh token for a new access token and a new refresh token.

        The refresh token is single-use. Presenting one a second time means it
        was copied: its whole family (every token issued from the same login)
        is revoked and :class:`RevokedTokenError` is raised.

        Args:
            refresh_token: the refresh token to rotate.
            extra_claims: claims for the new access token besides ``sub``
                (for example current roles, looked up by the caller).

        Raises:
            TokenError: as :meth:`decode_access_token`, and RevokedTokenError on reuse.
            RevocationStoreError: the revocation store failed.
        """
        claims = self._codec.decode(refresh_token, "refresh")
        store = self.revocation_store
        if store.is_revoked(*_revocation_keys(claims)):
            raise RevokedTokenError(_REVOKED)
        family = claims.get("fam") or claims["jti"]
        if not store.mark_used(f"used:{claims['jti']}", expires_at=self._token_end(claims)):
            store.revoke(f"fam:{family}", expires_at=self._family_end())
            _log_reuse(claims)
            raise RevokedTokenError(_REUSED)
        return self._pair(_refreshed_claims(claims, extra_claims), family)

    async def arefresh(
        self, refresh_token: str, *, extra_claims: Mapping[str, Any] | None = None
    ) -> TokenPair:
        """:meth:`refresh` with the store's async API."""
        claims = self._codec.decode(refresh_token, "refresh")
        store = self.revocation_store
        if await store.ais_revoked(*_revocation_keys(claims)):
            raise RevokedTokenError(_REVOKED)
        family = claims.get("fam") or claims["jti"]
        if not await store.amark_used(f"used:{claims['jti']}", expires_at=self._token_end(claims)):
            await store.arevoke(f"fam:{family}", expires_at=self._family_end())
            _log_reuse(claims)
            raise RevokedTokenError(_REUSED)
        return self._pair(_refreshed_claims(claims, extra_claims), family)

    def revoke(self, token_or_jti: str, *, family: bool = False) -> None:
        """Revoke a token (access or refresh) until it expires.

        Args:
            token_or_jti: the token itself (its signature is checked, so nobody
                can revoke someone else's id by forging a token), or a bare
                ``jti`` (kept for the longest token lifetime).
            family: also revoke every token of the token's family (log out
                this session everywhere). Needs the token, not a bare jti.

        Raises:
            TokenError: the token is forged or malformed (an expired token is
                already unusable and is silently accepted).
            ValueError: ``family=True`` with a bare jti, or an empty jti.
        """
        for key, expires_at in self._revocations(token_or_jti, family=family):
            self.revocation_store.revoke(key, expires_at=expires_at)

    async def arevoke(self, token_or_jti: str, *, family: bool = False) -> None:
        """:meth:`revoke` with the store's async API."""
        for key, expires_at in self._revocations(token_or_jti, family=family):
            await self.revocation_store.arevoke(key, expires_at=expires_at)

    # --------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Shut the hashing thread pool down (waits for running hashes). Idempotent.

        Token methods keep working; the async password methods raise
        ``RuntimeError`` afterwards. A store passed in is not closed.
        """
        with self._pool_lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop while hashes finish."""
        await asyncio.to_thread(self.close)

    # ----------------------------------------------------------------- helpers
    def _issue(
        self, claims: dict[str, Any], token_type: str, lifetime: int, family: str | None
    ) -> str:
        now = int(self._clock())
        claims["iat"] = now
        claims["exp"] = now + lifetime
        claims["jti"] = _new_id()
        claims["type"] = token_type
        if family is not None:
            claims["fam"] = family
        if self._fixed_claims:
            claims.update(self._fixed_claims)
        return self._codec.encode(claims)

    def _pair(self, access_claims: dict[str, Any], family: str) -> TokenPair:
        subject = access_claims["sub"]
        return TokenPair(
            self._issue(access_claims, "access", self._access_seconds, family),
            self._issue({"sub": subject}, "refresh", self._refresh_seconds, family),
        )

    def _token_end(self, claims: Mapping[str, Any]) -> int:
        """When a token stops being acceptable: its exp plus the leeway."""
        expires: float = claims["exp"]
        return math.ceil(expires) + self._leeway_seconds

    def _family_end(self) -> int:
        """When every token of a family refreshed until now has expired."""
        return int(self._clock()) + self._refresh_seconds + self._leeway_seconds

    def _revocations(self, token_or_jti: str, *, family: bool) -> list[tuple[str, int]]:
        if not isinstance(cast(object, token_or_jti), str) or not token_or_jti:
            raise ValueError("give a token or a jti to revoke")
        if token_or_jti.count(".") != 2:
            if family:
                raise ValueError("revoking a family needs the token, not a bare jti")
            longest = max(self._access_seconds, self._refresh_seconds)
            end = int(self._clock()) + longest + self._leeway_seconds
            return [(f"jti:{token_or_jti}", end)]
        try:
            claims = self._codec.decode(token_or_jti, None)
        except ExpiredTokenError:
            return []  # already refused everywhere; nothing to remember
        revocations = [(f"jti:{claims['jti']}", self._token_end(claims))]
        if family and claims.get("fam") is not None:
            revocations.append((f"fam:{claims['fam']}", self._family_end()))
        return revocations


def _revocation_keys(claims: Mapping[str, Any]) -> tuple[str, ...]:
    family = claims.get("fam")
    if family is None:
        return (f"jti:{claims['jti']}",)
    return (f"jti:{claims['jti']}", f"fam:{family}")


def _checked_subject(subject: object) -> str:
    if not isinstance(subject, str) or not subject:
        raise ValueError("the subject ('sub') must be a non-empty string")
    return subject


def _checked_claims(data: Mapping[str, Any]) -> dict[str, Any]:
    claims = dict(data)
    _checked_subject(claims.get("sub"))
    reserved = RESERVED_CLAIMS.intersection(claims)
    if reserved:
        raise ValueError(
            f"claims {sorted(reserved)} are set by SecurityManager and cannot be passed in data"
        )
    return claims


def _refreshed_claims(
    refresh_claims: Mapping[str, Any], extra_claims: Mapping[str, Any] | None
) -> dict[str, Any]:
    claims = dict(extra_claims or {})
    claims["sub"] = refresh_claims["sub"]
    return _checked_claims(claims)


def _lifetime_seconds(value: timedelta, name: str) -> int:
    try:
        return _seconds(value, name)
    except ConfigurationError as exc:
        raise ValueError(str(exc)) from None


def _log_reuse(claims: Mapping[str, Any]) -> None:
    # A security event: the refresh token was copied (or a client retried a
    # refresh). The family id and subject identify the session, not a secret.
    logger.warning(
        "refresh token reuse detected: revoked token family %s of subject %r",
        claims.get("fam") or claims["jti"],
        claims["sub"],
    )
