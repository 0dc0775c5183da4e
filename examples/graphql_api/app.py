"""The GraphQL example: the Strawberry schema mounted on a Starlette ASGI app.

``POST /graphql`` (GraphiQL on ``GET /graphql`` in a browser), ``GET /health/live``
and ``GET /health/ready``. Components are built when the app starts (its
lifespan) and closed when it stops. Start it with ``python -m examples.graphql_api``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from examples.common import Components, Settings, open_components
from examples.graphql_api.schema import Context, build_schema

__all__ = ["create_app"]


class _Runtime:
    """Holds the components while the app runs (set by the lifespan)."""

    components: Components | None = None

    def get(self) -> Components:
        if self.components is None:
            raise RuntimeError("the app has not started: run it under an ASGI server")
        return self.components


class _GraphQL(GraphQL[Context, None]):
    def __init__(self, runtime: _Runtime) -> None:
        super().__init__(build_schema())
        self._runtime = runtime

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        bearer = token.strip() if scheme.lower() == "bearer" and token.strip() else None
        client = request.client.host if request.client else "unknown"
        return Context(components=self._runtime.get(), client=client, bearer_token=bearer)


def create_app(settings: Settings | None = None) -> Starlette:
    """The GraphQL app; ``settings`` default to :meth:`Settings.from_env`."""
    settings = Settings.from_env() if settings is None else settings
    runtime = _Runtime()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_components(settings) as components:
            runtime.components = components
            try:
                yield
            finally:
                runtime.components = None

    async def live(request: Request) -> JSONResponse:
        report = await runtime.get().health.liveness()
        return JSONResponse(report.to_dict(), report.http_status, media_type=report.media_type)

    async def ready(request: Request) -> JSONResponse:
        report = await runtime.get().health.readiness()
        return JSONResponse(report.to_dict(), report.http_status, media_type=report.media_type)

    return Starlette(
        routes=[
            Route("/health/live", live),
            Route("/health/ready", ready),
            Route("/graphql", _GraphQL(runtime), methods=["GET", "POST"]),
        ],
        lifespan=lifespan,
    )
