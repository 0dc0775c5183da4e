"""JWT keys: what the user configures (:class:`SigningKey`) and what the codec uses (_PreparedKey).

Every key is bound to exactly one algorithm at configuration time (RFC 8725
§3.1): a token is verified with the algorithm of the key its ``kid`` names,
never with the one its header asks for, so an HS256 token can never be
checked against an RSA public key used as an HMAC secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

from backend_kit.errors import ConfigurationError

if TYPE_CHECKING:
    from jwt.algorithms import AllowedPrivateKeys, AllowedPublicKeys

__all__ = ["HMAC_MIN_KEY_BYTES", "SUPPORTED_ALGORITHMS", "SigningKey"]

#: RFC 7518 §3.2: an HMAC key must be at least as long as the hash output.
HMAC_MIN_KEY_BYTES: Final[dict[str, int]] = {"HS256": 32, "HS384": 48, "HS512": 64}

_RSA_ALGORITHMS: Final = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_CURVES: Final[dict[str, str]] = {
    "ES256": "secp256r1",
    "ES384": "secp384r1",
    "ES512": "secp521r1",
}
#: RFC 7518 §3.3: RSA keys of 2048 bits or more.
RSA_MIN_KEY_BITS: Final = 2048

#: Algorithms a key may be bound to. ``none`` is not among them, ever.
SUPPORTED_ALGORITHMS: Final = frozenset(
    {*HMAC_MIN_KEY_BYTES, *_RSA_ALGORITHMS, *_EC_CURVES, "EdDSA"}
)


@dataclass(frozen=True, slots=True, repr=False)
class SigningKey:
    """One JWT key bound to one algorithm, optionally named by a ``kid``.

    HMAC (``HS256``/``HS384``/``HS512``): give ``secret`` (str or bytes, at
    least 32/48/64 bytes, RFC 7518 §3.2). Asymmetric (``EdDSA``, ``ES256``...,
    ``RS256``..., ``PS256``...): give ``private_key`` to sign (a
    ``cryptography`` key object or PEM text; the public key is derived) and/or
    ``public_key`` to verify only (a key kept after rotation).

    The ``repr`` shows the algorithm and kid, never key material.
    """

    algorithm: str
    secret: str | bytes | None = None
    private_key: AllowedPrivateKeys | str | bytes | None = None
    public_key: AllowedPublicKeys | str | bytes | None = None
    kid: str | None = None

    def __repr__(self) -> str:
        return f"SigningKey(algorithm={self.algorithm!r}, kid={self.kid!r})"


@dataclass(frozen=True, slots=True, repr=False)
class _PreparedKey:
    """A validated key, in the form PyJWT's algorithm objects take (no per-call parsing)."""

    kid: str | None
    algorithm: str
    algorithm_impl: Any  # jwt.algorithms.Algorithm
    signing_key: Any  # bytes or a cryptography private key; None when verify-only
    verifying_key: Any  # bytes or a cryptography public key
    header_segment: bytes  # base64url(JSON header): constant per key, made once

    def __repr__(self) -> str:
        return f"_PreparedKey(algorithm={self.algorithm!r}, kid={self.kid!r})"


