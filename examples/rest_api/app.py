"""The REST example: a FastAPI app wired only through backend_kit.

Routes (``/v1`` is the API version; health probes stay unversioned):

========================  ===============  ============================================
route                     access           what
========================  ===============  ============================================
``POST /v1/users``        public, limited  sign up; 201, 409 duplicate email, 422
``GET /v1/users``         bearer token     users, paginated with a cursor
``GET /v1/users/{id}``    bearer token     one user (a cached read)
``POST /v1/auth/token``   public, limited  email + password -> access + refresh tokens
``POST /v1/auth/refresh`` public, limited  rotate a refresh token
``POST /v1/auth/logout``  bearer token     revoke the session's tokens
``GET /health/live``      public           the process is up (no dependency checked)
``GET /health/ready``     public           every dependency answers
========================  ===============  ============================================

Every error is an RFC 9457 ``application/problem+json`` document
(:mod:`examples.rest_api.problems`). Start it with ``python -m examples.rest_api``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, cast

from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    status,
)
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

import backend_kit
from backend_kit.errors import EventBusError, UserNotFoundError
from backend_kit.users import NewUser, User
from examples.common import Components, Settings, open_components
from examples.rest_api.models import (
    RefreshRequest,
    TokenRequest,
    TokenResponse,
    UserCreate,
    UserPageResponse,
    UserResponse,
)
from examples.rest_api.problems import (
    BEARER_CHALLENGE,
    PROBLEM_JSON,
    Problem,
    install_problem_handlers,
)

__all__ = ["create_app"]

logger = logging.getLogger("examples.rest_api")

UserReader = Callable[[str], Awaitable[dict[str, str] | None]]


@dataclass(frozen=True, slots=True)
class AppState:
    """What the routes reach through ``request.app.state.backend_kit``."""

    components: Components
    read_user: UserReader


def _problem(description: str) -> dict[str, Any]:
    # Declared with the Problem model; _openapi() turns the media type into problem+json.
    return {"model": Problem, "description": description}


PROBLEMS_EVERYWHERE: dict[int | str, dict[str, Any]] = {
    422: _problem("The request is not valid (RFC 9457 problem with `errors`)."),
    500: _problem("Unexpected failure; nothing internal is disclosed."),
    503: _problem("A dependency is unavailable; retry later."),
}
PUBLIC: dict[int | str, dict[str, Any]] = {
    # Every public route takes a JSON body, so this is also where 400 lives.
    400: _problem("The body could not be read (not UTF-8 JSON)."),
    429: _problem("Rate limited; the `Retry-After` header says when to retry."),
}
AUTHENTICATED: dict[int | str, dict[str, Any]] = {
    401: _problem("Missing, invalid, expired or revoked bearer token."),
}


# ------------------------------------------------------------------ dependencies
def get_state(request: Request) -> AppState:
    """The app's components (built by the lifespan)."""
    return cast(AppState, request.app.state.backend_kit)


State = Annotated[AppState, Depends(get_state)]
_bearer = HTTPBearer(auto_error=False, description="An access token from POST /v1/auth/token.")


