"""Demo part: register two instances, one goes unhealthy, discovery returns the other."""

from __future__ import annotations

import os

from backend_kit._demo._report import Report
from backend_kit._redact import redact_url
from backend_kit.discovery import BaseServiceRegistry, InMemoryServiceRegistry, TtlCheck


async def _registry(report: Report) -> BaseServiceRegistry:
    if os.environ.get("CONSUL_HTTP_ADDR"):
        from backend_kit.discovery.consul import ConsulServiceRegistry

        registry = ConsulServiceRegistry.from_env(cache_ttl=0)
        report.part("discovery", f"Consul agent at {redact_url(registry.address)}")
        return registry
    report.part("discovery", "in memory (set CONSUL_HTTP_ADDR to use a Consul agent)")
    return InMemoryServiceRegistry()


async def run(report: Report) -> None:
    registry = await _registry(report)
    name = "backend-kit-demo"
    ids = [f"{name}-1", f"{name}-2"]
    async with registry:
        try:
            for number, service_id in enumerate(ids, start=1):
                await registry.register_service(
                    name, service_id, 8000 + number, address="127.0.0.1", check=TtlCheck("30s")
                )
                await registry.update_ttl(service_id, "passing")
            report.step(f"registered {ids[0]} and {ids[1]} with 30 s TTL checks, both passing")
            report.step(f"discover_service -> {await registry.discover_service(name)}")
            await registry.update_ttl(ids[1], "critical", note="demo: failing on purpose")
            report.step(f"{ids[1]} reports critical (its TTL check fails)")
            healthy = await registry.discover_service(name)
            report.step(f"discover_service -> {healthy} (only the healthy instance)")
            chosen = await registry.choose(name)
            report.step(f"choose -> {chosen.service_id} at {chosen.endpoint}")
        finally:
            for service_id in ids:
                await registry.deregister_service(service_id)
        report.step("deregistered both instances")
