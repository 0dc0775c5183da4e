"""Refresh tokens: rotation, reuse detection revoking the family, logout, revocation."""

from __future__ import annotations

import logging

import pytest

from backend_kit.errors import ExpiredTokenError, InvalidTokenError, RevokedTokenError
from backend_kit.security import SecurityManager, TokenPair
from tests.unit.security.conftest import FakeClock


def test_create_refresh_token_and_refresh(manager: SecurityManager) -> None:
    refresh_token = manager.create_refresh_token("user-42")
    pair = manager.refresh(refresh_token)
    assert isinstance(pair, TokenPair)
    access, new_refresh = pair  # unpacks as (access, refresh)
    claims = manager.decode_access_token(access)
    assert claims["sub"] == "user-42"
    assert claims["type"] == "access"
    assert new_refresh != refresh_token


def test_refresh_lifetime_and_extra_claims(manager: SecurityManager, clock: FakeClock) -> None:
    pair = manager.create_token_pair({"sub": "user-42", "roles": ["reader"]})
    assert manager.decode_access_token(pair.access_token)["roles"] == ["reader"]
    clock.advance(24 * 3600)  # the access token is long expired, the refresh token is not
    with pytest.raises(ExpiredTokenError):
        manager.decode_access_token(pair.access_token)
    refreshed = manager.refresh(pair.refresh_token, extra_claims={"roles": ["writer"]})
    claims = manager.decode_access_token(refreshed.access_token)
    assert claims["roles"] == ["writer"]
    assert claims["sub"] == "user-42"
    clock.advance(14 * 24 * 3600 + 31)  # 14 days by default
    with pytest.raises(ExpiredTokenError):
        manager.refresh(refreshed.refresh_token)


def test_extra_claims_cannot_set_reserved_claims(manager: SecurityManager) -> None:
    refresh_token = manager.create_refresh_token("user-42")
    with pytest.raises(ValueError, match="set by SecurityManager"):
        manager.refresh(refresh_token, extra_claims={"type": "refresh"})


def test_rotation_chain(manager: SecurityManager) -> None:
    pair = manager.create_token_pair({"sub": "user-42"})
    for _ in range(5):
        pair = manager.refresh(pair.refresh_token)
        assert manager.decode_access_token(pair.access_token)["sub"] == "user-42"


def test_reused_refresh_token_revokes_the_whole_family(
    manager: SecurityManager, caplog: pytest.LogCaptureFixture
) -> None:
    first = manager.create_token_pair({"sub": "user-42"})
    second = manager.refresh(first.refresh_token)  # the legitimate client rotates
    third = manager.refresh(second.refresh_token)
    other_session = manager.create_token_pair({"sub": "user-42"})
    # An attacker replays the stolen, already-used first refresh token.
    with (
        caplog.at_level(logging.WARNING, logger="backend_kit.security"),
        pytest.raises(RevokedTokenError, match="already used"),
    ):
        manager.refresh(first.refresh_token)
    assert "reuse detected" in caplog.text
    assert first.refresh_token not in caplog.text
    # Every token of that family is dead: refresh tokens and access tokens alike.
    for token in (second.refresh_token, third.refresh_token):
        with pytest.raises(RevokedTokenError):
            manager.refresh(token)
    for token in (first.access_token, second.access_token, third.access_token):
        with pytest.raises(RevokedTokenError):
            manager.decode_access_token(token)
    # Other sessions of the same user are untouched.
    assert manager.decode_access_token(other_session.access_token)["sub"] == "user-42"
    assert manager.refresh(other_session.refresh_token)


def test_refresh_token_from_create_refresh_token_has_a_family(manager: SecurityManager) -> None:
    refresh_token = manager.create_refresh_token("user-42")
    pair = manager.refresh(refresh_token)
    with pytest.raises(RevokedTokenError):
        manager.refresh(refresh_token)
    with pytest.raises(RevokedTokenError):
        manager.decode_access_token(pair.access_token)


def test_logout_revokes_the_family(manager: SecurityManager) -> None:
    pair = manager.create_token_pair({"sub": "user-42"})
    manager.revoke(pair.refresh_token, family=True)
    with pytest.raises(RevokedTokenError):
        manager.refresh(pair.refresh_token)
    with pytest.raises(RevokedTokenError):
        manager.decode_access_token(pair.access_token)


def test_revoking_one_access_token_leaves_its_family_alone(manager: SecurityManager) -> None:
    pair = manager.create_token_pair({"sub": "user-42"})
    manager.revoke(pair.access_token)
    with pytest.raises(RevokedTokenError):
        manager.decode_access_token(pair.access_token)
    assert manager.refresh(pair.refresh_token)


def test_revoke_edge_cases(manager: SecurityManager, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="needs the token"):
        manager.revoke("some-jti", family=True)
    with pytest.raises(ValueError, match="token or a jti"):
        manager.revoke("")
    expired = manager.create_access_token({"sub": "u"})
    clock.advance(3600)
    manager.revoke(expired)  # already unusable: accepted, nothing stored
    with pytest.raises(InvalidTokenError):
        manager.revoke("a.b.c")


def test_revocation_lasts_until_expiry_plus_leeway(clock: FakeClock) -> None:
    security = SecurityManager(secret_key="k" * 40, clock=clock)
    token = security.create_access_token({"sub": "u"})
    jti = security.decode_access_token(token)["jti"]
    security.revoke(token)
    store = security.revocation_store
    clock.advance(15 * 60 + 29)
    assert store.is_revoked(f"jti:{jti}")  # still inside the leeway window
    clock.advance(2)
    assert not store.is_revoked(f"jti:{jti}")  # forgotten once the token is refused anyway


async def test_async_refresh_and_revoke(manager: SecurityManager) -> None:
    pair = manager.create_token_pair({"sub": "user-42"})
    rotated = await manager.arefresh(pair.refresh_token)
    assert (await manager.adecode_access_token(rotated.access_token))["sub"] == "user-42"
    with pytest.raises(RevokedTokenError):
        await manager.arefresh(pair.refresh_token)
    with pytest.raises(RevokedTokenError):
        await manager.adecode_access_token(rotated.access_token)
    fresh = manager.create_token_pair({"sub": "user-42"})
    await manager.arevoke(fresh.access_token)
    with pytest.raises(RevokedTokenError):
        await manager.adecode_access_token(fresh.access_token)
    await manager.arevoke(fresh.refresh_token, family=True)
    with pytest.raises(RevokedTokenError):
        await manager.arefresh(fresh.refresh_token)
