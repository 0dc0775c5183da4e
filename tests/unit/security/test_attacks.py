"""The attack suite: every known way to get a forged, stale or misused JWT accepted, refused.

Each attack builds its token by hand (or with raw PyJWT) exactly as an
attacker would, then checks that decoding raises a TokenError subclass with a
client-safe message. A hypothesis fuzz test closes with arbitrary input.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import string
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend_kit.errors import (
    ExpiredTokenError,
    InvalidTokenError,
    RevokedTokenError,
    TokenError,
)
from backend_kit.security import SecurityManager, SigningKey
from tests.unit.security.conftest import SECRET, START, FakeClock

NOW = int(START)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def valid_claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "sub": "user-42",
        "iat": NOW,
        "exp": NOW + 600,
        "jti": "attack-jti",
        "type": "access",
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def hs256(claims: dict[str, Any], secret: bytes | str = SECRET, **header: Any) -> str:
    """A token signed with HMAC-SHA256 by hand (PyJWT refuses some of these keys)."""
    key = secret.encode() if isinstance(secret, str) else secret
    head = {"alg": "HS256", "typ": "JWT", **header}
    signing_input = f"{b64json(head)}.{b64json(claims)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def assert_refused(
    security: SecurityManager,
    token: Any,
    error: type[TokenError] = InvalidTokenError,
    match: str | None = None,
) -> TokenError:
    with pytest.raises(error, match=match) as caught:
        security.decode_access_token(token)
    message = str(caught.value)
    # Client-safe: a sentence, no secret, no library internals.
    assert message.endswith(".")
    assert SECRET not in message
    assert "jwt" not in message.lower() or "JWT" in message
    assert "Traceback" not in message
    return caught.value


# ---------------------------------------------------------------- alg: none
@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_is_refused(manager: SecurityManager, alg: str) -> None:
    unsigned = f"{b64json({'alg': alg, 'typ': 'JWT'})}.{b64json(valid_claims())}."
    assert_refused(manager, unsigned, match="algorithm is not accepted")
    with_signature = unsigned + b64(b"anything")
    assert_refused(manager, with_signature, match="algorithm is not accepted")


def test_alg_header_cannot_switch_algorithm(manager: SecurityManager) -> None:
    # Signed correctly with our secret, but HS512 instead of the pinned HS256.
    token = jwt.encode(valid_claims(), SECRET + "x" * 30, algorithm="HS512")
    assert_refused(manager, token, match="algorithm is not accepted")
    missing_alg = f"{b64json({'typ': 'JWT'})}.{b64json(valid_claims())}.{b64(b'x' * 32)}"
    assert_refused(manager, missing_alg)


# ----------------------------------------------------------- key confusion
def _public_pem(private_key: Any) -> bytes:
    pem: bytes = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem


@pytest.mark.parametrize("family", ["RS256", "ES256", "EdDSA"])
def test_hs256_signed_with_the_public_key_is_refused(
    family: str,
    rsa_key: rsa.RSAPrivateKey,
    ec_p256_key: ec.EllipticCurvePrivateKey,
    ed25519_key: ed25519.Ed25519PrivateKey,
    clock: FakeClock,
) -> None:
    private_key: Any = {"RS256": rsa_key, "ES256": ec_p256_key, "EdDSA": ed25519_key}[family]
    security = SecurityManager(private_key=private_key, algorithm=family, clock=clock)
    public_pem = _public_pem(private_key)
    # The classic attack: the verifier's public key, which is public, used as
    # an HMAC secret, hoping the verifier trusts the header's "alg".
    forged = hs256(valid_claims(), secret=public_pem)
    assert_refused(security, forged, match="algorithm is not accepted")
    # Same with a kid naming our key.
    forged_kid = hs256(valid_claims(), secret=public_pem, kid="k1")
    assert_refused(security, forged_kid)
    # And the genuine token is still accepted.
    assert security.decode_access_token(security.create_access_token({"sub": "u"}))["sub"] == "u"


def test_hs256_key_confusion_through_a_kid_of_an_asymmetric_key(
    rsa_key: rsa.RSAPrivateKey, clock: FakeClock
) -> None:
    security = SecurityManager(
        keys=[
            SigningKey("RS256", private_key=rsa_key, kid="rsa"),
            SigningKey("HS256", secret=SECRET, kid="hmac"),
        ],
        clock=clock,
    )
    # The kid names the RSA key, the header says HS256: the key's own
    # algorithm decides, so HS256 is refused for it.
    forged = hs256(valid_claims(), secret=_public_pem(rsa_key), kid="rsa")
    assert_refused(security, forged, match="algorithm is not accepted")


def test_embedded_jwk_header_is_ignored(
    manager: SecurityManager, ed25519_key: ed25519.Ed25519PrivateKey
) -> None:
    # The attacker signs with their own key and ships it in the header (CVE-2018-0114 style).
    attacker_secret = "a" * 40
    jwk = {"kty": "oct", "k": b64(attacker_secret.encode())}
    forged = hs256(valid_claims(), secret=attacker_secret, jwk=jwk)
    assert_refused(manager, forged, match="signature is invalid")
    forged_jku = hs256(valid_claims(), secret=attacker_secret, jku="https://evil.example/jwks")
    assert_refused(manager, forged_jku, match="signature is invalid")


def test_es256_psychic_signature_is_refused(
    ec_p256_key: ec.EllipticCurvePrivateKey, clock: FakeClock
) -> None:
    # CVE-2022-21449: r = s = 0 verified under some ECDSA implementations.
    security = SecurityManager(private_key=ec_p256_key, algorithm="ES256", clock=clock)
    head = b64json({"alg": "ES256", "typ": "JWT"})
    forged = f"{head}.{b64json(valid_claims())}.{b64(bytes(64))}"
    assert_refused(security, forged, match="signature is invalid")


# --------------------------------------------------------------------- kid
def test_unknown_kid_is_refused(clock: FakeClock) -> None:
    security = SecurityManager(
        keys=[
            SigningKey("HS256", secret=SECRET, kid="k1"),
            SigningKey("HS256", secret="s" * 40, kid="k2"),
        ],
        clock=clock,
    )
    assert_refused(security, hs256(valid_claims(), kid="k3"), match="unknown key")
    assert_refused(security, hs256(valid_claims(), kid="../../etc/passwd"), match="unknown key")
    assert_refused(security, hs256(valid_claims()), match="unknown key")  # no kid at all
    assert_refused(security, hs256(valid_claims(), kid=1), match="malformed")
    assert_refused(security, hs256(valid_claims(), kid=None), match="unknown key")


def test_wrong_kid_is_refused(clock: FakeClock) -> None:
    other = "s" * 40
    security = SecurityManager(
        keys=[
            SigningKey("HS256", secret=SECRET, kid="k1"),
            SigningKey("HS256", secret=other, kid="k2"),
        ],
        clock=clock,
    )
    # Signed with k2's secret but claiming to be k1.
    assert_refused(security, hs256(valid_claims(), secret=other, kid="k1"), match="signature")
    assert security.decode_access_token(hs256(valid_claims(), secret=other, kid="k2"))


def test_kid_on_a_single_key_manager(clock: FakeClock) -> None:
    security = SecurityManager(secret_key=SECRET, kid="k1", clock=clock)
    assert_refused(security, hs256(valid_claims()), match="unknown key")  # no kid
    assert_refused(security, hs256(valid_claims(), kid="k2"), match="unknown key")
    assert_refused(security, hs256(valid_claims(), secret="q" * 40, kid="k2"), match="unknown key")
    assert security.decode_access_token(hs256(valid_claims(), kid="k1"))["sub"] == "user-42"


# ------------------------------------------------------------------ times
def test_expired_token_is_refused(manager: SecurityManager) -> None:
    assert_refused(manager, hs256(valid_claims(exp=NOW - 31)), ExpiredTokenError, "expired")
    assert manager.decode_access_token(hs256(valid_claims(exp=NOW - 29)))  # within leeway


def test_nbf_in_the_future_is_refused(manager: SecurityManager) -> None:
    assert_refused(manager, hs256(valid_claims(nbf=NOW + 3600)), match="not valid yet")
    assert manager.decode_access_token(hs256(valid_claims(nbf=NOW + 20)))  # within leeway


def test_iat_in_the_future_is_refused(manager: SecurityManager) -> None:
    assert_refused(manager, hs256(valid_claims(iat=NOW + 3600)), match="issued in the future")


@pytest.mark.parametrize(
    "bad_time",
    ["9999999999", True, None, [], {}, 1e400, "NaN"],
)
def test_time_claims_must_be_numbers(manager: SecurityManager, bad_time: Any) -> None:
    if bad_time is None:
        token = hs256(valid_claims(exp=None))
        assert_refused(manager, token, match="no 'exp' claim")
        return
    for name in ("exp", "iat", "nbf"):
        token = hs256(valid_claims(**{name: bad_time}))
        assert_refused(manager, token, match="invalid time claim")


def test_nan_and_infinity_in_json_are_refused(manager: SecurityManager) -> None:
    # Python's json module reads NaN/Infinity literals: an exp of Infinity must not mean "forever".
    head = b64json({"alg": "HS256", "typ": "JWT"})
    for literal in ("Infinity", "NaN", "-Infinity"):
        payload = json.dumps(valid_claims()).replace(str(NOW + 600), literal)
        signing_input = f"{head}.{b64(payload.encode())}"
        signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
        assert_refused(manager, f"{signing_input}.{b64(signature)}", match="invalid time claim")


# ------------------------------------------------------------ iss and aud
@pytest.fixture
def scoped(clock: FakeClock) -> SecurityManager:
    return SecurityManager(
        secret_key=SECRET, issuer="https://auth.example", audience="orders-api", clock=clock
    )


def test_wrong_or_missing_issuer_is_refused(scoped: SecurityManager) -> None:
    good = {"iss": "https://auth.example", "aud": "orders-api"}
    assert scoped.decode_access_token(hs256(valid_claims(**good)))
    assert_refused(
        scoped, hs256(valid_claims(**{**good, "iss": "https://evil.example"})), match="issuer"
    )
    assert_refused(scoped, hs256(valid_claims(aud="orders-api")), match="issuer")
    assert_refused(
        scoped, hs256(valid_claims(**{**good, "iss": ["https://auth.example"]})), match="issuer"
    )


def test_wrong_or_missing_audience_is_refused(scoped: SecurityManager) -> None:
    iss = "https://auth.example"
    assert_refused(scoped, hs256(valid_claims(iss=iss, aud="billing-api")), match="audience")
    assert_refused(scoped, hs256(valid_claims(iss=iss)), match="audience")
    assert_refused(scoped, hs256(valid_claims(iss=iss, aud=["billing-api"])), match="audience")
    assert_refused(scoped, hs256(valid_claims(iss=iss, aud={"orders-api": 1})), match="audience")
    # A list naming us is fine (RFC 7519 §4.1.3).
    assert scoped.decode_access_token(
        hs256(valid_claims(iss=iss, aud=["billing-api", "orders-api"]))
    )


def test_token_with_audience_is_refused_when_none_is_configured(manager: SecurityManager) -> None:
    assert_refused(manager, hs256(valid_claims(aud="orders-api")), match="audience")


# --------------------------------------------------------- missing claims
@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "jti", "type"])
def test_missing_required_claim_is_refused(manager: SecurityManager, claim: str) -> None:
    assert_refused(manager, hs256(valid_claims(**{claim: None})), match=f"no '{claim}' claim")


@pytest.mark.parametrize(
    ("claim", "value"),
    [("sub", ""), ("sub", 42), ("sub", ["a"]), ("jti", ""), ("jti", 7), ("jti", "j" * 300)],
)
def test_malformed_sub_or_jti_is_refused(manager: SecurityManager, claim: str, value: Any) -> None:
    assert_refused(manager, hs256(valid_claims(**{claim: value})), match=claim)


# --------------------------------------------------------------- tampering
def test_tampered_payload_is_refused(manager: SecurityManager) -> None:
    head, _payload, signature = manager.create_access_token({"sub": "user-42"}).split(".")
    forged_payload = b64json(valid_claims(sub="admin"))
    assert_refused(manager, f"{head}.{forged_payload}.{signature}", match="signature is invalid")


def test_tampered_signature_is_refused(manager: SecurityManager) -> None:
    token = manager.create_access_token({"sub": "user-42"})
    head, payload, signature = token.split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    tampered = signature[:middle] + flipped + signature[middle + 1 :]
    assert_refused(manager, f"{head}.{payload}.{tampered}", match="signature is invalid")
    assert_refused(manager, f"{head}.{payload}.", match="signature is invalid")
    # Doubled: 64 bytes, or a non-canonical base64 ending (then "malformed"), by chance.
    assert_refused(manager, f"{head}.{payload}.{signature}{signature}")


def test_tampered_header_is_refused(manager: SecurityManager) -> None:
    _head, payload, signature = manager.create_access_token({"sub": "u"}).split(".")
    new_head = b64json({"alg": "HS256", "typ": "JWT", "kid": "x"})
    assert_refused(manager, f"{new_head}.{payload}.{signature}")


def test_unsupported_critical_header_is_refused(manager: SecurityManager) -> None:
    assert_refused(manager, hs256(valid_claims(), crit=["exp"], exp=1))
    assert_refused(manager, hs256(valid_claims(), b64=False, crit=["b64"]))


# --------------------------------------------------------- type confusion
def test_refresh_token_is_refused_as_access_token(manager: SecurityManager) -> None:
    refresh_token = manager.create_refresh_token("user-42")
    assert_refused(manager, refresh_token, match="access token is required")


def test_access_token_is_refused_as_refresh_token(manager: SecurityManager) -> None:
    access_token = manager.create_access_token({"sub": "user-42"})
    with pytest.raises(InvalidTokenError, match="refresh token is required"):
        manager.refresh(access_token)


def test_unknown_token_type_is_refused(manager: SecurityManager) -> None:
    assert_refused(manager, hs256(valid_claims(type="id")), match="access token is required")
    assert_refused(manager, hs256(valid_claims(type=["access"])), match="access token is required")
    with pytest.raises(InvalidTokenError, match="unknown type"):
        manager.revoke(hs256(valid_claims(type="id")))


# ---------------------------------------------------------------- revoked
def test_revoked_token_is_refused_until_it_expires(
    manager: SecurityManager, clock: FakeClock
) -> None:
    token = manager.create_access_token({"sub": "user-42"})
    manager.revoke(token)
    assert_refused(manager, token, RevokedTokenError, "revoked")
    clock.advance(15 * 60 + 31)
    # Past its expiry the store may forget it; the token is refused as expired anyway.
    assert_refused(manager, token, ExpiredTokenError)


def test_revoking_by_jti(manager: SecurityManager) -> None:
    token = manager.create_access_token({"sub": "user-42"})
    jti = manager.decode_access_token(token)["jti"]
    manager.revoke(jti)
    assert_refused(manager, token, RevokedTokenError)


def test_forged_token_cannot_revoke_someone_else(manager: SecurityManager) -> None:
    victim = manager.create_access_token({"sub": "victim"})
    victim_jti = manager.decode_access_token(victim)["jti"]
    forged = hs256(valid_claims(jti=victim_jti), secret="attacker" * 5)
    with pytest.raises(InvalidTokenError):
        manager.revoke(forged)
    assert manager.decode_access_token(victim)["sub"] == "victim"


# ------------------------------------------------------ malformed input
@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "..",
        "...",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "not a token",
        "eyJhbGciOiJIUzI1NiJ9",
        "eyJhbGciOiJIUzI1NiJ9.",
        "eyJhbGciOiJIUzI1NiJ9.e30",
        "!!!!.!!!!.!!!!",
        "====.====.====",
        "Bearer eyJhbGciOiJIUzI1NiJ9.e30.e30",
    ],
)
def test_malformed_tokens_are_refused(manager: SecurityManager, token: str) -> None:
    assert_refused(manager, token)


def test_truncated_tokens_are_refused(manager: SecurityManager) -> None:
    token = manager.create_access_token({"sub": "user-42"})
    for cut in (1, 5, len(token) // 3, len(token) // 2, len(token) - 43, len(token) - 1):
        assert_refused(manager, token[:cut])


def test_empty_non_ascii_and_huge_tokens_are_refused(manager: SecurityManager) -> None:
    token = manager.create_access_token({"sub": "user-42"})
    assert_refused(manager, "", match="No token")
    assert_refused(manager, token + "é", match="malformed")
    assert_refused(manager, "ünïcödé.tökén.sïg", match="malformed")
    assert_refused(manager, "\ud800.\udfff.x", match="malformed")  # lone surrogates
    assert_refused(manager, "a" * 1_000_000, match="too long")
    assert_refused(manager, token + "." + "A" * 1_000_000, match="too long")


@pytest.mark.parametrize("value", [None, 42, b"bytes.as.token", ["a", "b"], {"t": 1}])
def test_non_string_tokens_are_refused(manager: SecurityManager, value: Any) -> None:
    assert_refused(manager, value)


def test_deeply_nested_json_is_refused(manager: SecurityManager) -> None:
    nested = "[" * 100_000 + "]" * 100_000
    head = b64json({"alg": "HS256", "typ": "JWT"})
    token = f"{head}.{b64(nested.encode())}.{b64(b'x' * 32)}"
    security = SecurityManager(secret_key=SECRET, max_token_length=len(token) + 10)
    assert_refused(security, token)
    payload_token = hs256(valid_claims())
    forged_header = f"{b64(nested.encode())}.{payload_token.split('.', 1)[1]}"
    assert_refused(security, forged_header)


# --------------------------------------------------------------------- fuzz
_B64URL = string.ascii_letters + string.digits + "-_"
_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json_values = st.recursive(
    _json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
_claim_names = st.sampled_from(
    ["sub", "exp", "iat", "nbf", "jti", "type", "iss", "aud", "fam", "x"]
) | st.text(max_size=6)
_claims = st.dictionaries(_claim_names, _json_values, max_size=10)
_fuzz_settings = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _decode_or_token_error(security: SecurityManager, token: Any) -> None:
    try:
        claims = security.decode_access_token(token)
    except TokenError as exc:
        message = str(exc)
        assert message  # every refusal says why
        return
    # Only a token signed with our key and passing every check gets here.
    assert claims["type"] == "access"
    assert isinstance(claims["sub"], str)


@_fuzz_settings
@given(text=st.text(max_size=300))
def test_fuzz_arbitrary_text_raises_only_token_errors(manager: SecurityManager, text: str) -> None:
    _decode_or_token_error(manager, text)


@_fuzz_settings
@given(segments=st.lists(st.text(alphabet=_B64URL + ".=", max_size=80), min_size=1, max_size=5))
def test_fuzz_token_shaped_text_raises_only_token_errors(
    manager: SecurityManager, segments: list[str]
) -> None:
    _decode_or_token_error(manager, ".".join(segments))


@_fuzz_settings
@given(header=st.dictionaries(st.text(max_size=6), _json_values, max_size=5), claims=_claims)
def test_fuzz_arbitrary_header_and_claims_raise_only_token_errors(
    manager: SecurityManager, header: dict[str, Any], claims: dict[str, Any]
) -> None:
    unsigned = f"{b64json(header)}.{b64json(claims)}"
    _decode_or_token_error(manager, f"{unsigned}.{b64(b'0' * 32)}")
    # Signed with our real key: the signature passes, so every claim check is exercised.
    _decode_or_token_error(manager, hs256(claims))
    _decode_or_token_error(
        manager, hs256(claims, **{k: v for k, v in header.items() if k != "alg"})
    )


@_fuzz_settings
@given(data=st.data())
def test_fuzz_mutated_valid_tokens_raise_only_token_errors(
    manager: SecurityManager, data: st.DataObject
) -> None:
    token = manager.create_access_token({"sub": "user-42"})
    position = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    replacement = data.draw(st.text(min_size=0, max_size=3))
    mutated = token[:position] + replacement + token[position + 1 :]
    if mutated == token:
        return
    _decode_or_token_error(manager, mutated)
