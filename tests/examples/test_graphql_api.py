"""The GraphQL example, in-process through ASGI, on embedded defaults and on the real services."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from examples.common import Settings
from examples.graphql_api import create_app
from examples.rest_api import create_app as create_rest_app

from tests.examples.conftest import running

PASSWORD = "correct horse battery staple"

CREATE = """
mutation Create($input: CreateUserInput!) {
  createUser(input: $input) { id email name createdAt }
}
"""
LOGIN = """
mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) { accessToken refreshToken expiresIn }
}
"""
USERS = "query Users($after: String) { users(limit: 2, after: $after) { users { id email name } nextCursor } }"


@pytest.fixture
async def graphql(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(settings)) as client:
        yield client


async def call(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


async def create(client: httpx.AsyncClient, email: str, name: str = "Ada") -> dict[str, Any]:
    body = await call(
        client, CREATE, {"input": {"email": email, "name": name, "password": PASSWORD}}
    )
    assert "errors" not in body, body
    user: dict[str, Any] = body["data"]["createUser"]
    return user


async def token_for(client: httpx.AsyncClient, email: str) -> str:
    body = await call(client, LOGIN, {"email": email, "password": PASSWORD})
    assert "errors" not in body, body
    token: str = body["data"]["login"]["accessToken"]
    return token


async def test_create_user_then_query_users_with_a_token(graphql: httpx.AsyncClient) -> None:
    ada = await create(graphql, "Ada@Example.com", "Ada Lovelace")
    assert ada["email"] == "ada@example.com"
    await create(graphql, "grace@example.com", "Grace Hopper")
    await create(graphql, "edsger@example.com", "Edsger Dijkstra")
    token = await token_for(graphql, "ada@example.com")

    first = await call(graphql, USERS, token=token)
    assert "errors" not in first, first
    page = first["data"]["users"]
    assert [u["email"] for u in page["users"]] == ["ada@example.com", "grace@example.com"]
    second = await call(graphql, USERS, {"after": page["nextCursor"]}, token=token)
    assert [u["email"] for u in second["data"]["users"]["users"]] == ["edsger@example.com"]
    assert second["data"]["users"]["nextCursor"] is None


@pytest.mark.parametrize("token", [None, "not.a.token", ""])
async def test_users_without_a_valid_token_is_unauthenticated(
    graphql: httpx.AsyncClient, token: str | None
) -> None:
    await create(graphql, "ada@example.com")
    body = await call(graphql, USERS, token=token)
    assert body["data"] is None
    assert codes(body) == ["UNAUTHENTICATED"]


async def test_a_rest_token_works_on_graphql(settings: Settings) -> None:
    # One SecurityManager key: the two apps accept each other's tokens.
    async with running(create_rest_app(settings)) as rest:
        signed_up = await rest.post(
            "/v1/users", json={"email": "ada@example.com", "name": "Ada", "password": PASSWORD}
        )
        assert signed_up.status_code == 201
        login = await rest.post(
            "/v1/auth/token", json={"email": "ada@example.com", "password": PASSWORD}
        )
        token = login.json()["access_token"]
    async with running(create_app(settings)) as graphql:
        body = await call(graphql, "{ users { users { email } } }", token=token)
    # Auth passed (the user list itself lives in the other app's in-memory
    # database on embedded defaults, and in the same PostgreSQL schema otherwise).
    assert "errors" not in body, body


async def test_create_user_errors_are_coded_and_never_echo_the_password(
    graphql: httpx.AsyncClient,
) -> None:
    await create(graphql, "ada@example.com")
    duplicate = await call(
        graphql,
        CREATE,
        {"input": {"email": "ADA@example.com", "name": "Ada", "password": PASSWORD}},
    )
    assert codes(duplicate) == ["EMAIL_TAKEN"]
    weak = await call(
        graphql, CREATE, {"input": {"email": "b@example.com", "name": "B", "password": "hunter2"}}
    )
    assert codes(weak) == ["BAD_USER_INPUT"]
    assert weak["errors"][0]["extensions"]["field"] == "password"
    assert "hunter2" not in str(weak)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("{ users(limit: 0) { nextCursor } }", "limit"),
        ('{ users(after: "not-a-cursor") { nextCursor } }', "after"),
    ],
)
async def test_bad_paging_arguments_are_bad_user_input(
    graphql: httpx.AsyncClient, query: str, field: str
) -> None:
    await create(graphql, "ada@example.com")
    token = await token_for(graphql, "ada@example.com")
    body = await call(graphql, query, token=token)
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == field


async def test_wrong_password_is_unauthenticated(graphql: httpx.AsyncClient) -> None:
    await create(graphql, "ada@example.com")
    body = await call(graphql, LOGIN, {"email": "ada@example.com", "password": "wrong password"})
    assert codes(body) == ["UNAUTHENTICATED"]


async def test_create_user_is_rate_limited(settings: Settings) -> None:
    limited = dataclasses.replace(settings, public_rate_limit="1/minute")
    async with running(create_app(limited)) as graphql:
        await create(graphql, "ada@example.com")
        body = await call(
            graphql,
            CREATE,
            {"input": {"email": "b@example.com", "name": "B", "password": PASSWORD}},
        )
    assert codes(body) == ["RATE_LIMITED"]
    assert body["errors"][0]["extensions"]["retryAfter"] >= 1


async def test_an_unexpected_error_is_masked(
    graphql: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create(graphql, "ada@example.com")
    token = await token_for(graphql, "ada@example.com")
    from backend_kit.users import UserService

    async def crash(self: UserService, *args: object, **kwargs: object) -> None:
        raise RuntimeError("SELECT * FROM users -- /srv/app/secret.py")

    monkeypatch.setattr(UserService, "list_users", crash)
    body = await call(graphql, USERS, token=token)
    assert [error["message"] for error in body["errors"]] == ["Unexpected error."]
    assert "SELECT" not in str(body)
    assert "secret" not in str(body)


async def test_only_unexpected_errors_reach_the_server_log(
    graphql: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="strawberry.execution")
    body = await call(graphql, USERS)  # no token: a coded answer, not a server failure
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert not [r for r in caplog.records if r.name == "strawberry.execution"]

    await create(graphql, "ada@example.com")
    token = await token_for(graphql, "ada@example.com")
    from backend_kit.users import UserService

    async def crash(self: UserService, *args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(UserService, "list_users", crash)
    await call(graphql, USERS, token=token)
    assert [r for r in caplog.records if r.name == "strawberry.execution"]


async def test_graphql_app_health(graphql: httpx.AsyncClient) -> None:
    ready = await graphql.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "pass"
