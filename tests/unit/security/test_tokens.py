"""Issuing and checking tokens: claims, lifetimes, keys, rotation, configuration, from_env."""

from __future__ import annotations

import builtins
import subprocess
import sys
import textwrap
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from backend_kit.errors import ConfigurationError, ExpiredTokenError, InvalidTokenError
from backend_kit.security import SecurityManager, SigningKey
from tests.unit.security.conftest import SECRET, START, FakeClock


def _pem_private(key: Any) -> str:
    pem: bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem.decode()


def _pem_public(key: Any) -> str:
    pem: bytes = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode()


# ------------------------------------------------------------ access tokens
def test_access_token_round_trip_carries_required_claims(
    manager: SecurityManager, clock: FakeClock
) -> None:
    token = manager.create_access_token({"sub": "user-42", "roles": ["admin"]})
    claims = manager.decode_access_token(token)
    assert claims["sub"] == "user-42"
    assert claims["roles"] == ["admin"]
    assert claims["type"] == "access"
    assert claims["iat"] == int(START)
    assert claims["exp"] == int(START) + 15 * 60  # 15 minutes by default
    assert isinstance(claims["jti"], str)
    assert len(claims["jti"]) >= 22  # 128 random bits
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "HS256", "typ": "JWT"}


def test_tokens_are_readable_by_plain_pyjwt(manager: SecurityManager) -> None:
    """Interoperability: another service can check our tokens with PyJWT alone."""
    token = manager.create_access_token({"sub": "user-42"})
    claims = jwt.decode(
        token,
        SECRET,
        algorithms=["HS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["sub"] == "user-42"


def test_every_token_gets_its_own_jti(manager: SecurityManager) -> None:
    jtis = {manager.decode_access_token(manager.create_access_token({"sub": "u"}))["jti"]}
    for _ in range(50):
        jtis.add(manager.decode_access_token(manager.create_access_token({"sub": "u"}))["jti"])
    assert len(jtis) == 51


def test_expires_delta_overrides_the_default(manager: SecurityManager, clock: FakeClock) -> None:
    token = manager.create_access_token({"sub": "u"}, expires_delta=timedelta(minutes=1))
    assert manager.decode_access_token(token)["exp"] == int(START) + 60
    clock.advance(60 + 30)  # exp + leeway: refused from here on
    with pytest.raises(ExpiredTokenError, match="expired"):
        manager.decode_access_token(token)


def test_leeway_is_applied(manager: SecurityManager, clock: FakeClock) -> None:
    token = manager.create_access_token({"sub": "u"})
    clock.advance(15 * 60 + 29)  # 29 s past exp, within the 30 s leeway
    assert manager.decode_access_token(token)["sub"] == "u"
    clock.advance(1)
    with pytest.raises(ExpiredTokenError):
        manager.decode_access_token(token)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "subject"),
        ({"sub": ""}, "subject"),
        ({"sub": 42}, "subject"),
        ({"sub": "u", "exp": 1}, "reserved|set by SecurityManager"),
        ({"sub": "u", "type": "refresh"}, "set by SecurityManager"),
        ({"sub": "u", "jti": "mine"}, "set by SecurityManager"),
        ({"sub": "u", "aud": "x"}, "set by SecurityManager"),
    ],
)
def test_bad_claims_are_refused_on_creation(
    manager: SecurityManager, data: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        manager.create_access_token(data)


def test_non_json_claims_and_bad_lifetimes_are_refused(manager: SecurityManager) -> None:
    with pytest.raises(TypeError):
        manager.create_access_token({"sub": "u", "when": object()})
    with pytest.raises(ValueError, match=r"NaN|JSON|Out of range"):
        manager.create_access_token({"sub": "u", "score": float("nan")})
    with pytest.raises(ValueError, match="positive"):
        manager.create_access_token({"sub": "u"}, expires_delta=timedelta(0))
    with pytest.raises(ValueError, match="positive"):
        manager.create_access_token({"sub": "u"}, expires_delta=timedelta(seconds=-5))


def test_issuer_and_audience_are_set_and_required(clock: FakeClock) -> None:
    security = SecurityManager(
        secret_key=SECRET, issuer="https://auth.example", audience="orders-api", clock=clock
    )
    claims = security.decode_access_token(security.create_access_token({"sub": "u"}))
    assert claims["iss"] == "https://auth.example"
    assert claims["aud"] == "orders-api"


# ----------------------------------------------------- asymmetric and keys
def test_eddsa_with_key_objects(ed25519_key: ed25519.Ed25519PrivateKey) -> None:
    security = SecurityManager(private_key=ed25519_key, algorithm="EdDSA")
    token = security.create_access_token({"sub": "u"})
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    assert security.decode_access_token(token)["sub"] == "u"
    # A service holding only the public key verifies tokens but cannot make them.
    verifier = SecurityManager(public_key=ed25519_key.public_key(), algorithm="EdDSA")
    assert verifier.decode_access_token(token)["sub"] == "u"
    with pytest.raises(ConfigurationError, match="cannot sign"):
        verifier.create_access_token({"sub": "u"})


def test_es256_and_rs256_with_pem(
    ec_p256_key: ec.EllipticCurvePrivateKey, rsa_key: rsa.RSAPrivateKey
) -> None:
    for key, algorithm in ((ec_p256_key, "ES256"), (rsa_key, "RS256"), (rsa_key, "PS256")):
        security = SecurityManager(
            private_key=_pem_private(key), public_key=_pem_public(key), algorithm=algorithm
        )
        token = security.create_access_token({"sub": "u"})
        assert security.decode_access_token(token)["sub"] == "u"
        assert jwt.decode(token, _pem_public(key), algorithms=[algorithm])["sub"] == "u"


def test_verify_only_manager_accepts_pem_public_key(
    ed25519_key: ed25519.Ed25519PrivateKey,
) -> None:
    signer = SecurityManager(private_key=ed25519_key, algorithm="EdDSA", kid="e1")
    verifier = SecurityManager(
        keys=[SigningKey("EdDSA", public_key=_pem_public(ed25519_key), kid="e1")]
    )
    assert verifier.decode_access_token(signer.create_access_token({"sub": "u"}))["sub"] == "u"
    with pytest.raises(ConfigurationError, match="cannot sign"):
        verifier.create_token_pair({"sub": "u"})


def test_key_rotation_signs_with_current_and_verifies_with_any(clock: FakeClock) -> None:
    old_secret, new_secret = "o" * 40, "n" * 40
    before = SecurityManager(keys=[SigningKey("HS256", secret=old_secret, kid="2025")], clock=clock)
    old_token = before.create_access_token({"sub": "u"})
    after = SecurityManager(
        keys=[
            SigningKey("HS256", secret=new_secret, kid="2026"),
            SigningKey("HS256", secret=old_secret, kid="2025"),
        ],
        clock=clock,
    )
    new_token = after.create_access_token({"sub": "u"})
    assert jwt.get_unverified_header(new_token)["kid"] == "2026"
    assert after.decode_access_token(old_token)["sub"] == "u"
    assert after.decode_access_token(new_token)["sub"] == "u"
    # Once the old key is dropped, its tokens are refused.
    only_new = SecurityManager(
        keys=[SigningKey("HS256", secret=new_secret, kid="2026")], clock=clock
    )
    with pytest.raises(InvalidTokenError, match="unknown key"):
        only_new.decode_access_token(old_token)


def test_rotation_across_algorithms(
    clock: FakeClock, ed25519_key: ed25519.Ed25519PrivateKey
) -> None:
    hmac_manager = SecurityManager(keys=[SigningKey("HS256", secret=SECRET, kid="h1")], clock=clock)
    hmac_token = hmac_manager.create_access_token({"sub": "u"})
    mixed = SecurityManager(
        keys=[
            SigningKey("EdDSA", private_key=ed25519_key, kid="e1"),
            SigningKey("HS256", secret=SECRET, kid="h1"),
        ],
        clock=clock,
    )
    assert mixed.decode_access_token(hmac_token)["sub"] == "u"
    assert mixed.decode_access_token(mixed.create_access_token({"sub": "v"}))["sub"] == "v"


def test_one_key_without_kid_serves_tokens_without_kid(clock: FakeClock) -> None:
    legacy = SecurityManager(secret_key=SECRET, clock=clock)
    legacy_token = legacy.create_access_token({"sub": "u"})
    rotated = SecurityManager(
        keys=[SigningKey("HS256", secret="z" * 40, kid="new"), SigningKey("HS256", secret=SECRET)],
        clock=clock,
    )
    assert rotated.decode_access_token(legacy_token)["sub"] == "u"


# ----------------------------------------------------------- configuration
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "JWT key is required"),
        ({"secret_key": "short"}, "at least 32 bytes"),
        ({"secret_key": "x" * 31}, "RFC 7518"),
        ({"secret_key": "x" * 40, "algorithm": "HS384"}, "at least 48 bytes"),
        ({"secret_key": "x" * 60, "algorithm": "HS512"}, "at least 64 bytes"),
        ({"secret_key": "x" * 40, "algorithm": "none"}, "not supported"),
        ({"secret_key": "x" * 40, "algorithm": "hs256"}, "not supported"),
        ({"secret_key": "x" * 40, "leeway": timedelta(minutes=3)}, "leeway"),
        ({"secret_key": "x" * 40, "leeway": timedelta(seconds=-1)}, "leeway"),
        ({"secret_key": "x" * 40, "access_token_expires": timedelta(0)}, "positive"),
        ({"secret_key": "x" * 40, "refresh_token_expires": timedelta(-1)}, "positive"),
        ({"secret_key": "x" * 40, "issuer": ""}, "issuer"),
        ({"secret_key": "x" * 40, "max_workers": 0}, "max_workers"),
        ({"secret_key": "x" * 40, "max_token_length": 10}, "max_token_length"),
        (
            {"secret_key": "x" * 40, "keys": [SigningKey("HS256", secret="y" * 40)]},
            "not both",
        ),
        (
            {"keys": [SigningKey("HS256", secret="y" * 40), SigningKey("HS256", secret="z" * 40)]},
            "at most one",
        ),
        (
            {
                "keys": [
                    SigningKey("HS256", secret="y" * 40, kid="a"),
                    SigningKey("HS256", secret="z" * 40, kid="a"),
                ]
            },
            "unique",
        ),
        ({"keys": []}, "at least one"),
        ({"keys": [SigningKey("HS256", secret="y" * 40, kid="")]}, "kid"),
    ],
)
def test_invalid_configuration_is_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SecurityManager(**kwargs)


