"""Runnable applications built only on backend_kit's public API.

- :mod:`examples.rest_api`: a FastAPI service (``python -m examples.rest_api``).
- :mod:`examples.graphql_api`: a Strawberry GraphQL service (``python -m examples.graphql_api``).
- :mod:`examples.worker`: an event worker consuming ``user.created`` (``python -m examples.worker``).

:mod:`examples.common` holds what the three share: the settings read from the
environment and the wiring of backend_kit's components.
"""
