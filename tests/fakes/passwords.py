"""A real, cheap password service for tests of code that needs one (``PasswordService``).

Honest hashing on argon2-cffi and bcrypt, with Argon2id parameters far below
production (8 MiB, t=1, p=1) so a test can hash fifty passwords in well under a
second. bcrypt hashes are legacy: verify-only, upgraded to Argon2id on a match,
the behaviour ``backend_kit.security.SecurityManager`` has. It counts calls so
tests can prove the dummy verify ran.
"""

from __future__ import annotations

import asyncio

import bcrypt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["CheapPasswords"]

_BCRYPT_MAX_BYTES = 72


class CheapPasswords:
    """Implements ``backend_kit.users.PasswordService`` with test-speed Argon2id."""

    def __init__(self, *, time_cost: int = 1) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=8 * 1024, parallelism=1)
        self._dummy_hash = self._hasher.hash("not a real password")
        self.hash_calls = 0
        self.verify_calls = 0
        self.dummy_verifies = 0

    def _verify_and_update(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        if password_hash.startswith(("$2a$", "$2b$", "$2y$")):
            secret = password.encode()
            if len(secret) > _BCRYPT_MAX_BYTES:  # bcrypt 5 raises here; a login must not
                return False, None
            try:
                matches = bcrypt.checkpw(secret, password_hash.encode())
            except ValueError:  # malformed hash
                return False, None
            return matches, (self._hasher.hash(password) if matches else None)
        try:
            self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False, None
        if self._hasher.check_needs_rehash(password_hash):
            return True, self._hasher.hash(password)
        return True, None

    async def ahash_password(self, password: str) -> str:
        self.hash_calls += 1
        return await asyncio.to_thread(self._hasher.hash, password)

    async def averify_and_update(
        self, password: str, password_hash: str
    ) -> tuple[bool, str | None]:
        self.verify_calls += 1
        return await asyncio.to_thread(self._verify_and_update, password, password_hash)

    async def adummy_verify(self) -> None:
        self.dummy_verifies += 1
        await asyncio.to_thread(self._verify_and_update, "wrong password", self._dummy_hash)
