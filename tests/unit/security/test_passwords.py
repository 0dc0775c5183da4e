"""Password hashing: Argon2id, legacy hashes upgraded on login, no exception on bad input."""

from __future__ import annotations

import logging
from typing import Any

import bcrypt
import pytest
from passlib.context import CryptContext

from backend_kit.errors import ConfigurationError
from backend_kit.security import (
    Argon2Parameters,
    Argon2PasswordHasher,
    PasswordHasher,
    SecurityManager,
)
from tests.unit.security.conftest import SECRET

PASSWORD = "correct horse"

# Hashes of PASSWORD made by other passlib-compatible code (libpass handlers,
# the bcrypt and argon2-cffi packages), at cheap costs, frozen here so the
# test proves we read what those apps stored.
FOREIGN_HASHES: dict[str, str] = {
    "pbkdf2_sha256": "$pbkdf2-sha256$1000$/B/jnPNeq/WeU.r9P8fY.w$ERp/zRfYuQHSA6/VD8.wnEfBU5N8seHfrx5FOywiZHE",
    "pbkdf2_sha512": "$pbkdf2-sha512$1000$fq.VEkIoxfh/7927V2rN.Q$DV0qzghFfYK7j3.9NCX46inFC6bXHygNTCJUA5ondfAKS6fcnLhU/Kn1EvnryTjVm38TfbwcNQVKnKHoHyQZhA",
    "sha512_crypt": "$6$rounds=1000$cevIcx7ENIpg9umG$t8.IXz6MHdFNVVsGVAFtKgSuGktI3J.ilARSA.ktm.LCrOEXBcQIO4/iebz5yaq9Nk5ZeTyle96MDkYqI4QJ01",
    "sha256_crypt": "$5$rounds=1000$12LoOWo436DRD7Vx$swznePp5CtgYAQVEyQmYdYHhMBIb/9Kro8KmrxYjZ7.",
    "bcrypt_sha256": "$bcrypt-sha256$v=2,t=2b,r=4$LL610FiG2WG16K.Ky1dyae$ulKMYBl0DViDK3Tl1sKtz9PvUkhMfqO",
    "bcrypt_2b": "$2b$04$4zWq3Mi9dpFuexqdX4SKuu5WV5m1Gg4c4OPQzWoWCLfOzo.09zhD.",
    # $2a$ / $2y$ compute the same digest as $2b$ for a short ASCII password
    # (PHP's password_hash writes $2y$; old Python / Node apps wrote $2a$).
    "bcrypt_2a": "$2a$04$4zWq3Mi9dpFuexqdX4SKuu5WV5m1Gg4c4OPQzWoWCLfOzo.09zhD.",
    "bcrypt_2y": "$2y$04$4zWq3Mi9dpFuexqdX4SKuu5WV5m1Gg4c4OPQzWoWCLfOzo.09zhD.",
    "scrypt": "$scrypt$ln=4,r=8,p=1$NQaAUAoBAADgHMPYG0OoFQ$A5Mp3YP9E2WT6MmUdds9lQa1eYONtKq2ri4G2rgbfjw",
    "argon2i": "$argon2i$v=19$m=1024,t=1,p=1$XAth7N1ba03J+X+PkTLGGA$BQhuSbCVXw1kf29niBxRVNdHol5/3zr2R1L1oei7kfE",
    "argon2id_weak": "$argon2id$v=19$m=1024,t=1,p=1$NEbjQU5Q2pqPxi9tPVwyQw$TfwhRkRvS1sfXPCPB3cfE5+CaY6sF4MQkLOjpVfZeq4",
}
MD5_CRYPT_HASH = "$1$RXr/3ZQ9$LAwzjpZ4QtFBtuX/Cdt5m0"


@pytest.fixture(scope="module")
def hasher() -> Argon2PasswordHasher:
    return Argon2PasswordHasher("owasp_minimum")


