"""Discovery benchmark: cached and uncached ``discover_service`` against raw py-consul.

Runs the fake Consul agent (tests/fakes/consul_agent.py) in this process on a
loopback port, registers 5 instances of one service, then measures, in
interleaved rounds, the time per call of:

- raw py-consul ``health.service(name, passing=True)`` (the floor for a request),
- ``ConsulServiceRegistry.discover_service`` with ``cache_ttl=0`` (a request every call),
- ``ConsulServiceRegistry.discover_service`` with the default cache (1 s TTL),
- ``InMemoryServiceRegistry.discover_service`` (no I/O, for scale).

No peer library offers asyncio Consul discovery with a cache to compare with.
Run: ``python benchmarks/discovery_bench.py`` (about 20 s).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import consul.aio
from tests.fakes.consul_agent import FakeConsulAgent

from backend_kit.discovery import InMemoryServiceRegistry
from backend_kit.discovery.consul import ConsulServiceRegistry

ROUNDS = 15
CALLS = 200
SERVICE = "bench-api"


async def _time(call: Callable[[], Awaitable[object]], n: int) -> float:
    """Microseconds per call over ``n`` sequential calls."""
    started = time.perf_counter()
    for _ in range(n):
        await call()
    return (time.perf_counter() - started) / n * 1e6


async def main() -> None:
    async with FakeConsulAgent() as agent:
        uncached = ConsulServiceRegistry(agent.address, cache_ttl=0)
        cached = ConsulServiceRegistry(agent.address)  # default cache_ttl=1 s
        memory = InMemoryServiceRegistry()
        for number in range(5):
            for registry in (uncached, memory):
                await registry.register_service(
                    SERVICE, f"{SERVICE}-{number}", 8000 + number, address=f"10.0.0.{number}"
                )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # py-consul's aiohttp arguments
            raw = consul.aio.Consul(host="127.0.0.1", port=agent.port)

        async def raw_call() -> object:
            return await raw.health.service(SERVICE, passing=True)

        variants: dict[str, Callable[[], Awaitable[object]]] = {
            "raw py-consul health.service": raw_call,
            "discover_service, cache_ttl=0": lambda: uncached.discover_service(SERVICE),
            "discover_service, cached": lambda: cached.discover_service(SERVICE),
            "InMemoryServiceRegistry": lambda: memory.discover_service(SERVICE),
        }
        # Warm up connections and caches.
        for call in variants.values():
            await _time(call, 20)
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for round_number in range(ROUNDS):
            order = list(variants.items())
            if round_number % 2:
                order.reverse()  # interleave: no variant always runs first
            for name, call in order:
                samples[name].append(await _time(call, CALLS))
        await raw.close()
        await uncached.aclose()
        await cached.aclose()

    floor = statistics.median(samples["raw py-consul health.service"])
    print(f"discovery, {ROUNDS} interleaved rounds, median µs per call (fake agent, loopback)")
    print(f"{'variant':34} {'median µs':>10} {'vs raw':>8}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:34} {median:10.1f} {median / floor:8.3f}")


if __name__ == "__main__":
    asyncio.run(main())
