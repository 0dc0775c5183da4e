"""AMQP topic matching, so the in-memory bus routes exactly as RabbitMQ does.

A routing key is a list of words separated by dots. In a binding pattern ``*``
stands for exactly one word and ``#`` for zero or more words; any other word
matches itself. ``"order.*"`` matches ``"order.created"`` but not ``"order"``
nor ``"order.item.added"``; ``"order.#"`` matches all three.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["has_wildcards", "topic_matches"]


def has_wildcards(pattern: str) -> bool:
    """True when ``pattern`` has a ``*`` or ``#`` word (so it is not a literal routing key)."""
    return any(word in ("*", "#") for word in pattern.split("."))


@lru_cache(maxsize=4096)
def topic_matches(pattern: str, routing_key: str) -> bool:
    """True when the AMQP topic ``pattern`` matches ``routing_key``."""
    words = pattern.split(".")
    keys = routing_key.split(".")
    # reachable[j]: the pattern words consumed so far can match exactly keys[:j].
    reachable = [True] + [False] * len(keys)
    for word in words:
        if word == "#":
            # zero or more words: once a prefix is reachable, every longer one is
            seen = False
            for j in range(len(keys) + 1):
                seen = seen or reachable[j]
                reachable[j] = seen
        else:
            nxt = [False] * (len(keys) + 1)
            for j, key in enumerate(keys):
                if reachable[j] and (word in ("*", key)):
                    nxt[j + 1] = True
            reachable = nxt
    return reachable[len(keys)]
