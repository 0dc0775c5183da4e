"""The REST example, driven in-process through httpx's ASGITransport.

Every test runs twice (see ``conftest.settings``): on embedded defaults and on
PostgreSQL, Redis and RabbitMQ.
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from examples.common import Settings
from examples.rest_api import create_app
from fastapi import FastAPI

from backend_kit.errors import PublishTimeoutError
from backend_kit.security import SecurityManager
from tests.examples.conftest import JWT_SECRET, app_state, eventually, running

PASSWORD = "correct horse battery staple"
PROBLEM_JSON = "application/problem+json"


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with ``status``, and leaks nothing internal."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["type"], str)
    assert body["type"]
    text = response.text
    for leak in ("Traceback", 'File "', ".py", "SELECT", "INSERT", "sqlalchemy", PASSWORD):
        assert leak not in text
    return body


async def sign_up(
    client: httpx.AsyncClient, email: str = "ada@example.com", name: str = "Ada Lovelace"
) -> dict[str, Any]:
    response = await client.post(
        "/v1/users", json={"email": email, "name": name, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(client: httpx.AsyncClient, email: str = "ada@example.com") -> dict[str, Any]:
    response = await client.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ------------------------------------------------------------------ sign-up
async def test_create_user_returns_201_with_the_user_and_no_secret(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/v1/users",
        json={"email": "Ada@Example.com", "name": "Ada Lovelace", "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "email", "name", "created_at"}
    assert body["email"] == "ada@example.com"  # normalized by NewUser
    assert body["name"] == "Ada Lovelace"
    assert response.headers["location"] == f"/v1/users/{body['id']}"
    assert "password" not in response.text
    assert "argon2" not in response.text
    # The public route is rate limited and says how much is left.
    assert int(response.headers["ratelimit-remaining"]) >= 0
    assert "ratelimit-policy" in response.headers


async def test_duplicate_email_is_a_409_problem_whatever_the_case(
    client: httpx.AsyncClient,
) -> None:
    await sign_up(client, "grace@example.com")
    response = await client.post(
        "/v1/users",
        json={"email": "GRACE@example.com", "name": "Another Grace", "password": PASSWORD},
    )
    body = assert_problem(response, 409)
    assert body["type"].endswith("duplicate-email")
    assert "grace" not in response.text.lower()  # the email is not echoed back either


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"name": "No Email", "password": PASSWORD}, "#/email"),
        ({"email": "not-an-email", "name": "X", "password": PASSWORD}, "#/email"),
        ({"email": "short@example.com", "name": "X", "password": "short"}, "#/password"),
        ({"email": "name@example.com", "name": "", "password": PASSWORD}, "#/name"),
        (
            {"email": "extra@example.com", "name": "X", "password": PASSWORD, "admin": True},
            "#/admin",
        ),
        # Passes the model's pattern, refused by backend_kit's NewUser rules.
        ({"email": "a@-bad-.example.com", "name": "X", "password": PASSWORD}, "#/email"),
    ],
)
async def test_invalid_input_is_a_422_problem_naming_the_field(
    client: httpx.AsyncClient, payload: dict[str, Any], where: str
) -> None:
    response = await client.post("/v1/users", json=payload)
    body = assert_problem(response, 422)
    pointers = [error.get("pointer") for error in body["errors"]]
    assert where in pointers
    for error in body["errors"]:
        assert set(error) <= {"detail", "pointer", "parameter"}
        assert "input" not in error


async def test_malformed_json_is_a_422_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/users", content=b'{"email": ', headers={"content-type": "application/json"}
    )
    assert_problem(response, 422)


@pytest.mark.parametrize(
    "password_json",
    [
        '"\\ud800 a lone surrogate"',  # JSON may escape one; the hasher refuses it
        '"' + "\u00e9" * 600 + '"',  # 600 characters (allowed) but 1200 UTF-8 bytes
    ],
)
async def test_a_password_the_hasher_refuses_is_a_422_problem_not_a_500(
    client: httpx.AsyncClient, password_json: str
) -> None:
    content = f'{{"email": "odd@example.com", "name": "Odd", "password": {password_json}}}'
    response = await client.post(
        "/v1/users", content=content.encode(), headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 422)
    assert [error.get("pointer") for error in body["errors"]] == ["#/password"]


async def test_hostile_strings_are_stored_verbatim(client: httpx.AsyncClient) -> None:
    name = "Robert'); DROP TABLE users; --"
    user = await sign_up(client, "bobby@example.com", name)
    assert user["name"] == name
    tokens = await login(client, "bobby@example.com")
    listed = await client.get("/v1/users", headers=bearer(tokens["access_token"]))
    assert [u["name"] for u in listed.json()["users"]] == [name]


# ------------------------------------------------------------- login, tokens
async def test_login_then_list_users_with_cursor_pagination(client: httpx.AsyncClient) -> None:
    emails = [f"user{i}@example.com" for i in range(3)]
    for email in emails:
        await sign_up(client, email, email.split("@")[0])
    tokens = await login(client, emails[0])
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 15 * 60

    seen: list[str] = []
    after: str | None = None
    for _ in range(5):
        params: dict[str, str | int] = {"limit": 2}
        if after is not None:
            params["after"] = after
        response = await client.get(
            "/v1/users", params=params, headers=bearer(tokens["access_token"])
        )
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["users"]) <= 2
        seen += [user["email"] for user in page["users"]]
        after = page["next_cursor"]
        if after is None:
            break
    assert seen == emails  # sign-up order, each once


@pytest.mark.parametrize(
    ("params", "parameter"),
    [({"limit": 0}, "limit"), ({"limit": "ten"}, "limit"), ({"after": "not-a-cursor"}, "after")],
)
async def test_bad_paging_parameters_are_422_problems(
    client: httpx.AsyncClient, params: dict[str, str | int], parameter: str
) -> None:
    await sign_up(client)
    tokens = await login(client)
    response = await client.get("/v1/users", params=params, headers=bearer(tokens["access_token"]))
    body = assert_problem(response, 422)
    assert [error.get("parameter") for error in body["errors"]] == [parameter]


async def test_wrong_password_and_unknown_email_get_the_same_401(
    client: httpx.AsyncClient,
) -> None:
    await sign_up(client, "known@example.com")
    wrong = await client.post(
        "/v1/auth/token", json={"email": "known@example.com", "password": "not the password"}
    )
    unknown = await client.post(
        "/v1/auth/token", json={"email": "nobody@example.com", "password": PASSWORD}
    )
    wrong_body = assert_problem(wrong, 401)
    unknown_body = assert_problem(unknown, 401)
    assert wrong_body == unknown_body  # nothing tells which emails exist
    assert wrong.headers["www-authenticate"].startswith("Bearer")


def _expired_token(user_id: str) -> str:
    # The same key, with a clock an hour behind: the token expired 45 minutes ago.
    past = SecurityManager(secret_key=JWT_SECRET, clock=lambda: time.time() - 3600)
    return past.create_access_token({"sub": user_id}, expires_delta=timedelta(minutes=15))


@pytest.mark.parametrize(
    "case", ["missing", "basic-scheme", "garbage", "tampered", "refresh-as-access", "expired"]
)
async def test_protected_routes_refuse_bad_tokens_with_401(
    client: httpx.AsyncClient, case: str
) -> None:
    user = await sign_up(client)
    tokens = await login(client)
    access: str = tokens["access_token"]
    headers: dict[str, str] = {
        "missing": {},
        "basic-scheme": {"Authorization": "Basic YWRhOnB3"},
        "garbage": bearer("not.a.jwt"),
        "tampered": bearer(access[:-4] + ("AAAA" if not access.endswith("AAAA") else "BBBB")),
        "refresh-as-access": bearer(tokens["refresh_token"]),
        "expired": bearer(_expired_token(user["id"])),
    }[case]
    for path in ("/v1/users", f"/v1/users/{user['id']}"):
        response = await client.get(path, headers=headers)
        body = assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert access not in response.text
    if case == "expired":
        assert "expired" in body["detail"]
    if case not in ("missing", "basic-scheme"):
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_session(
    client: httpx.AsyncClient,
) -> None:
    await sign_up(client)
    first = await login(client)
    rotated = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    ok = await client.get("/v1/users", headers=bearer(second["access_token"]))
    assert ok.status_code == 200

    reused = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert_problem(reused, 401)
    # Reuse means the token was copied: the whole session is revoked.
    revoked = await client.get("/v1/users", headers=bearer(second["access_token"]))
    assert_problem(revoked, 401)


async def test_logout_revokes_the_session(client: httpx.AsyncClient) -> None:
    await sign_up(client)
    tokens = await login(client)
    out = await client.post("/v1/auth/logout", headers=bearer(tokens["access_token"]))
    assert out.status_code == 204
    after = await client.get("/v1/users", headers=bearer(tokens["access_token"]))
    body = assert_problem(after, 401)
    assert "revoked" in body["detail"]
    refreshed = await client.post(
        "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert_problem(refreshed, 401)
    # A new login starts a new session.
    again = await login(client)
    assert (await client.get("/v1/users", headers=bearer(again["access_token"]))).status_code == 200


# ------------------------------------------------------------- rate limiting
async def test_public_routes_are_rate_limited_with_retry_after(settings: Settings) -> None:
    limited = dataclasses.replace(settings, public_rate_limit="2/minute")
    async with running(create_app(limited)) as client:
        payload = {"email": "nobody@example.com", "password": PASSWORD}
        first = await client.post("/v1/auth/token", json=payload)
        second = await client.post("/v1/auth/token", json=payload)
        assert [first.status_code, second.status_code] == [401, 401]
        third = await client.post("/v1/auth/token", json=payload)
        body = assert_problem(third, 429)
        retry_after = int(third.headers["retry-after"])
        assert 1 <= retry_after <= 60
        assert str(retry_after) in body["detail"]
        # Limits are per route: sign-up still has its own budget.
        assert (await client.post("/v1/users", json={})).status_code == 422


# ---------------------------------------------------------- problem documents
async def test_unknown_route_and_wrong_method_are_problems(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/nothing-here"), 404)
    assert_problem(await client.delete("/v1/users"), 405)
    # Unversioned API paths do not exist: the version is part of the contract.
    assert_problem(await client.get("/users"), 404)


async def test_an_unhandled_error_is_a_bare_500_problem(
    rest_app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sign_up(client)
    tokens = await login(client)

    async def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError('SELECT password_hash FROM users -- File "/srv/app/secret.py"')

    monkeypatch.setattr(app_state(rest_app).components.users, "list_users", crash)
    response = await client.get("/v1/users", headers=bearer(tokens["access_token"]))
    body = assert_problem(response, 500)
    assert set(body) == {"type", "title", "status", "detail"}
    assert "secret" not in response.text
    assert "RuntimeError" not in response.text


# ------------------------------------------------------- cache, events, health
async def test_reading_a_user_goes_through_the_cache(
    rest_app: FastAPI, client: httpx.AsyncClient
) -> None:
    user = await sign_up(client)
    tokens = await login(client)
    cache = app_state(rest_app).components.cache
    before = cache.stats()
    for _ in range(3):
        response = await client.get(
            f"/v1/users/{user['id']}", headers=bearer(tokens["access_token"])
        )
        assert response.status_code == 200
        assert response.json() == user
    after = cache.stats()
    assert after.misses - before.misses == 1
    assert after.hits - before.hits == 2
    missing = await client.get("/v1/users/no-such-id", headers=bearer(tokens["access_token"]))
    assert_problem(missing, 404)


async def test_sign_up_publishes_user_created_and_the_worker_sends_the_email(
    rest_app: FastAPI, client: httpx.AsyncClient
) -> None:
    user = await sign_up(client, "welcome@example.com")
    worker = app_state(rest_app).components.worker
    assert worker is not None

    def sent_to() -> list[str]:
        return [email.to for email in worker.mailer.sent]  # type: ignore[attr-defined]

    assert await eventually(lambda: "welcome@example.com" in sent_to())
    assert worker.handled == 1
    assert user["id"]


async def test_a_lost_event_does_not_fail_the_sign_up(
    rest_app: FastAPI,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broker_down(*args: object, **kwargs: object) -> None:
        raise PublishTimeoutError("no confirm within 5 s")

    monkeypatch.setattr(app_state(rest_app).components.bus, "publish_event", broker_down)
    user = await sign_up(client, "lost@example.com")  # stored: the client gets its 201
    assert any(
        record.levelname == "ERROR" and user["id"] in record.getMessage()
        for record in caplog.records
    )
    tokens = await login(client, "lost@example.com")
    assert tokens["access_token"]


async def test_health_probes(
    rest_app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    backends = app_state(rest_app).components.backends
    if settings.database_url is None:
        assert backends["database"].startswith("sqlite")
        assert backends["events"].startswith("memory")
    else:  # really on the services, not quietly on the embedded defaults
        assert backends["database"].startswith("postgresql")
        assert backends["cache"].startswith("redis://")
        assert backends["events"].startswith("amqp://")
        assert backends["token revocations"].startswith("redis://")
    live = await client.get("/health/live")
    assert live.status_code == 200
    assert live.headers["content-type"] == "application/health+json"
    assert live.json()["status"] == "pass"
    ready = await client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    report = ready.json()
    assert report["status"] == "pass"
    expected = {"database", "cache", "events"}
    if settings.redis_url is not None:
        expected.add("rate limits")
    assert set(report["checks"]) == expected
    assert all(entry[0]["status"] == "pass" for entry in report["checks"].values())


async def test_openapi_is_3_1_and_declares_problem_json(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) >= {"/v1/users", "/v1/auth/token", "/v1/auth/refresh"}
    create = document["paths"]["/v1/users"]["post"]["responses"]
    assert set(create["409"]["content"]) == {PROBLEM_JSON}
    assert set(create["422"]["content"]) == {PROBLEM_JSON}
    listing = document["paths"]["/v1/users"]["get"]
    assert listing["security"] == [{"HTTPBearer": []}]
    assert "HTTPValidationError" not in json.dumps(document)