def test_key_material_of_the_wrong_kind_is_refused(
    ed25519_key: ed25519.Ed25519PrivateKey,
    ec_p256_key: ec.EllipticCurvePrivateKey,
    rsa_key: rsa.RSAPrivateKey,
) -> None:
    # An asymmetric key used as an HMAC secret: the key-confusion guard.
    with pytest.raises(ConfigurationError, match="not a private/public key"):
        SecurityManager(private_key=rsa_key, algorithm="HS256")
    with pytest.raises(ConfigurationError, match="could not be loaded"):
        SecurityManager(secret_key=_pem_public(rsa_key), algorithm="HS256")
    with pytest.raises(ConfigurationError, match="not a secret"):
        SecurityManager(secret_key="x" * 40, algorithm="EdDSA")
    with pytest.raises(ConfigurationError, match="could not be loaded"):
        SecurityManager(private_key=ec_p256_key, algorithm="EdDSA")
    with pytest.raises(ConfigurationError, match=r"secp384r1|curve"):
        SecurityManager(private_key=ec.generate_private_key(ec.SECP384R1()), algorithm="ES256")
    with pytest.raises(ConfigurationError, match="2048"):
        SecurityManager(
            private_key=rsa.generate_private_key(public_exponent=65537, key_size=1024),  # noqa: S505 - the weak key is the point
            algorithm="RS256",
        )
    with pytest.raises(ConfigurationError, match="does not belong"):
        SecurityManager(
            private_key=ed25519_key,
            public_key=ed25519.Ed25519PrivateKey.generate().public_key(),
            algorithm="EdDSA",
        )
    with pytest.raises(ConfigurationError, match="could not be loaded"):
        SecurityManager(private_key="-----BEGIN PRIVATE KEY-----\nnope\n", algorithm="EdDSA")


