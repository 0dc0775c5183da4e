"""Fixtures for the security tests: a controllable clock, keys, cheap managers.

Password hashing uses the ``owasp_minimum`` preset (about 20 ms a hash) unless
a test is about the cost itself, so the suite stays fast on a shared machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from backend_kit.security import SecurityManager

SECRET = "test-secret-0123456789abcdef-0123456789abcdef"  # 45 bytes: enough for HS256
START = 1_800_000_000.0  # a fixed "now" (2027-01-15), so tests never race the wall clock


@dataclass
class FakeClock:
    """A clock the test moves by hand (Unix seconds)."""

    now: float = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def manager(clock: FakeClock) -> Iterator[SecurityManager]:
    """HS256, the OWASP-minimum Argon2id preset, a fake clock, a memory revocation store."""
    with SecurityManager(secret_key=SECRET, argon2="owasp_minimum", clock=clock) as security:
        yield security


@pytest.fixture(scope="session")
def ed25519_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
def ec_p256_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
