"""Per-query overhead of backend_kit's slow-query listener: SELECT 1 on SQLite and PostgreSQL.

Variants, measured in one run with interleaved rounds (each round times every
variant once, in a shuffled order) on one held connection each:

* ``no listeners``         plain ``sqlalchemy.create_engine``: the raw floor.
* ``bare timing pair``     plain engine + the minimal before/after cursor pair
                           (start time on the execution context, one compare):
                           the floor for *this feature*.
* ``SQLAlchemy recipe``    the documented "profiling" recipe (``conn.info``
                           stack, ``time.time``): the usual peer.
* ``backend_kit + 2 hooks`` ``create_pooled_engine`` with its listener and two
                           hooks attached (default: the dialect's execute events).
* ``backend_kit cursor pair`` the same with ``slow_query_events="cursor"``.

Targets (issue 5): backend_kit <= 1.05x the bare pair on both databases; on
PostgreSQL <= 1.10x no listeners.

    python benchmarks/db_bench.py            # PostgreSQL from BACKEND_KIT_TEST_DATABASE_URL
                                             # (default postgresql+psycopg://postgres@127.0.0.1:5432/test)
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from backend_kit.db import SlowQuery, create_pooled_engine
from backend_kit.db._listener import EventStyle

PG_URL = os.environ.get(
    "BACKEND_KIT_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
THRESHOLD = 0.1
SELECT_1 = text("SELECT 1")


def _plain(url: str) -> Engine:
    if url.startswith("sqlite"):
        return sa.create_engine(url, poolclass=sa.pool.StaticPool)
    return sa.create_engine(url, pool_size=2, pool_pre_ping=True)


def _bare_pair(url: str) -> Engine:
    engine = _plain(url)

    def before(
        conn: Any, cursor: Any, statement: Any, params: Any, context: Any, many: Any
    ) -> None:
        context._t0 = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: Any, params: Any, context: Any, many: Any) -> None:
        if time.perf_counter() - context._t0 > THRESHOLD:
            print("slow")

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    return engine


def _recipe(url: str) -> Engine:
    """https://docs.sqlalchemy.org/en/20/faq/performance.html#query-profiling"""
    engine = _plain(url)

    def before(
        conn: Any, cursor: Any, statement: Any, params: Any, context: Any, many: Any
    ) -> None:
        conn.info.setdefault("query_start_time", []).append(time.time())

    def after(conn: Any, cursor: Any, statement: Any, params: Any, context: Any, many: Any) -> None:
        total = time.time() - conn.info["query_start_time"].pop(-1)
        if total > THRESHOLD:
            print("slow")

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    return engine


def _backend_kit(url: str, events: EventStyle = "execute") -> Engine:
    seen: list[SlowQuery] = []

    def count(query: SlowQuery) -> None:
        seen.append(query)

    def metric(query: SlowQuery) -> None:
        seen.append(query)

    kwargs: dict[str, Any] = {} if url.startswith("sqlite") else {"pool_size": 2}
    return create_pooled_engine(
        url,
        slow_query_threshold=THRESHOLD,
        on_slow_query=[count, metric],
        slow_query_events=events,
        **kwargs,
    )


def _backend_kit_cursor(url: str) -> Engine:
    return _backend_kit(url, "cursor")


VARIANTS: dict[str, Callable[[str], Engine]] = {
    "no listeners": _plain,
    "bare timing pair": _bare_pair,
    "SQLAlchemy recipe": _recipe,
    "backend_kit + 2 hooks": _backend_kit,
    "backend_kit cursor pair": _backend_kit_cursor,
}


Result = tuple[dict[str, float], dict[str, float], dict[str, float]]


def measure(url: str, *, queries: int, rounds: int) -> Result:
    """Per variant: median seconds per query, and median per-round ratios vs none / vs bare.

    Ratios are taken within each round (every variant ran back to back, in a
    shuffled order) and then the median over rounds: on a shared machine this
    pairs each variant with a baseline measured under the same load.
    """
    engines = {name: make(url) for name, make in VARIANTS.items()}
    connections = {name: engine.connect() for name, engine in engines.items()}
    samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
    try:
        for conn in connections.values():  # warm up: statement cache, first connect
            for _ in range(200):
                conn.execute(SELECT_1)
        for _ in range(rounds):
            order = list(VARIANTS)
            random.shuffle(order)
            for name in order:
                execute = connections[name].execute
                started = time.perf_counter()
                for _ in range(queries):
                    execute(SELECT_1)
                samples[name].append((time.perf_counter() - started) / queries)
    finally:
        for conn in connections.values():
            conn.close()
        for engine in engines.values():
            engine.dispose()
    medians = {name: statistics.median(values) for name, values in samples.items()}

    def paired(base: str) -> dict[str, float]:
        return {
            name: statistics.median(v / b for v, b in zip(values, samples[base], strict=True))
            for name, values in samples.items()
        }

    return medians, paired("no listeners"), paired("bare timing pair")


def _print_table(title: str, result: Result) -> None:
    medians, vs_none, vs_bare = result
    print(f"\n{title}: SELECT 1, median per query; ratios = median of per-round ratios")
    print(f"{'variant':<26}{'µs/query':>10}{'vs none':>10}{'vs bare':>10}")
    for name, value in medians.items():
        print(f"{name:<26}{value * 1e6:>10.2f}{vs_none[name]:>9.3f}x{vs_bare[name]:>9.3f}x")


def main() -> None:
    random.seed(5)
    results: dict[str, Result] = {"SQLite (memory)": measure("sqlite://", queries=1000, rounds=61)}
    try:
        with sa.create_engine(PG_URL).connect() as probe:
            probe.execute(SELECT_1)
    except sa.exc.OperationalError as exc:
        print(f"PostgreSQL not reachable ({type(exc.orig).__name__}); skipped")
    else:
        results["PostgreSQL (psycopg 3, loopback)"] = measure(PG_URL, queries=300, rounds=61)
    for title, result in results.items():
        _print_table(title, result)
    print("\ntargets: backend_kit <= 1.05x bare pair (both); <= 1.10x no listeners (PostgreSQL)")
    for title, (_, vs_none, vs_bare) in results.items():
        for variant in ("backend_kit + 2 hooks", "backend_kit cursor pair"):
            print(
                f"  {title}, {variant}: {vs_bare[variant]:.3f}x bare, {vs_none[variant]:.3f}x none"
            )


if __name__ == "__main__":
    main()