def legacy_bcrypt_hash(password: str) -> str:
    """How tests make a legacy hash: the bcrypt package directly, cheapest cost."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


# ------------------------------------------------------------------ hashing
def test_hash_is_argon2id_with_the_configured_parameters(hasher: Argon2PasswordHasher) -> None:
    password_hash = hasher.hash(PASSWORD)
    assert password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert hasher.verify(PASSWORD, password_hash)
    assert not hasher.verify("correct horsE", password_hash)
    assert hasher.hash(PASSWORD) != password_hash, "every hash has its own salt"


def test_default_preset_is_rfc_9106_low_memory() -> None:
    password_hash = Argon2PasswordHasher().hash(PASSWORD)
    assert password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


@pytest.mark.parametrize(
    "password",
    ["pässwörd", "パスワード", "🔑🔐 emoji", "mixed ASCII and ünïcödé", "\u0000nul inside"],
)
def test_unicode_passwords_round_trip(hasher: Argon2PasswordHasher, password: str) -> None:
    password_hash = hasher.hash(password)
    assert hasher.verify(password, password_hash)
    assert not hasher.verify(password + "x", password_hash)


def test_unicode_normalisation_forms_are_different_passwords(
    hasher: Argon2PasswordHasher,
) -> None:
    # Documented: passwords are hashed as given (no NFKC), so a hash stays
    # compatible with every other passlib-compatible app.
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    password_hash = hasher.hash(composed)
    assert hasher.verify(composed, password_hash)
    assert not hasher.verify(decomposed, password_hash)


def test_empty_password_is_refused_on_hashing(hasher: Argon2PasswordHasher) -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        hasher.hash("")


def test_absurdly_long_password_is_refused_on_hashing(hasher: Argon2PasswordHasher) -> None:
    with pytest.raises(ValueError, match="at most 1024 bytes"):
        hasher.hash("a" * 1025)
    with pytest.raises(ValueError, match="at most 1024 bytes"):
        hasher.hash("é" * 513)  # 1026 bytes in UTF-8, 513 characters
    with pytest.raises(ValueError, match="at most 1024 bytes"):
        hasher.hash("a" * 1_000_000)


def test_lone_surrogate_and_non_text_are_refused_on_hashing(
    hasher: Argon2PasswordHasher,
) -> None:
    with pytest.raises(ValueError, match="lone surrogate"):
        hasher.hash("abc\ud800")
    not_text: Any = b"bytes"
    with pytest.raises(TypeError):
        hasher.hash(not_text)


# -------------------------------------------------- 72-byte limit of bcrypt
def test_upstream_bcrypt_and_libpass_raise_beyond_72_bytes() -> None:
    """Pinned upstream behaviour (bcrypt 5, libpass 1.9): both raise ValueError past 72 bytes.

    This is why Argon2PasswordHasher answers False itself before calling them.
    If this test starts failing, upstream changed and the guard can be revisited.
    """
    stored = legacy_bcrypt_hash("a" * 72)
    with pytest.raises(ValueError, match="72 bytes"):
        bcrypt.checkpw(b"a" * 73, stored.encode())
    with pytest.raises(ValueError, match="72 bytes"):
        CryptContext(schemes=["bcrypt"]).verify("a" * 73, stored)


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("a" * 72, True),  # the whole password is read
        ("a" * 73, False),  # bcrypt would read only 72: refused, never a ValueError
        ("a" * 1000, False),
    ],
)
def test_long_passwords_against_bcrypt(
    hasher: Argon2PasswordHasher, password: str, expected: bool
) -> None:
    stored = legacy_bcrypt_hash("a" * 72)
    assert hasher.verify(password, stored) is expected
    assert hasher.verify_and_update(password, stored)[0] is expected


def test_72_byte_limit_counts_utf8_bytes_not_characters(hasher: Argon2PasswordHasher) -> None:
    stored = legacy_bcrypt_hash("é" * 36)  # 72 bytes
    assert hasher.verify("é" * 36, stored)
    assert not hasher.verify("é" * 37, legacy_bcrypt_hash("é" * 36))  # 74 bytes


@pytest.mark.parametrize("size", [72, 73, 1000])
def test_long_passwords_against_argon2id_are_not_truncated(
    hasher: Argon2PasswordHasher, size: int
) -> None:
    password = "b" * size
    stored = hasher.hash(password)
    assert hasher.verify(password, stored)
    assert not hasher.verify(password[:-1], stored)
    assert not hasher.verify(password[:72], stored) or size == 72


def test_verifying_a_huge_password_costs_no_hash(hasher: Argon2PasswordHasher) -> None:
    stored = hasher.hash(PASSWORD)
    assert hasher.verify("x" * 10_000_000, stored) is False


# ------------------------------------------------------ garbage never raises
@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "x",
        "*" * 100,
        "$argon2id$garbage",
        "$argon2id$v=19$m=19456,t=2,p=1$short$short",
        "$2b$12$short",
        "$2b$04$" + "!" * 53,
        MD5_CRYPT_HASH,  # md5_crypt is not accepted by default
        "$unknown$scheme$hash",
        "\x00\x01\x02",
        "é" * 60,
    ],
)
def test_garbage_or_unknown_hashes_verify_false(hasher: Argon2PasswordHasher, garbage: str) -> None:
    assert hasher.verify(PASSWORD, garbage) is False
    assert hasher.verify_and_update(PASSWORD, garbage) == (False, None)
    assert hasher.needs_rehash(garbage) is True


def test_non_text_inputs_verify_false(hasher: Argon2PasswordHasher) -> None:
    stored = hasher.hash(PASSWORD)
    nothing: Any = None
    assert hasher.verify(PASSWORD, nothing) is False  # a NULL column
    assert hasher.verify(nothing, stored) is False
    assert hasher.verify(b"bytes", stored) is False  # type: ignore[arg-type]
    assert hasher.verify("", stored) is False
    assert hasher.verify("abc\ud800", stored) is False


def test_client_input_bcrypt_cannot_take_is_false_and_not_logged(
    hasher: Argon2PasswordHasher, caplog: pytest.LogCaptureFixture
) -> None:
    # libpass refuses NUL bytes for bcrypt (PasswordValueError) and bcrypt 5
    # raises past 72 bytes: both are the client's input, so False, quietly
    # (a warning per attempt would let anyone flood the logs).
    stored = legacy_bcrypt_hash("pass")
    with caplog.at_level(logging.WARNING, logger="backend_kit.security"):
        assert hasher.verify("pass\x00word", stored) is False
        assert hasher.verify("p" * 73, stored) is False
        assert hasher.verify_and_update("pass\x00", stored) == (False, None)
    assert caplog.records == []


def test_a_malformed_stored_hash_is_logged(
    hasher: Argon2PasswordHasher, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="backend_kit.security"):
        assert hasher.verify(PASSWORD, "$2b$04$" + "!" * 53) is False
    assert "could not be verified" in caplog.text or "unrecognised" in caplog.text


# ------------------------------------------------------ legacy and upgrades
def test_legacy_bcrypt_hash_is_upgraded_on_login(hasher: Argon2PasswordHasher) -> None:
    stored = legacy_bcrypt_hash(PASSWORD)
    assert hasher.needs_rehash(stored)
    matches, new_hash = hasher.verify_and_update(PASSWORD, stored)
    assert matches
    assert new_hash is not None
    assert new_hash.startswith("$argon2id$")
    assert hasher.verify(PASSWORD, new_hash)
    assert not hasher.needs_rehash(new_hash)
    assert hasher.verify_and_update(PASSWORD, new_hash) == (True, None)


def test_wrong_password_on_legacy_hash_gives_no_new_hash(hasher: Argon2PasswordHasher) -> None:
    assert hasher.verify_and_update("wrong", legacy_bcrypt_hash(PASSWORD)) == (False, None)


@pytest.mark.parametrize(("scheme", "stored"), sorted(FOREIGN_HASHES.items()))
def test_hashes_from_passlib_compatible_apps_verify_and_upgrade(
    hasher: Argon2PasswordHasher, scheme: str, stored: str
) -> None:
    assert hasher.verify(PASSWORD, stored), scheme
    assert not hasher.verify("not the password", stored)
    assert hasher.needs_rehash(stored)
    matches, new_hash = hasher.verify_and_update(PASSWORD, stored)
    assert matches
    assert new_hash is not None
    assert new_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_more_legacy_schemes_can_be_accepted_explicitly() -> None:
    hasher = Argon2PasswordHasher("owasp_minimum", legacy_schemes=("md5_crypt",))
    assert hasher.verify(PASSWORD, MD5_CRYPT_HASH)
    assert hasher.verify_and_update(PASSWORD, MD5_CRYPT_HASH)[1] is not None
    # ... and only those: bcrypt is no longer accepted by this hasher.
    assert not hasher.verify(PASSWORD, FOREIGN_HASHES["bcrypt_2b"])


def test_unknown_legacy_scheme_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown password hash scheme"):
        Argon2PasswordHasher("owasp_minimum", legacy_schemes=("no_such_scheme",))


def test_needs_rehash_after_a_parameter_change(hasher: Argon2PasswordHasher) -> None:
    stored = hasher.hash(PASSWORD)
    stronger = Argon2PasswordHasher(
        Argon2Parameters(memory_cost=19_456, time_cost=3, parallelism=1)
    )
    assert not hasher.needs_rehash(stored)
    assert stronger.needs_rehash(stored)
    matches, new_hash = stronger.verify_and_update(PASSWORD, stored)
    assert matches
    assert new_hash is not None
    assert new_hash.startswith("$argon2id$v=19$m=19456,t=3,p=1$")
    assert not stronger.needs_rehash(new_hash)
    # More memory is a parameter change too.
    assert Argon2PasswordHasher(
        Argon2Parameters(memory_cost=32_768, time_cost=2, parallelism=1)
    ).needs_rehash(stored)


# ------------------------------------------------------------- parameters
@pytest.mark.parametrize(
    ("memory_cost", "time_cost"),
    [(47_104, 1), (19_456, 2), (12_288, 3), (9_216, 4), (7_168, 5), (65_536, 3)],
)
def test_owasp_rows_and_stronger_are_accepted(memory_cost: int, time_cost: int) -> None:
    Argon2Parameters(memory_cost=memory_cost, time_cost=time_cost, parallelism=1)


@pytest.mark.parametrize(
    ("memory_cost", "time_cost"),
    [(19_456, 1), (47_103, 1), (12_288, 2), (7_167, 5), (4_096, 10), (65_536, 0)],
)
def test_parameters_below_the_owasp_minimum_are_refused(memory_cost: int, time_cost: int) -> None:
    with pytest.raises(ConfigurationError, match="OWASP"):
        Argon2Parameters(memory_cost=memory_cost, time_cost=time_cost, parallelism=1)


def test_other_parameter_floors() -> None:
    with pytest.raises(ConfigurationError, match="parallelism"):
        Argon2Parameters(memory_cost=65_536, time_cost=3, parallelism=0)
    with pytest.raises(ConfigurationError, match="16 bytes"):
        Argon2Parameters(memory_cost=65_536, time_cost=3, parallelism=1, salt_len=8)
    with pytest.raises(ConfigurationError, match="16 bytes"):
        Argon2Parameters(memory_cost=65_536, time_cost=3, parallelism=1, hash_len=8)
    with pytest.raises(ConfigurationError, match="max_password_bytes"):
        Argon2PasswordHasher("owasp_minimum", max_password_bytes=10)


def test_presets() -> None:
    rfc = Argon2Parameters.preset("rfc_9106_low_memory")
    owasp = Argon2Parameters.preset("owasp_minimum")
    assert (rfc.memory_cost, rfc.time_cost, rfc.parallelism) == (65_536, 3, 4)
    assert (owasp.memory_cost, owasp.time_cost, owasp.parallelism) == (19_456, 2, 1)
    assert rfc is Argon2Parameters.RFC_9106_LOW_MEMORY
    with pytest.raises(ConfigurationError, match="unknown Argon2 preset"):
        Argon2Parameters.preset("fast")  # type: ignore[arg-type]


# ----------------------------------------------------------- dummy verify
def test_dummy_verify_runs_one_real_verification(
    hasher: Argon2PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    context = hasher._context
    real_verify = context.verify

    def counting_verify(secret: str, stored: str, **kwargs: Any) -> bool:
        calls.append(stored)
        result: bool = real_verify(secret, stored, **kwargs)
        return result

    monkeypatch.setattr(context, "verify", counting_verify)
    hasher.dummy_verify()
    hasher.dummy_verify()
    assert len(calls) == 2
    assert calls[0] == calls[1]  # the throwaway hash is made once
    assert calls[0].startswith("$argon2id$v=19$m=19456,t=2,p=1$")


# ------------------------------------------------------- manager delegates
def test_argon2_hasher_satisfies_the_protocol(hasher: Argon2PasswordHasher) -> None:
    assert isinstance(hasher, PasswordHasher)


def test_manager_uses_a_custom_hasher() -> None:
    class PlainHasher:
        """Test double: stores the password reversed. Never do this."""

        def hash(self, password: str) -> str:
            return "rev$" + password[::-1]

        def verify(self, password: str, password_hash: str) -> bool:
            return password_hash == self.hash(password)

        def needs_rehash(self, password_hash: str) -> bool:
            return not password_hash.startswith("rev$")

        def verify_and_update(self, password: str, password_hash: str) -> tuple[bool, str | None]:
            return self.verify(password, password_hash), None

        def dummy_verify(self) -> None:
            return None

    security = SecurityManager(secret_key=SECRET, password_hasher=PlainHasher())
    assert security.hash_password("abc") == "rev$cba"
    assert security.verify_password("abc", "rev$cba")
    assert security.needs_rehash("other")
    assert security.verify_and_update("abc", "rev$cba") == (True, None)


def test_manager_password_api(manager: SecurityManager) -> None:
    stored = manager.hash_password(PASSWORD)
    assert manager.verify_password(PASSWORD, stored)
    assert not manager.needs_rehash(stored)
    assert manager.verify_and_update(PASSWORD, legacy_bcrypt_hash(PASSWORD))[1] is not None
    manager.dummy_verify()