def test_repr_shows_no_secret(manager: SecurityManager) -> None:
    assert SECRET not in repr(manager)
    assert "HS256" in repr(manager)
    assert SECRET not in repr(SigningKey("HS256", secret=SECRET, kid="k"))


# ----------------------------------------------------------------- from_env
def test_from_env_reads_the_usual_names(clock: FakeClock) -> None:
    security = SecurityManager.from_env(
        {
            "JWT_SECRET_KEY": SECRET,
            "JWT_ISSUER": "https://auth.example",
            "JWT_AUDIENCE": "api",
            "JWT_ACCESS_TOKEN_EXPIRE_MINUTES": "5",
            "JWT_REFRESH_TOKEN_EXPIRE_DAYS": "1",
            "JWT_LEEWAY_SECONDS": "10",
            "JWT_KEY_ID": "k1",
            "ARGON2_PRESET": "owasp_minimum",
        },
        clock=clock,
    )
    claims = security.decode_access_token(security.create_access_token({"sub": "u"}))
    assert claims["exp"] - claims["iat"] == 300
    assert (claims["iss"], claims["aud"]) == ("https://auth.example", "api")
    assert security.refresh_token_expires == timedelta(days=1)
    assert security.password_hasher.hash("pw").startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_from_env_reads_pem_with_escaped_newlines(
    ed25519_key: ed25519.Ed25519PrivateKey,
) -> None:
    escaped = _pem_private(ed25519_key).replace("\n", "\\n")  # as .env files often hold it
    security = SecurityManager.from_env({"JWT_PRIVATE_KEY": escaped, "JWT_ALGORITHM": "EdDSA"})
    assert security.decode_access_token(security.create_access_token({"sub": "u"}))["sub"] == "u"


