"""Engine names: what a slow-query record, a pool error or a ping says it ran on.

A name never carries credentials: the default is ``dialect://host:port/database``
(no user, no password, no query string, which may hold TLS key passwords).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine

__all__ = ["default_engine_name", "engine_name", "remember_engine_name", "sync_engine_of"]

_NAMES: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def default_engine_name(url: URL) -> str:
    """``dialect://host:port/database`` for ``url``, without user, password or query."""
    backend = url.get_backend_name()
    host = url.host or ""
    if host and ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = f":{url.port}" if url.port is not None else ""
    database = url.database or ""
    if backend == "sqlite":
        return (
            f"sqlite:///{database}" if database and database != ":memory:" else "sqlite://:memory:"
        )
    return f"{backend}://{host}{port}/{database}"


def sync_engine_of(engine: Any) -> Engine:
    """The sync :class:`~sqlalchemy.engine.Engine` behind ``engine`` (itself, or an AsyncEngine's)."""
    sync: Engine = getattr(engine, "sync_engine", engine)
    return sync


def remember_engine_name(engine: Any, name: str) -> None:
    """Record ``name`` for ``engine`` (sync or async) for later records and errors."""
    _NAMES[sync_engine_of(engine)] = name


def engine_name(engine: Any) -> str:
    """The name given to ``engine`` (sync or async), else its default name."""
    sync = sync_engine_of(engine)
    name = _NAMES.get(sync)
    return name if name is not None else default_engine_name(sync.url)
