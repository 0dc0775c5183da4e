"""Redaction helpers shared by every component: nothing secret reaches a log line."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact_url"]


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (safe to log or print).

    >>> redact_url("redis://:hunter2@cache:6379/0")
    'redis://:***@cache:6379/0'
    >>> redact_url("postgresql+psycopg://app:s3cret@db/test")
    'postgresql+psycopg://app:***@db/test'
    >>> redact_url("memory://")
    'memory://'
    """
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:  # a malformed URL may still hold a secret: print none of it
        return "<unparseable URL>"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{user}:***@{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
