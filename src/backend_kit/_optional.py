"""Import an optional dependency, or fail with one error naming the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from backend_kit.errors import MissingDependencyError

__all__ = ["import_optional"]


def import_optional(module: str, *, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``extra``.

    Backend modules call this first, before their own typed imports, so a
    missing extra surfaces as ``pip install 'backend-kit[EXTRA]'`` instead of a
    bare ``ModuleNotFoundError`` deep inside the module::

        import_optional("redis", extra="redis")
        import redis.asyncio  # now safe, and fully typed

    Only a missing *top-level* package is translated; an ImportError raised
    inside an installed package (a broken install) propagates unchanged so it
    is not mistaken for a missing extra.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top_level = module.partition(".")[0]
        if exc.name is not None and exc.name.partition(".")[0] == top_level:
            raise MissingDependencyError(top_level, extra) from exc
        raise
