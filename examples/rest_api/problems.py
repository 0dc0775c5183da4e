"""Every error as an RFC 9457 problem document (``application/problem+json``).

One shape for every failure a client can see: invalid input (422), a bad or
missing token (401), a duplicate email (409), too many requests (429), an
unknown route (404), and a crash (500). Documents carry a ``type``, a
``title``, the ``status`` and a ``detail`` written for the client; never a
stack trace, a file path, SQL, a password or a token. What went wrong inside
is logged for operators (logger ``examples.rest_api``), not sent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend_kit.errors import (
    BackendKitError,
    DuplicateEmailError,
    RateLimitExceededError,
    TokenError,
    UserNotFoundError,
    UserValidationError,
)

__all__ = [
    "PROBLEM_JSON",
    "InvalidParam",
    "Problem",
    "ProblemOnCrashMiddleware",
    "install_problem_handlers",
    "problem_response",
    "problem_type",
]

logger = logging.getLogger("examples.rest_api")

PROBLEM_JSON = "application/problem+json"
#: ``WWW-Authenticate`` for a missing token (RFC 6750, section 3).
BEARER_CHALLENGE = 'Bearer realm="backend-kit-examples"'


def problem_type(slug: str) -> str:
    """The ``type`` URI of one of this API's problems.

    RFC 9457 wants a URI that identifies the problem type; a ``tag:`` URI
    (RFC 4151) is stable and does not pretend to be a page that can be fetched.
    """
    return f"tag:backend-kit.example,2026:problems/{slug}"


class InvalidParam(BaseModel):
    """One invalid part of a request (the ``errors`` extension member)."""

    model_config = ConfigDict(extra="forbid")

    detail: str = Field(description="What is wrong with it, without echoing the value.")
    pointer: str | None = Field(
        default=None, description="JSON Pointer (RFC 6901) into the request body, as '#/email'."
    )
    parameter: str | None = Field(default=None, description="Query, path or header parameter.")


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        default="about:blank", description="URI identifying the problem type (RFC 9457, 3.1.1)."
    )
    title: str = Field(description="Short summary of the problem type.")
    status: int = Field(ge=400, le=599, description="The HTTP status code.")
    detail: str | None = Field(
        default=None, description="What happened in this occurrence, for the client."
    )
    errors: list[InvalidParam] | None = Field(
        default=None, description="The invalid parts of the request (422 only)."
    )


def problem_response(
    status: int,
    *,
    detail: str | None = None,
    type_: str = "about:blank",
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    errors: Sequence[InvalidParam] = (),
) -> JSONResponse:
    """A ``application/problem+json`` response.

    With ``type_="about:blank"`` the title is the HTTP status phrase, as
    RFC 9457 (section 4.2.1) asks.
    """
    body: dict[str, Any] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = [error.model_dump(exclude_none=True) for error in errors]
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON
    )


def _invalid_param(location: Sequence[int | str], message: str) -> InvalidParam:
    """Turn a FastAPI/Pydantic error location into a pointer or a parameter name."""
    where, *path = location or ("body",)
    if where == "body":
        pointer = "#" + "".join(
            f"/{str(part).replace('~', '~0').replace('/', '~1')}" for part in path
        )
        return InvalidParam(detail=message, pointer=pointer)
    name = ".".join(str(part) for part in path) or str(where)
    return InvalidParam(detail=message, parameter=name)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this type only
    # Only the location and the message: Pydantic's "input" member would
    # echo what the client sent, password included.
    errors = [
        _invalid_param(error.get("loc", ()), str(error.get("msg", "is invalid")))
        for error in exc.errors()
    ]
    return problem_response(
        422,
        type_=problem_type("invalid-request"),
        title="Your request is not valid",
        detail="One or more fields are invalid; see errors.",
        errors=errors,
    )


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for this type only
    phrase = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if exc.detail != phrase else None
    headers = dict(exc.headers or {})
    if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        headers["Allow"] = _allowed_methods(request)
    return problem_response(exc.status_code, detail=detail, headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves on this path.

    Starlette's router answers 405 with the ``Allow`` of the first route that
    matched the path only; with ``GET /v1/users`` and ``POST /v1/users`` as two
    routes, that would be one method short (schemathesis found it).
    """
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        route_methods = getattr(route, "methods", None)
        if match is not Match.NONE and route_methods:
            methods |= set(route_methods)
    return ", ".join(sorted(methods))


# Fields of UserValidationError that come from a request body; the others
# ("limit", "after") are query parameters.
_BODY_FIELDS = frozenset({"email", "name", "password"})


async def _on_user_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UserValidationError)  # noqa: S101 - registered for this type only
    field = exc.field
    # backend_kit's messages name the field and the rule, never the value.
    if field in _BODY_FIELDS:
        error = InvalidParam(detail=str(exc), pointer=f"#/{field}")
    else:
        error = InvalidParam(detail=str(exc), parameter=field)
    return problem_response(
        422,
        type_=problem_type("invalid-request"),
        title="Your request is not valid",
        detail="One or more fields are invalid; see errors.",
        errors=[error],
    )


async def _on_duplicate_email(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(
        409,
        type_=problem_type("duplicate-email"),
        title="Email already registered",
        detail="A user with this email already exists.",
    )


async def _on_user_not_found(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(404, detail="No user has this id.")


async def _on_token_error(request: Request, exc: Exception) -> JSONResponse:
    # TokenError messages are written to be shown to clients ("token has expired").
    description = str(exc).replace('"', "'")
    return problem_response(
        401,
        type_=problem_type("invalid-token"),
        title="Invalid token",
        detail=str(exc),
        headers={
            "WWW-Authenticate": f'{BEARER_CHALLENGE}, error="invalid_token", '
            f'error_description="{description}"'
        },
    )


async def _on_rate_limited(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimitExceededError)  # noqa: S101 - registered for this type only
    seconds = max(1, int(-(-exc.retry_after // 1)))
    return problem_response(
        429,
        type_=problem_type("rate-limited"),
        title="Too many requests",
        detail=f"Too many requests from this client; retry in {seconds} s.",
        headers={"Retry-After": str(seconds)},
    )


async def _on_backend_kit_error(request: Request, exc: Exception) -> JSONResponse:
    # Any other library error is a dependency in trouble (a pool exhausted, a
    # revocation store unreachable): the client may retry later.
    logger.error("dependency failure while serving %s: %r", request.url.path, exc)
    return problem_response(
        503, detail="A service this API depends on is unavailable; try again later."
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Register the problem+json handlers and the crash middleware on ``app``."""
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(UserValidationError, _on_user_validation)
    app.add_exception_handler(DuplicateEmailError, _on_duplicate_email)
    app.add_exception_handler(UserNotFoundError, _on_user_not_found)
    app.add_exception_handler(TokenError, _on_token_error)
    app.add_exception_handler(RateLimitExceededError, _on_rate_limited)
    app.add_exception_handler(BackendKitError, _on_backend_kit_error)
    app.add_middleware(ProblemOnCrashMiddleware)


class ProblemOnCrashMiddleware:
    """Answer an unhandled exception with a bare 500 problem, and log it with its traceback.

    A pure ASGI middleware, so the traceback reaches the log and never the
    client. If the response had already started, the error is re-raised for
    the server to close the connection (a half-sent body cannot be replaced).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("unhandled error while serving %s %s", scope["method"], scope["path"])
            if started:
                raise
            response = problem_response(
                500, detail="The server could not complete the request. The error was logged."
            )
            await response(scope, receive, send)
