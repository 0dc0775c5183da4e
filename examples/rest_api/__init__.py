"""The REST example: ``create_app(settings)`` builds the FastAPI app (see :mod:`examples.rest_api.app`)."""

from __future__ import annotations

from examples.rest_api.app import create_app

__all__ = ["create_app"]
