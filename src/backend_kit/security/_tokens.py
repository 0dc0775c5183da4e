"""Signing and checking JWTs: the signature with PyJWT, the claims here, every failure a TokenError.

The codec knows nothing about revocation (the manager adds that). It is built
once per :class:`SecurityManager`: PyJWT is imported and every key is parsed
in the constructor, so encoding and decoding pay no import or key-parsing
cost per call.

Parsing and signature verification are PyJWT's (``PyJWS.decode_complete``,
with the algorithm list pinned to the one algorithm bound to the key);
claim checks are done here so every failure gets a message safe to show a
client and the clock can be injected.
"""

from __future__ import annotations

import binascii
import json
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal

from backend_kit._optional import import_optional
from backend_kit.errors import ConfigurationError, ExpiredTokenError, InvalidTokenError
from backend_kit.security._keys import SigningKey, _PreparedKey, prepare_key

__all__ = ["REQUIRED_CLAIMS", "RESERVED_CLAIMS", "TokenCodec", "TokenType"]

logger = logging.getLogger("backend_kit.security")

TokenType = Literal["access", "refresh"]

#: Claims every token must carry. ``type`` keeps access and refresh tokens apart
#: (RFC 8725 §3.12: mutually exclusive validation rules for different kinds of JWTs).
REQUIRED_CLAIMS: Final = ("exp", "iat", "sub", "jti", "type")
#: Claims the manager sets itself; callers may not pass them in ``data``.
RESERVED_CLAIMS: Final = frozenset({"exp", "iat", "nbf", "jti", "type", "iss", "aud", "fam"})
_MAX_JTI_LENGTH: Final = 256

# Client-safe reasons. They name what is wrong with the token, never a key,
# a claim value or a library internal.
MALFORMED: Final = "The token is malformed."
TOO_LONG: Final = "The token is too long."
EMPTY: Final = "No token was given."
BAD_SIGNATURE: Final = "The token signature is invalid."
BAD_ALGORITHM: Final = "The token's signing algorithm is not accepted."
UNKNOWN_KEY: Final = "The token was signed with an unknown key."
EXPIRED: Final = "The token has expired."
NOT_YET_VALID: Final = "The token is not valid yet."
ISSUED_IN_FUTURE: Final = "The token was issued in the future."
WRONG_ISSUER: Final = "The token was issued by another issuer."
WRONG_AUDIENCE: Final = "The token is meant for another audience."


