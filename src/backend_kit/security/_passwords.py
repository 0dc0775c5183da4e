"""Password hashing: Argon2id by default, legacy schemes verify-only, never a 500 on bad input.

Built on libpass's ``CryptContext`` (the maintained passlib fork: same
``passlib`` import), which identifies a stored hash's scheme, verifies it, and
says when it should be replaced. libpass, argon2-cffi and bcrypt are imported
when a hasher is created, never when this module is imported.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Final, Literal, Protocol, cast, runtime_checkable

from backend_kit._optional import import_optional
from backend_kit.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "DEFAULT_LEGACY_SCHEMES",
    "Argon2Parameters",
    "Argon2PasswordHasher",
    "Argon2Preset",
    "PasswordHasher",
]

logger = logging.getLogger("backend_kit.security")

Argon2Preset = Literal["rfc_9106_low_memory", "owasp_minimum"]

# OWASP Password Storage Cheat Sheet, "Argon2id": "use Argon2id with a minimum
# configuration of 19 MiB of memory, an iteration count of 2, and 1 degree of
# parallelism", followed by equally strong trade-offs of memory for iterations.
# Each row is (memory in KiB, iterations); parameters are accepted when they are
# at least as strong as one row in both columns.
OWASP_ARGON2ID_MINIMUMS: Final[tuple[tuple[int, int], ...]] = (
    (47_104, 1),  # 46 MiB, t=1
    (19_456, 2),  # 19 MiB, t=2
    (12_288, 3),  # 12 MiB, t=3
    (9_216, 4),  # 9 MiB, t=4
    (7_168, 5),  # 7 MiB, t=5
)

# bcrypt only ever reads the first 72 bytes of a password. bcrypt 5 raises
# ValueError beyond that, and libpass passes the error on (pinned in
# tests/unit/security/test_passwords.py); we answer False instead.
BCRYPT_MAX_PASSWORD_BYTES: Final = 72

# libpass refuses passwords above 4096 bytes (PASSLIB_MAX_PASSWORD_SIZE).
_LIBPASS_MAX_PASSWORD_BYTES: Final = 4096

#: Schemes accepted for verification only: a successful login on one of them
#: returns a fresh Argon2id hash from ``verify_and_update``. Insecure schemes
#: (md5_crypt, des_crypt, plaintext) are deliberately absent; pass
#: ``legacy_schemes=`` to accept more.
DEFAULT_LEGACY_SCHEMES: Final[tuple[str, ...]] = (
    "bcrypt",
    "bcrypt_sha256",
    "pbkdf2_sha256",
    "pbkdf2_sha512",
    "scrypt",
    "sha256_crypt",
    "sha512_crypt",
)


@dataclass(frozen=True, slots=True)
class Argon2Parameters:
    """Argon2id cost parameters, checked against the OWASP minimum on creation.

    Attributes:
        memory_cost: memory per hash in KiB (65536 = 64 MiB).
        time_cost: number of passes over the memory (iterations).
        parallelism: lanes (threads) per hash.
        hash_len: length of the derived key in bytes (RFC 9106 recommends 32).
        salt_len: length of the random salt in bytes (RFC 9106 recommends 16).

    Raises:
        ConfigurationError: the parameters are weaker than every OWASP
            Argon2id row (for example 19 MiB with one iteration), or the
            salt / hash is shorter than 16 bytes.
    """

    memory_cost: int
    time_cost: int
    parallelism: int
    hash_len: int = 32
    salt_len: int = 16

    #: RFC 9106 §4 second recommended option, argon2-cffi's default profile:
    #: 64 MiB, t=3, p=4. The default; about 125 ms a hash on a 2-core machine.
    RFC_9106_LOW_MEMORY: ClassVar[Argon2Parameters]
    #: The OWASP Password Storage Cheat Sheet minimum: 19 MiB, t=2, p=1
    #: (about 20 ms a hash). For small machines and for tests.
    OWASP_MINIMUM: ClassVar[Argon2Parameters]

    def __post_init__(self) -> None:
        if self.parallelism < 1:
            raise ConfigurationError("Argon2 parallelism must be at least 1")
        if self.salt_len < 16 or self.hash_len < 16:
            raise ConfigurationError("Argon2 salt_len and hash_len must be at least 16 bytes")
        if self.memory_cost < 8 * self.parallelism:
            raise ConfigurationError("Argon2 memory_cost must be at least 8 KiB per lane")
        strong_enough = any(
            self.memory_cost >= memory and self.time_cost >= iterations
            for memory, iterations in OWASP_ARGON2ID_MINIMUMS
        )
        if not strong_enough:
            raise ConfigurationError(
                f"Argon2id memory_cost={self.memory_cost} KiB, time_cost={self.time_cost} is "
                "below the OWASP Password Storage Cheat Sheet minimum "
                "(for example 19456 KiB with time_cost=2, or 47104 KiB with time_cost=1)"
            )

    @classmethod
    def preset(cls, name: Argon2Preset) -> Argon2Parameters:
        """The named preset: ``"rfc_9106_low_memory"`` or ``"owasp_minimum"``.

        Raises:
            ConfigurationError: ``name`` is not a preset.
        """
        presets = {
            "rfc_9106_low_memory": cls.RFC_9106_LOW_MEMORY,
            "owasp_minimum": cls.OWASP_MINIMUM,
        }
        try:
            return presets[name]
        except KeyError:
            raise ConfigurationError(
                f"unknown Argon2 preset {name!r}; choose one of {sorted(presets)}"
            ) from None


Argon2Parameters.RFC_9106_LOW_MEMORY = Argon2Parameters(
    memory_cost=65_536, time_cost=3, parallelism=4
)
Argon2Parameters.OWASP_MINIMUM = Argon2Parameters(memory_cost=19_456, time_cost=2, parallelism=1)


@runtime_checkable
class PasswordHasher(Protocol):
    """Hashes and verifies passwords; what :class:`SecurityManager` delegates to.

    Implementations are synchronous and thread-safe: the manager runs them on
    its thread pool for the async API. ``verify`` and ``verify_and_update``
    never raise on bad input (garbage hash, unknown scheme, over-long
    password): they answer ``False``.
    """

    def hash(self, password: str) -> str:
        """A new salted hash of ``password``. Raises ``ValueError`` on an unacceptable password."""
        ...

    def verify(self, password: str, password_hash: str) -> bool:
        """True when ``password`` matches ``password_hash``."""
        ...

    def needs_rehash(self, password_hash: str) -> bool:
        """True when ``password_hash`` uses a deprecated scheme or other parameters."""
        ...

    def verify_and_update(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        """``(matches, new_hash)``; ``new_hash`` is set when the stored hash should be replaced."""
        ...

    def dummy_verify(self) -> None:
        """Spend the time of one verification, for a user that does not exist."""
        ...


class Argon2PasswordHasher:
    """Argon2id for new hashes; bcrypt and other legacy schemes verify-only.

    Args:
        parameters: Argon2id cost, a preset name or :class:`Argon2Parameters`.
            Default ``"rfc_9106_low_memory"`` (64 MiB, t=3, p=4).
        legacy_schemes: libpass scheme names accepted for verification only
            (default :data:`DEFAULT_LEGACY_SCHEMES`). A hash in one of them,
            or an Argon2 hash with other parameters, "needs rehash".
        max_password_bytes: longest password accepted, in UTF-8 bytes
            (default 1024, at most 4096). Longer ones are refused on hashing and
            never match on verification, so a megabyte "password" costs nothing.

    Raises:
        MissingDependencyError: the ``security`` extra is not installed.
        ConfigurationError: a parameter is out of range or a scheme is unknown.
    """

    def __init__(
        self,
        parameters: Argon2Parameters | Argon2Preset = "rfc_9106_low_memory",
        *,
        legacy_schemes: Sequence[str] = DEFAULT_LEGACY_SCHEMES,
        max_password_bytes: int = 1024,
    ) -> None:
        import_optional("passlib", extra="security")
        import_optional("argon2", extra="security")
        import_optional("bcrypt", extra="security")
        from passlib.context import CryptContext

        if isinstance(parameters, str):
            parameters = Argon2Parameters.preset(parameters)
        if not BCRYPT_MAX_PASSWORD_BYTES <= max_password_bytes <= _LIBPASS_MAX_PASSWORD_BYTES:
            raise ConfigurationError(
                f"max_password_bytes must be between {BCRYPT_MAX_PASSWORD_BYTES} and "
                f"{_LIBPASS_MAX_PASSWORD_BYTES}"
            )
        legacy = [scheme for scheme in dict.fromkeys(legacy_schemes) if scheme != "argon2"]
        self.parameters: Final = parameters
        self.max_password_bytes: Final = max_password_bytes
        try:
            self._context = CryptContext(
                schemes=["argon2", *legacy],
                default="argon2",
                deprecated=legacy or None,
                argon2__type="ID",
                argon2__memory_cost=parameters.memory_cost,
                argon2__rounds=parameters.time_cost,
                argon2__parallelism=parameters.parallelism,
                argon2__digest_size=parameters.hash_len,
                argon2__salt_size=parameters.salt_len,
            )
        except KeyError as exc:  # libpass: unknown scheme name
            raise ConfigurationError(f"unknown password hash scheme: {exc}") from None
        self._dummy_hash: str | None = None
        self._dummy_lock = threading.Lock()

    def hash(self, password: str) -> str:
        """A new Argon2id hash of ``password`` (PHC string format, salt included).

        Raises:
            ValueError: ``password`` is empty, longer than ``max_password_bytes``
                or not a ``str``.
        """
        self._check_password(password)
        new_hash: str = self._context.hash(password)
        return new_hash

    def verify(self, password: str, password_hash: str) -> bool:
        """True when ``password`` matches; False for a mismatch or any unusable input.

        Unusable input never raises: a garbage or unknown-format hash, an empty
        password, a password over ``max_password_bytes``, or one longer than 72
        bytes against a bcrypt hash (bcrypt would only read the first 72).
        """
        scheme = self._scheme_to_verify(password, password_hash)
        if scheme is None:
            return False
        try:
            matches: bool = self._context.verify(password, password_hash)
        except (ValueError, TypeError) as exc:
            # A malformed hash of a known scheme (truncated row, bad salt) or a
            # password the scheme cannot take (NUL byte for bcrypt).
            logger.warning("password hash could not be verified (%s)", type(exc).__name__)
            return False
        return matches

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash is a legacy scheme, Argon2 with other parameters, or unrecognised."""
        try:
            stale: bool = self._context.needs_update(password_hash)
        except (ValueError, TypeError):
            # Unrecognised or malformed: it cannot be verified, so it must be replaced.
            return True
        return stale

    def verify_and_update(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        """Verify, and when the hash is stale return a new Argon2id hash to store.

        Returns:
            ``(False, None)`` on a mismatch (or unusable input, as in :meth:`verify`);
            ``(True, None)`` when the stored hash is current;
            ``(True, new_hash)`` when it should be replaced by ``new_hash``.
        """
        scheme = self._scheme_to_verify(password, password_hash)
        if scheme is None:
            return False, None
        try:
            result: tuple[bool, str | None] = self._context.verify_and_update(
                password, password_hash
            )
        except (ValueError, TypeError) as exc:
            logger.warning("password hash could not be verified (%s)", type(exc).__name__)
            return False, None
        return result

    def dummy_verify(self) -> None:
        """Verify against a throwaway hash, spending the time a real login would.

        Call it when the user does not exist, so the response time does not
        tell an attacker which accounts exist. The throwaway hash is made on
        first use (one hash) and kept.
        """
        dummy_hash = self._dummy_hash
        if dummy_hash is None:
            with self._dummy_lock:
                if self._dummy_hash is None:
                    self._dummy_hash = self._context.hash("backend-kit dummy password")
                dummy_hash = self._dummy_hash
        self._context.verify("not the dummy password", dummy_hash)

    # ----------------------------------------------------------------- helpers
    def _check_password(self, password: str) -> None:
        if not isinstance(password, str):
            raise TypeError("password must be a str")
        if not password:
            raise ValueError("password must not be empty")
        size = _utf8_size(password)
        if size is None:
            raise ValueError("password must be valid Unicode text (it has a lone surrogate)")
        if size > self.max_password_bytes:
            raise ValueError(f"password must be at most {self.max_password_bytes} bytes long")

    def _scheme_to_verify(self, password: str, password_hash: str) -> str | None:
        """The scheme that should verify this pair, or None when the answer is already False."""
        # Typed as str, but a NULL column or a bytes value must still answer False.
        if not isinstance(cast(object, password), str) or not password:
            return None
        if not isinstance(cast(object, password_hash), str):
            return None
        if len(password) > self.max_password_bytes:
            return None  # every character is at least one byte: too long, without encoding it
        size = _utf8_size(password)
        if size is None or size > self.max_password_bytes:
            return None
        try:
            scheme: str | None = self._context.identify(password_hash)
        except (ValueError, TypeError):
            scheme = None
        if scheme is None:
            logger.warning("password hash has an unrecognised format; verification fails")
            return None
        if scheme == "bcrypt" and (size > BCRYPT_MAX_PASSWORD_BYTES or "\x00" in password):
            # bcrypt cannot take these (libpass raises); the password is the
            # client's input, so answer False quietly rather than log it.
            return None
        return scheme


def _utf8_size(password: str) -> int | None:
    """Length of ``password`` in UTF-8 bytes; None when it cannot be encoded (lone surrogate)."""
    try:
        return len(password.encode("utf-8"))
    except UnicodeEncodeError:
        return None
