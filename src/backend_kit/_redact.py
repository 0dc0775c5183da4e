"""Redaction helpers shared by every component: nothing secret reaches a log line."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["redact_url"]

# Query options that carry a credential: libpq's password=/sslpassword=, redis-py
# passes query options to the client (password=), MongoDB's
# authMechanismProperties=AWS_SESSION_TOKEN:..., tokens and API keys.
_SECRET_QUERY_NAME = re.compile(
    r"pass|pwd|secret|token|auth|credential|api_?key|access_?key|private_?key", re.IGNORECASE
)


def _redact_query(query: str) -> str:
    """``query`` with the value of each secret-looking option replaced by ``***``."""
    if not query:
        return query
    parts = []
    for item in query.split("&"):
        name, equals, _value = item.partition("=")
        if equals and _SECRET_QUERY_NAME.search(unquote(name)):
            item = f"{name}=***"
        parts.append(item)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (safe to log or print).

    The password of the user part, and the value of any query option named
    like a credential (``password=``, ``sslpassword=``, ``token=``,
    ``authMechanismProperties=``...), are replaced.

    >>> redact_url("redis://:hunter2@cache:6379/0")
    'redis://:***@cache:6379/0'
    >>> redact_url("postgresql+psycopg://app:s3cret@db/test")
    'postgresql+psycopg://app:***@db/test'
    >>> redact_url("postgresql://app@db/test?password=s3cret&sslmode=require")
    'postgresql://app@db/test?password=***&sslmode=require'
    >>> redact_url("memory://")
    'memory://'
    """
    try:
        parts = urlsplit(url)
        query = _redact_query(parts.query)
        if parts.password is None:
            if query == parts.query:
                return url
            return urlunsplit(parts._replace(query=query))
        user = parts.username or ""
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:  # a malformed URL may still hold a secret: print none of it
        return "<unparseable URL>"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{user}:***@{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
