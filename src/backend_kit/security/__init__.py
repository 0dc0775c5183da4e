"""Passwords and tokens: Argon2id hashing with rehash-on-login, and JWTs that refuse known attacks.

Start with :class:`SecurityManager`::

    security = SecurityManager(secret_key=os.environ["JWT_SECRET_KEY"])
    password_hash = await security.ahash_password("correct horse battery staple")
    token = security.create_access_token({"sub": "user-42"})
    claims = security.decode_access_token(token)

Importing this package imports none of PyJWT, libpass, argon2-cffi, bcrypt or
cryptography (the ``security`` extra): they are loaded when a
:class:`SecurityManager` or :class:`Argon2PasswordHasher` is created. The
Redis revocation store lives in :mod:`backend_kit.security.redis`.
"""

from __future__ import annotations

from backend_kit.errors import (
    ExpiredTokenError,
    InvalidTokenError,
    RevocationStoreError,
    RevokedTokenError,
    SecurityError,
    TokenError,
)
from backend_kit.security._keys import SigningKey
from backend_kit.security._manager import SecurityManager, TokenPair
from backend_kit.security._passwords import (
    Argon2Parameters,
    Argon2PasswordHasher,
    Argon2Preset,
    PasswordHasher,
)
from backend_kit.security._revocation import MemoryRevocationStore, RevocationStore

__all__ = [
    "Argon2Parameters",
    "Argon2PasswordHasher",
    "Argon2Preset",
    "ExpiredTokenError",
    "InvalidTokenError",
    "MemoryRevocationStore",
    "PasswordHasher",
    "RevocationStore",
    "RevocationStoreError",
    "RevokedTokenError",
    "SecurityError",
    "SecurityManager",
    "SigningKey",
    "TokenError",
    "TokenPair",
]