async def current_user_id(
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The ``sub`` of a valid access token, checked by ``SecurityManager``.

    Raises ``TokenError`` (turned into a 401 problem) for a bad, expired or
    revoked token, and a 401 when no bearer token was sent.
    """
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="A bearer token is required.",
            headers={"WWW-Authenticate": BEARER_CHALLENGE},
        )
    claims = await state.components.security.adecode_access_token(credentials.credentials)
    return str(claims["sub"])


CurrentUserId = Annotated[str, Depends(current_user_id)]


async def public_rate_limit(request: Request, response: Response, state: State) -> None:
    """Count this call against the client's limit on this route; 429 when over it.

    The client is the peer address. Behind a proxy, run uvicorn with
    ``--proxy-headers --forwarded-allow-ips=<proxy>`` so it is the real client.
    """
    components = state.components
    client = request.client.host if request.client else "unknown"
    key = f"public:{request.url.path}:{client}"
    result = await components.rate_limiter.ahit(key, components.public_rate_limit)
    headers = result.headers()
    if not result.allowed:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"Too many requests from this client; retry in {headers['Retry-After']} s.",
            headers=headers,
        )
    response.headers.update(headers)


RateLimited = [Depends(public_rate_limit)]


# ------------------------------------------------------------------------ routes
users_router = APIRouter(prefix="/users", tags=["users"])
auth_router = APIRouter(prefix="/auth", tags=["auth"])
health_router = APIRouter(prefix="/health", tags=["health"])


@users_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=RateLimited,
    responses={**PUBLIC, 409: _problem("A user with this email already exists.")},
)
async def create_user(body: UserCreate, state: State, response: Response) -> UserResponse:
    """Sign up. Publishes ``user.created`` once the user is stored."""
    new_user = NewUser(email=body.email, name=body.name, password=body.password.get_secret_value())
    users = state.components.users
    user: User
    try:
        user = await users.create_user(new_user)
    except EventBusError:
        # The user *is* stored (UserService publishes after storing); only the
        # event is missing. The client gets its 201; operators get the error.
        user = await users.get_user_by_email(new_user.email)
        logger.exception("user %s stored but user.created was not published", user.id)
    response.headers["Location"] = f"/v1/users/{user.id}"
    return UserResponse.from_user(user)


@users_router.get("", responses=AUTHENTICATED)
async def list_users(
    state: State,
    _user_id: CurrentUserId,
    limit: Annotated[int, Query(ge=1, le=100, description="Users per page.")] = 20,
    after: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
    ] = None,
) -> UserPageResponse:
    """Users in sign-up order, one page at a time."""
    page = await state.components.users.list_users(limit, after=after)
    return UserPageResponse(
        users=[UserResponse.from_user(user) for user in page.users], next_cursor=page.next_cursor
    )


@users_router.get("/{user_id}", responses={**AUTHENTICATED, 404: _problem("No such user.")})
async def get_user(
    state: State,
    _user_id: CurrentUserId,
    user_id: Annotated[str, Path(max_length=64)],
) -> UserResponse:
    """One user, read through the cache (``cache_result``)."""
    found = await state.read_user(user_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="No user has this id.")
    return UserResponse.model_validate(found)


@auth_router.post("/token", dependencies=RateLimited, responses={**PUBLIC, **AUTHENTICATED})
async def login(body: TokenRequest, state: State) -> TokenResponse:
    """Exchange an email and password for an access token and a refresh token."""
    components = state.components
    user = await components.users.authenticate(body.email, body.password.get_secret_value())
    if user is None:
        # One answer for an unknown email and a wrong password (no user enumeration).
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="The email or password is not correct.",
            headers={"WWW-Authenticate": BEARER_CHALLENGE},
        )
    pair = components.security.create_token_pair({"sub": user.id})
    return _token_response(components, pair.access_token, pair.refresh_token)


@auth_router.post("/refresh", dependencies=RateLimited, responses={**PUBLIC, **AUTHENTICATED})
async def refresh(body: RefreshRequest, state: State) -> TokenResponse:
    """Rotate a refresh token: a new pair, and the old refresh token is spent.

    Presenting a spent refresh token again revokes its whole session.
    """
    components = state.components
    pair = await components.security.arefresh(body.refresh_token)
    return _token_response(components, pair.access_token, pair.refresh_token)


@auth_router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=AUTHENTICATED)
async def logout(
    state: State,
    _user_id: CurrentUserId,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Response:
    """End the session: this access token, and every token of its login, stop working."""
    assert credentials is not None  # noqa: S101 - current_user_id refused a missing token
    await state.components.security.arevoke(credentials.credentials, family=True)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _token_response(components: Components, access: str, refresh_token: str) -> TokenResponse:
    lifetime = components.security.access_token_expires.total_seconds()
    return TokenResponse(access_token=access, refresh_token=refresh_token, expires_in=int(lifetime))


HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/health+json": {}}, "description": "pass or warn"},
    503: {"content": {"application/health+json": {}}, "description": "fail"},
}


@health_router.get("/live", responses=HEALTH_RESPONSES, response_class=JSONResponse)
async def live(state: State) -> JSONResponse:
    """Liveness: the process serves requests. Checks no dependency."""
    report = await state.components.health.liveness()
    return JSONResponse(report.to_dict(), report.http_status, media_type=report.media_type)


@health_router.get("/ready", responses=HEALTH_RESPONSES, response_class=JSONResponse)
async def ready(state: State) -> JSONResponse:
    """Readiness: every dependency answered within its timeout."""
    report = await state.components.health.readiness()
    return JSONResponse(report.to_dict(), report.http_status, media_type=report.media_type)


# ---------------------------------------------------------------------- factory
def _user_reader(components: Components) -> UserReader:
    """A cached ``id -> user`` read: the hot path of an API that shows users."""

    @components.cache.cache_result(ttl=components.settings.user_cache_ttl)
    async def read_user(user_id: str) -> dict[str, str] | None:
        try:
            user = await components.users.get_user(user_id)
        except UserNotFoundError:
            return None  # cached too: ids are random, an unknown one stays unknown
        # JSON-native values only, so the cache stores them without pickle.
        return user.to_dict()

    return read_user


def create_app(settings: Settings | None = None) -> FastAPI:
    """The REST app; ``settings`` default to :meth:`Settings.from_env`.

    Nothing connects here: components are built when the app starts (its
    lifespan) and closed when it stops.
    """
    settings = Settings.from_env() if settings is None else settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_components(settings) as components:
            app.state.backend_kit = AppState(components, _user_reader(components))
            yield

    app = FastAPI(
        title="backend-kit REST example",
        version=backend_kit.__version__,
        summary="Users, login and tokens on backend_kit.",
        lifespan=lifespan,
        responses=PROBLEMS_EVERYWHERE,
        redoc_url=None,
    )
    install_problem_handlers(app)
    api = APIRouter(prefix="/v1")
    api.include_router(users_router)
    api.include_router(auth_router)
    app.include_router(api)
    app.include_router(health_router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's OpenAPI 3.1 document, with every 4xx/5xx body declared as problem+json."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        routes=app.routes,
    )
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for code, response in operation.get("responses", {}).items():
                if code[0] in "45" and "application/health+json" not in response.get("content", {}):
                    response["content"] = {PROBLEM_JSON: {"schema": problem_ref}}
    component_schemas = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        component_schemas.pop(unused, None)
    app.openapi_schema = schema
    return schema
