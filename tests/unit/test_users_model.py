"""User, NewUser and the input rules: normalization, errors that name the field, no leaks."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from backend_kit.errors import UserError
from backend_kit.users import (
    NewUser,
    User,
    UserCredentials,
    UserPage,
    UserValidationError,
    normalize_email,
)
from backend_kit.users._cursor import decode_cursor, encode_cursor

SECRET = "correct horse battery staple"
CREATED = datetime(2026, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)


def test_new_user_normalizes_email_and_name_and_keeps_password_exactly() -> None:
    new = NewUser("  Ada.Lovelace@Example.COM\t", "  Ada Lovelace ", "  spaced password  ")
    assert new.email == "ada.lovelace@example.com"
    assert new.name == "Ada Lovelace"
    assert new.password == "  spaced password  "


def test_new_user_repr_never_shows_the_password() -> None:
    new = NewUser("ada@example.com", "Ada", SECRET)
    assert SECRET not in repr(new)
    assert SECRET not in str(new)
    assert "ada@example.com" in repr(new)


def test_email_normalization_is_unicode_aware() -> None:
    # NFC: "é" typed as e + combining accent equals the precomposed one.
    assert normalize_email("Ze\u0301lie@Example.com") == normalize_email("Z\u00e9lie@example.com")
    assert NewUser("ZÉLIE@exemple.fr", "Zélie", SECRET).email == "zélie@exemple.fr"
    assert NewUser("user@bücher.de", "B", SECRET).email == "user@bücher.de"


@pytest.mark.parametrize(
    "email",
    [
        "",
        "   ",
        "plainaddress",
        "@example.com",
        "ada@",
        "ada@localhost",
        "ada@@example.com",
        "a@b@example.com",
        "ada lovelace@example.com",
        "ada@exa mple.com",
        "ada@example..com",
        "ada@.example.com",
        "ada@-example.com",
        "ada@example.com-",
        "ada@exa_mple.com",
        "ada\n@example.com",
        "ada\x00@example.com",
        '{"$gt": ""}',
        "'; DROP TABLE users; --",
        "a" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
    ],
)
def test_bad_emails_are_refused_naming_the_field(email: str) -> None:
    with pytest.raises(UserValidationError) as raised:
        NewUser(email, "Ada", SECRET)
    assert raised.value.field == "email"
    assert str(raised.value).startswith("email: ")
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize("value", [None, 42, {"$gt": ""}, ["ada@example.com"], b"ada@example.com"])
def test_non_string_email_is_refused(value: object) -> None:
    with pytest.raises(UserValidationError) as raised:
        NewUser(value, "Ada", SECRET)  # type: ignore[arg-type]  # as decoded JSON could be
    assert raised.value.field == "email"
    assert str(raised.value) == "email: must be a string"


@pytest.mark.parametrize(
    "email", ["o'hara@example.com", "$where@example.com", "a+tag@example.co.uk"]
)
def test_unusual_but_legal_emails_are_accepted_verbatim(email: str) -> None:
    assert NewUser(email, "Ada", SECRET).email == email


@pytest.mark.parametrize(
    "name", ["", "   ", "x" * 201, "bad\nname", "nul\x00", "bell\x07", None, 7]
)
def test_bad_names_are_refused_naming_the_field(name: object) -> None:
    with pytest.raises(UserValidationError) as raised:
        NewUser("ada@example.com", name, SECRET)  # type: ignore[arg-type]
    assert raised.value.field == "name"
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize(
    "name", ["'; DROP TABLE users; --", "$where", '{"$gt": ""}', "Ada 🚀", "x" * 200]
)
def test_hostile_names_are_kept_verbatim(name: str) -> None:
    assert NewUser("ada@example.com", name, SECRET).name == name


@pytest.mark.parametrize("password", ["", "short", "1234567", "x" * 1025, "y" * 100_000])
def test_bad_passwords_are_refused_without_echoing_them(password: str) -> None:
    with pytest.raises(UserValidationError) as raised:
        NewUser("ada@example.com", "Ada", password)
    error = raised.value
    assert error.field == "password"
    assert isinstance(error, ValueError)
    assert isinstance(error, UserError)
    if password:
        assert password not in str(error)
        assert password not in repr(error)
        assert all(password not in str(arg) for arg in error.args)


def test_non_string_password_is_refused() -> None:
    with pytest.raises(UserValidationError) as raised:
        NewUser("ada@example.com", "Ada", 12345678)  # type: ignore[arg-type]
    assert raised.value.field == "password"


def test_password_limits_are_inclusive() -> None:
    assert NewUser("ada@example.com", "Ada", "x" * 8).password == "x" * 8
    assert NewUser("ada@example.com", "Ada", "x" * 1024).password == "x" * 1024


def test_new_user_is_frozen() -> None:
    new = NewUser("ada@example.com", "Ada", SECRET)
    with pytest.raises(dataclasses.FrozenInstanceError):
        new.email = "eve@example.com"  # type: ignore[misc]


def test_user_carries_no_password_hash_in_any_serialization() -> None:
    user = User(id="u1", email="ada@example.com", name="Ada", created_at=CREATED)
    assert [f.name for f in dataclasses.fields(User)] == ["id", "email", "name", "created_at"]
    assert user.to_dict() == {
        "id": "u1",
        "email": "ada@example.com",
        "name": "Ada",
        "created_at": "2026-03-01T12:30:45.123456+00:00",
    }
    json.dumps(user.to_dict())  # JSON-ready as is


def test_user_to_dict_reports_utc_whatever_the_zone() -> None:
    paris = timezone(timedelta(hours=1))
    user = User(id="u1", email="a@b.co", name="A", created_at=CREATED.astimezone(paris))
    assert user.to_dict()["created_at"] == "2026-03-01T12:30:45.123456+00:00"


def test_credentials_hide_the_hash_from_repr_but_keep_it() -> None:
    user = User(id="u1", email="ada@example.com", name="Ada", created_at=CREATED)
    credentials = UserCredentials(user, "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA")
    assert "argon2id" not in repr(credentials)
    assert credentials.password_hash.startswith("$argon2id$")


def test_page_to_dict() -> None:
    user = User(id="u1", email="ada@example.com", name="Ada", created_at=CREATED)
    page = UserPage((user,), "abc")
    assert page.to_dict() == {"users": [user.to_dict()], "next_cursor": "abc"}


def test_cursor_round_trips_and_is_url_safe() -> None:
    cursor = encode_cursor(CREATED, "00000000-0000-4000-8000-000000000001")
    assert decode_cursor(cursor) == (CREATED, "00000000-0000-4000-8000-000000000001")
    assert all(ch.isalnum() or ch in "-_" for ch in cursor)


def test_cursor_keeps_microseconds_and_normalizes_the_zone() -> None:
    eastern = timezone(timedelta(hours=-5))
    created_at, _ = decode_cursor(encode_cursor(CREATED.astimezone(eastern), "x"))
    assert created_at == CREATED
    assert created_at.tzinfo == UTC


@pytest.mark.parametrize("cursor", [None, 5, "", "###", "e30", "W10"])
def test_foreign_cursor_is_refused_naming_after(cursor: object) -> None:
    with pytest.raises(UserValidationError) as raised:
        decode_cursor(cursor)
    assert raised.value.field == "after"