def test_from_env_without_a_key_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="JWT_SECRET_KEY"):
        SecurityManager.from_env({})
    with pytest.raises(ConfigurationError, match="JWT_LEEWAY_SECONDS"):
        SecurityManager.from_env({"JWT_SECRET_KEY": SECRET, "JWT_LEEWAY_SECONDS": "soon"})


def test_from_env_arguments_override_and_keys_replace_the_env_key() -> None:
    security = SecurityManager.from_env(
        {"JWT_SECRET_KEY": SECRET}, keys=[SigningKey("HS512", secret="k" * 64, kid="x")]
    )
    token = security.create_access_token({"sub": "u"})
    assert jwt.get_unverified_header(token)["alg"] == "HS512"


# ------------------------------------------------------------ missing extra
def test_missing_security_extra_names_the_install_line() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["jwt"] = None  # as if the security extra were not installed
        from backend_kit.errors import MissingDependencyError
        from backend_kit.security import SecurityManager
        try:
            SecurityManager(secret_key="x" * 40)
        except MissingDependencyError as exc:
            print(exc)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'backend-kit[security]'" in result.stdout


def test_token_hot_paths_import_nothing(manager: SecurityManager) -> None:
    """PyJWT and the keys are bound in the constructor: create/decode run no import statement."""
    manager.decode_access_token(manager.create_access_token({"sub": "warm-up"}))
    imported: list[str] = []
    real_import = builtins.__import__

    def spy(name: str, *args: Any, **kwargs: Any) -> Any:
        imported.append(name)
        return real_import(name, *args, **kwargs)

    builtins.__import__ = spy
    try:
        for _ in range(3):
            token = manager.create_access_token({"sub": "u"})
            manager.decode_access_token(token)
            pair = manager.create_token_pair({"sub": "u"})
            manager.refresh(pair.refresh_token)
    finally:
        builtins.__import__ = real_import
    assert imported == []