def prepare_key(key: SigningKey, algorithms: dict[str, Any]) -> _PreparedKey:
    """Validate ``key`` and load it once.

    ``algorithms`` is PyJWT's ``get_default_algorithms()``.

    Raises:
        ConfigurationError: unknown or ``none`` algorithm, an HMAC secret that is
            too short, a key of the wrong family, curve or size, unreadable PEM.
    """
    import json

    from cryptography.exceptions import UnsupportedAlgorithm
    from jwt.exceptions import InvalidKeyError
    from jwt.utils import base64url_encode

    name = key.algorithm
    if name not in SUPPORTED_ALGORITHMS:
        raise ConfigurationError(
            f"JWT algorithm {name!r} is not supported; choose one of {sorted(SUPPORTED_ALGORITHMS)}"
        )
    if key.kid is not None and (not isinstance(cast(object, key.kid), str) or not key.kid):
        raise ConfigurationError("a key id (kid) must be a non-empty string")
    impl = algorithms[name]
    try:
        if name in HMAC_MIN_KEY_BYTES:
            signing, verifying = _prepare_hmac(key, impl)
        else:
            signing, verifying = _prepare_asymmetric(key, impl)
    except ConfigurationError:
        raise
    except (InvalidKeyError, UnsupportedAlgorithm, ValueError, TypeError) as exc:
        # PyJWT / cryptography say what is wrong (curve, key family, PEM);
        # their messages name no key material.
        raise ConfigurationError(
            f"the {name} key{_kid_text(key)} could not be loaded: {str(exc)[:200]}"
        ) from exc
    header: dict[str, str] = {"alg": name, "typ": "JWT"}
    if key.kid is not None:
        header["kid"] = key.kid
    header_json = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    return _PreparedKey(
        kid=key.kid,
        algorithm=name,
        algorithm_impl=impl,
        signing_key=signing,
        verifying_key=verifying,
        header_segment=base64url_encode(header_json),
    )


def _kid_text(key: SigningKey) -> str:
    return f" (kid {key.kid!r})" if key.kid is not None else ""


def _prepare_hmac(key: SigningKey, impl: Any) -> tuple[bytes, bytes]:
    if key.private_key is not None or key.public_key is not None:
        raise ConfigurationError(
            f"{key.algorithm} takes a secret, not a private/public key (key confusion guard)"
        )
    if key.secret is None:
        raise ConfigurationError(f"{key.algorithm} needs a secret")
    secret = key.secret.encode("utf-8") if isinstance(key.secret, str) else key.secret
    minimum = HMAC_MIN_KEY_BYTES[key.algorithm]
    if len(secret) < minimum:
        raise ConfigurationError(
            f"the {key.algorithm} secret{_kid_text(key)} is {len(secret)} bytes; it must be at "
            f"least {minimum} bytes (RFC 7518 §3.2). Generate one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(64))'"
        )
    # PyJWT refuses PEM / SSH / DER material as an HMAC secret: run its check once here.
    prepared: bytes = impl.prepare_key(secret)
    return prepared, prepared


def _prepare_asymmetric(key: SigningKey, impl: Any) -> tuple[Any, Any]:
    if key.secret is not None:
        raise ConfigurationError(f"{key.algorithm} takes a private/public key, not a secret")
    if key.private_key is None and key.public_key is None:
        raise ConfigurationError(f"{key.algorithm} needs a private_key or a public_key")
    signing = None
    if key.private_key is not None:
        signing = impl.prepare_key(key.private_key)
        if not hasattr(signing, "sign"):
            raise ConfigurationError(
                f"private_key{_kid_text(key)} is a public key; give the private key to sign"
            )
        _check_strength(key, signing)
    if key.public_key is not None:
        verifying = impl.prepare_key(key.public_key)
        _check_strength(key, verifying)
        if hasattr(verifying, "sign"):
            verifying = verifying.public_key()
        if signing is not None and _public_bytes(signing.public_key()) != _public_bytes(verifying):
            raise ConfigurationError(
                f"public_key{_kid_text(key)} does not belong to the private_key"
            )
    else:
        # No public key given, so the private key was (checked above).
        verifying = cast(Any, signing).public_key()
    return signing, verifying


def _check_strength(key: SigningKey, loaded: Any) -> None:
    if key.algorithm in _RSA_ALGORITHMS and loaded.key_size < RSA_MIN_KEY_BITS:
        raise ConfigurationError(
            f"the RSA key{_kid_text(key)} has {loaded.key_size} bits; at least "
            f"{RSA_MIN_KEY_BITS} are required"
        )
    expected_curve = _EC_CURVES.get(key.algorithm)
    if expected_curve is not None and loaded.curve.name != expected_curve:
        raise ConfigurationError(
            f"{key.algorithm} needs a {expected_curve} key, not {loaded.curve.name}"
        )


def _public_bytes(public_key: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    encoded: bytes = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return encoded
