"""The GraphQL example: ``create_app(settings)`` builds the ASGI app (see :mod:`examples.graphql_api.app`)."""

from __future__ import annotations

from examples.graphql_api.app import create_app

__all__ = ["create_app"]