class TokenCodec:
    """Encodes claims with the current key; decodes and checks tokens against every key.

    Args:
        keys: the configured keys, the first one signs. At most one may have
            no ``kid``; kids must be unique.
        issuer: ``iss`` to set and require, or None.
        audience: ``aud`` to set and require, or None (then a token that
            carries an ``aud`` is refused, RFC 7519 §4.1.3).
        leeway: clock skew tolerated on ``exp``/``nbf``/``iat``, in seconds.
        max_token_length: longer tokens are refused before any parsing.
        clock: current Unix time in seconds.

    Raises:
        MissingDependencyError: the ``security`` extra is not installed.
        ConfigurationError: a key is invalid or kids collide.

    When the first key is verify-only (a public key alone), the codec only
    verifies: :meth:`encode` raises ConfigurationError.
    """

    def __init__(
        self,
        keys: Sequence[SigningKey],
        *,
        issuer: str | None,
        audience: str | None,
        leeway: float,
        max_token_length: int,
        clock: Callable[[], float],
    ) -> None:
        import_optional("jwt", extra="security")
        import_optional("cryptography", extra="security")
        import jwt
        from jwt.algorithms import get_default_algorithms
        from jwt.utils import base64url_encode

        if not keys:
            raise ConfigurationError("at least one JWT key is required")
        algorithms = get_default_algorithms()
        prepared = [prepare_key(key, algorithms) for key in keys]
        by_kid: dict[str | None, _PreparedKey] = {}
        for key in prepared:
            if key.kid in by_kid:
                raise ConfigurationError(
                    "JWT key ids must be unique (and at most one key may have no kid)"
                    if key.kid is not None
                    else "at most one JWT key may have no kid"
                )
            by_kid[key.kid] = key

        self.current_key: Final = prepared[0]
        self._keys_by_kid = by_kid
        self._single_key = prepared[0] if len(prepared) == 1 else None
        # One-element algorithm lists, made once: a key verifies only with its own algorithm.
        self._algorithm_lists = {key.kid: [key.algorithm] for key in prepared}
        self.issuer: Final = issuer
        self.audience: Final = audience
        self.leeway: Final = leeway
        self.max_token_length: Final = max_token_length
        self._clock = clock

        # Bound once: the hot paths use these attributes, never an import.
        self._jws_decode_complete = jwt.PyJWS().decode_complete
        self._b64encode = base64url_encode
        self._pyjwt_error: type[Exception] = jwt.exceptions.PyJWTError
        self._signature_error: type[Exception] = jwt.exceptions.InvalidSignatureError
        self._algorithm_error: type[Exception] = jwt.exceptions.InvalidAlgorithmError

    # ------------------------------------------------------------------ encode
    def encode(self, claims: dict[str, Any]) -> str:
        """Sign ``claims`` (already complete) with the current key.

        Raises:
            TypeError / ValueError: a claim value is not JSON-serialisable
                (NaN and infinity included).
            ConfigurationError: the current key is verify-only.
        """
        key = self.current_key
        if key.signing_key is None:
            raise ConfigurationError(
                "this SecurityManager has only a public key: it verifies tokens but cannot sign them"
            )
        payload = json.dumps(claims, separators=(",", ":"), allow_nan=False).encode()
        signing_input = key.header_segment + b"." + self._b64encode(payload)
        signature: bytes = key.algorithm_impl.sign(signing_input, key.signing_key)
        return (signing_input + b"." + self._b64encode(signature)).decode("ascii")

    # ------------------------------------------------------------------ decode
    def decode(self, token: str, expected_type: TokenType | None) -> dict[str, Any]:
        """Verify signature and claims; return the claims.

        ``expected_type`` None accepts either type (used to revoke a token).

        Raises:
            ExpiredTokenError: ``exp`` is past (beyond the leeway).
            InvalidTokenError: anything else wrong with the token, whatever the input.
        """
        if not isinstance(token, str):
            raise InvalidTokenError(MALFORMED)
        if not token:
            raise InvalidTokenError(EMPTY)
        if len(token) > self.max_token_length:
            raise InvalidTokenError(TOO_LONG)
        if not token.isascii():
            raise InvalidTokenError(MALFORMED)
        key = self._single_key or self._key_named_in(token)
        try:
            decoded = self._jws_decode_complete(
                token, key=key.verifying_key, algorithms=self._algorithm_lists[key.kid]
            )
        except self._signature_error as exc:
            if self._single_key is not None:
                # Say "unknown key" rather than "bad signature" when the token
                # names another key (checked only on this failure path, so the
                # one-key hot path never parses the header twice).
                self._key_named_in(token, {key.kid: key})
            raise InvalidTokenError(BAD_SIGNATURE) from exc
        except self._algorithm_error as exc:
            raise InvalidTokenError(BAD_ALGORITHM) from exc
        except self._pyjwt_error as exc:
            raise InvalidTokenError(MALFORMED) from exc
        except (ValueError, TypeError, KeyError, RecursionError, OverflowError) as exc:
            # Not expected from PyJWT for any input; still translated so the
            # caller's contract (TokenError only) holds whatever happens.
            logger.debug("token parsing failed unexpectedly: %s", type(exc).__name__)
            raise InvalidTokenError(MALFORMED) from exc
        if decoded["header"].get("kid") != key.kid:
            raise InvalidTokenError(UNKNOWN_KEY)
        try:
            claims = json.loads(decoded["payload"])
        except (ValueError, RecursionError) as exc:
            raise InvalidTokenError(MALFORMED) from exc
        if type(claims) is not dict:
            raise InvalidTokenError(MALFORMED)
        self._check_claims(claims, expected_type)
        return claims

    def _key_named_in(
        self, token: str, keys_by_kid: dict[str | None, _PreparedKey] | None = None
    ) -> _PreparedKey:
        """The configured key the token's ``kid`` header names (several keys configured)."""
        header_segment = token.partition(".")[0]
        try:
            raw = binascii.a2b_base64(
                (header_segment + "=" * (-len(header_segment) % 4))
                .replace("-", "+")
                .replace("_", "/")
            )
            header = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise InvalidTokenError(MALFORMED) from exc
        if type(header) is not dict:
            raise InvalidTokenError(MALFORMED)
        kid = header.get("kid")
        if kid is not None and type(kid) is not str:
            raise InvalidTokenError(MALFORMED)
        key = (self._keys_by_kid if keys_by_kid is None else keys_by_kid).get(kid)
        if key is None:
            raise InvalidTokenError(UNKNOWN_KEY)
        return key

    def _check_claims(self, claims: dict[str, Any], expected_type: TokenType | None) -> None:
        for name in REQUIRED_CLAIMS:
            if claims.get(name) is None:
                raise InvalidTokenError(f"The token has no '{name}' claim.")
        now = self._clock()
        leeway = self.leeway
        if _numeric_date(claims["exp"]) <= now - leeway:
            raise ExpiredTokenError(EXPIRED)
        if _numeric_date(claims["iat"]) > now + leeway:
            raise InvalidTokenError(ISSUED_IN_FUTURE)
        nbf = claims.get("nbf")
        if nbf is not None and _numeric_date(nbf) > now + leeway:
            raise InvalidTokenError(NOT_YET_VALID)
        sub = claims["sub"]
        if type(sub) is not str or not sub:
            raise InvalidTokenError("The token's 'sub' claim must be a non-empty string.")
        jti = claims["jti"]
        if type(jti) is not str or not jti or len(jti) > _MAX_JTI_LENGTH:
            raise InvalidTokenError("The token's 'jti' claim is not a valid token id.")
        family = claims.get("fam")
        if family is not None and (type(family) is not str or len(family) > _MAX_JTI_LENGTH):
            raise InvalidTokenError(MALFORMED)
        token_type = claims["type"]
        if token_type != expected_type:
            if expected_type == "access":
                raise InvalidTokenError("An access token is required.")
            if expected_type == "refresh":
                raise InvalidTokenError("A refresh token is required.")
            if token_type not in ("access", "refresh"):
                raise InvalidTokenError("The token has an unknown type.")
        if self.issuer is not None and claims.get("iss") != self.issuer:
            raise InvalidTokenError(WRONG_ISSUER)
        audience = claims.get("aud")
        if self.audience is None:
            if audience is not None:
                raise InvalidTokenError(WRONG_AUDIENCE)
        elif audience != self.audience and not (
            type(audience) is list and self.audience in audience
        ):
            raise InvalidTokenError(WRONG_AUDIENCE)

    def now(self) -> float:
        """The codec's clock, in Unix seconds."""
        return self._clock()


def _numeric_date(value: object) -> float:
    """A JWT NumericDate (RFC 7519 §2): an int or a finite float, never a bool or a string."""
    if type(value) is int:
        return value
    if type(value) is float and math.isfinite(value):
        return value
    raise InvalidTokenError("The token has an invalid time claim.")
