"""The discovery demo part, in memory and on a Consul agent (the fake one here)."""

from __future__ import annotations

import io

import pytest

from backend_kit._demo import discovery
from backend_kit._demo._report import Report
from tests.fakes.consul_agent import FakeConsulAgent


async def test_demo_in_memory_discovers_only_the_healthy_instance(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CONSUL_HTTP_ADDR", raising=False)
    out = io.StringIO()
    await discovery.run(Report(out))
    text = out.getvalue()
    assert "in memory" in text
    assert "-> ['127.0.0.1:8001'] (only the healthy instance)" in text


async def test_demo_uses_the_consul_agent_named_in_the_environment(
    fake_agent: FakeConsulAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONSUL_HTTP_ADDR", fake_agent.address)
    monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)
    out = io.StringIO()
    await discovery.run(Report(out))
    text = out.getvalue()
    assert f"Consul agent at {fake_agent.address}" in text
    assert "-> ['127.0.0.1:8001'] (only the healthy instance)" in text
    assert fake_agent.service_ids() == []  # the demo cleans up after itself
