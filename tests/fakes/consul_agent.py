"""A fake Consul agent: a real HTTP server on a free loopback port, for tests.

No Consul binary can be installed where these tests run, so this fake speaks
the slice of Consul's HTTP API that ``backend_kit.discovery.consul`` uses, with
the JSON shapes and status codes of Consul's documentation:

- ``PUT /v1/agent/service/register`` (``?replace-existing-checks``): body keys
  matched case-insensitively, as Consul's Go decoder does; 200 with an empty
  body; 400 for a missing name or an invalid check.
  https://developer.hashicorp.com/consul/api-docs/agent/service#register-service
- ``PUT /v1/agent/service/deregister/:service_id``: 200; 404 "Unknown service
  ID ..." for an id the agent does not know (Consul >= 1.10, hashicorp/consul#10894).
  https://developer.hashicorp.com/consul/api-docs/agent/service#deregister-service
- ``PUT /v1/agent/check/{pass,warn,fail}/:check_id`` (``?note=``): 200; 404 for an
  unknown check; 500 for a check that is not a TTL check.
  https://developer.hashicorp.com/consul/api-docs/agent/check#ttl-check-pass
- ``GET /v1/health/service/:service`` (``passing``, ``tag``, ``index``, ``wait``):
  a list of ``{"Node", "Service", "Checks"}`` entries, ``X-Consul-Index``
  header, blocking until the index passes ``index`` or ``wait`` (plus up to
  wait/16 jitter) runs out. ``passing`` keeps entries whose every check (the
  node's ``serfHealth`` included) is passing.
  https://developer.hashicorp.com/consul/api-docs/health#list-service-instances-for-service
  https://developer.hashicorp.com/consul/api-docs/features/blocking
- ``GET /v1/agent/services``: a map of service id to service definition.
  https://developer.hashicorp.com/consul/api-docs/agent/service#list-services
- ``GET /v1/status/leader``: the leader's ``"ip:port"`` as a JSON string.

Health checks behave as the docs describe: every check starts ``critical``
unless the definition gives ``Status``; a TTL check goes critical ("TTL
expired") when not refreshed within its TTL; an HTTP check is probed at once
and then every ``Interval`` (2xx passing, 429 warning, anything else critical).
Re-registering a service keeps the state of its existing checks, as the agent
does. ``DeregisterCriticalServiceAfter`` is stored, not acted on.

Test controls: :meth:`FakeConsulAgent.set_check_status` (mark a check critical),
:meth:`blank_service_address` (an empty ``Service.Address``), :meth:`stop` /
:meth:`start` (the agent down and back on the same port), :meth:`force_index`
(an index that goes backwards or to 0), :meth:`forget_everything` (an agent
that lost its state), ``leaderless`` (the cluster lost its leader: catalog
reads such as ``/v1/health/service`` answer 500 "No cluster leader" and
``/v1/status/leader`` an empty string, while the agent's own endpoints keep
working, as a Consul agent does), an ``acl_token`` the agent demands, and
``requests``, the log of every request served.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

__all__ = ["FakeConsulAgent", "RecordedRequest"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
NODE_NAME = "fake-node"
NODE_ADDRESS = "127.0.0.1"


def _seconds(text: str) -> float:
    total, pos = 0.0, 0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(text):
        raise ValueError(f"invalid duration {text!r}")
    return total


def _lower_keys(value: Any) -> Any:
    """Consul decodes JSON bodies case-insensitively; compare keys in lower case."""
    if isinstance(value, dict):
        return {str(k).lower(): v for k, v in value.items()}
    return value


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    token: str | None


@dataclass
class _Check:
    check_id: str
    name: str
    service_id: str
    service_name: str
    kind: str  # "ttl", "http" or "none"
    status: str = "critical"
    output: str = ""
    notes: str = ""
    ttl: float = 0.0
    http: str = ""
    interval: float = 0.0
    timeout: float = 10.0
    deregister_after: str = ""
    timer: asyncio.TimerHandle | None = None
    prober: asyncio.Task[None] | None = None

    def as_json(self, tags: list[str]) -> dict[str, Any]:
        return {
            "Node": NODE_NAME,
            "CheckID": self.check_id,
            "Name": self.name,
            "Status": self.status,
            "Notes": self.notes,
            "Output": self.output,
            "ServiceID": self.service_id,
            "ServiceName": self.service_name,
            "ServiceTags": tags,
            "Type": self.kind if self.kind != "none" else "",
            "Namespace": "default",
        }


@dataclass
class _Service:
    service_id: str
    name: str
    address: str
    port: int
    tags: list[str]
    meta: dict[str, str]
    create_index: int
    modify_index: int
    check_ids: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "ID": self.service_id,
            "Service": self.name,
            "Tags": list(self.tags),
            "Meta": dict(self.meta),
            "Port": self.port,
            "Address": self.address,
            "TaggedAddresses": {},
            "Weights": {"Passing": 1, "Warning": 1},
            "EnableTagOverride": False,
            "Datacenter": "dc1",
            "Namespace": "default",
        }


class FakeConsulAgent:
    """A single-node Consul agent (node ``fake-node`` at 127.0.0.1) for tests.

    Use as ``async with FakeConsulAgent() as agent:``; ``agent.address`` is its
    ``http://127.0.0.1:PORT``.
    """

    def __init__(self, *, acl_token: str | None = None, port: int = 0) -> None:
        self.acl_token = acl_token
        self.port = port or _free_port()
        self.requests: list[RecordedRequest] = []
        self.leaderless = False
        self._index = 10
        self._service_index: dict[str, int] = {}
        self._forced_index: dict[str, int] = {}
        self._services: dict[str, _Service] = {}
        self._checks: dict[str, _Check] = {}
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._probe_session: aiohttp.ClientSession | None = None
        self._background: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Listen (again) on the same port."""
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_route("*", "/v1/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self._runner = runner
        if self._probe_session is None:
            self._probe_session = aiohttp.ClientSession()

    async def stop(self) -> None:
        """Go down: close the listener and every open connection (state is kept)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def aclose(self) -> None:
        await self.stop()
        self.forget_everything()
        if self._probe_session is not None:
            await self._probe_session.close()
            self._probe_session = None

    async def __aenter__(self) -> FakeConsulAgent:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -------------------------------------------------------- test controls
    def set_check_status(self, check_or_service_id: str, status: str, output: str = "") -> None:
        """Force a check's status (``service:<id>`` or a service id for its checks)."""
        check_ids = (
            [check_or_service_id]
            if check_or_service_id in self._checks
            else list(self._services[check_or_service_id].check_ids)
        )
        for check_id in check_ids:
            self._set_status(self._checks[check_id], status, output or f"forced {status}")

    def blank_service_address(self, service_id: str) -> None:
        """Make ``Service.Address`` empty, as for a service registered without one."""
        service = self._services[service_id]
        service.address = ""
        self._bump(service.name)

    def force_index(self, service_name: str, index: int) -> None:
        """Report ``index`` as the service's ``X-Consul-Index`` (lower, or 0, to test clients)."""
        self._forced_index[service_name] = index
        self._wake()

    def forget_everything(self) -> None:
        """Lose every registration, as an agent started without its data directory."""
        for check in self._checks.values():
            self._stop_check(check)
        names = {service.name for service in self._services.values()}
        self._services.clear()
        self._checks.clear()
        for name in names:
            self._bump(name)

    def check_status(self, check_id: str) -> str:
        return self._checks[check_id].status

    def service_ids(self) -> list[str]:
        return sorted(self._services)

    def health_requests(self, service_name: str) -> list[RecordedRequest]:
        path = f"/v1/health/service/{service_name}"
        return [request for request in self.requests if request.path == path]

    # ------------------------------------------------------------- internals
    def _index_of(self, name: str) -> int:
        if name in self._forced_index:
            return self._forced_index[name]
        return self._service_index.get(name, 1)

    def _bump(self, service_name: str) -> None:
        self._forced_index.pop(service_name, None)
        self._index += 1
        self._service_index[service_name] = self._index
        self._wake()

    def _wake(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        task = asyncio.get_running_loop().create_task(notify())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _set_status(self, check: _Check, status: str, output: str) -> None:
        check.output = output
        if check.status != status:
            check.status = status
            self._bump(check.service_name)

    def _stop_check(self, check: _Check) -> None:
        if check.timer is not None:
            check.timer.cancel()
        if check.prober is not None:
            check.prober.cancel()

    def _arm_ttl(self, check: _Check) -> None:
        if check.timer is not None:
            check.timer.cancel()
        check.timer = asyncio.get_running_loop().call_later(
            check.ttl, self._set_status, check, "critical", "TTL expired"
        )

    async def _probe(self, check: _Check) -> None:
        assert self._probe_session is not None
        while True:
            try:
                async with self._probe_session.get(
                    check.http, timeout=aiohttp.ClientTimeout(total=check.timeout)
                ) as response:
                    code = response.status
                status = (
                    "passing" if 200 <= code < 300 else "warning" if code == 429 else "critical"
                )
                output = f"HTTP GET {check.http}: {code}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, output = "critical", f"HTTP GET {check.http}: {type(exc).__name__}"
            self._set_status(check, status, output)
            await asyncio.sleep(check.interval)

    def _entries(self, name: str, tags: list[str], passing: bool) -> list[dict[str, Any]]:
        node = {
            "ID": "40e4a748-2192-161a-0510-9bf59fe950b5",
            "Node": NODE_NAME,
            "Address": NODE_ADDRESS,
            "Datacenter": "dc1",
            "TaggedAddresses": {"lan": NODE_ADDRESS, "wan": NODE_ADDRESS},
            "Meta": {},
        }
        serf = {
            "Node": NODE_NAME,
            "CheckID": "serfHealth",
            "Name": "Serf Health Status",
            "Status": "passing",
            "Notes": "",
            "Output": "Agent alive and reachable",
            "ServiceID": "",
            "ServiceName": "",
            "ServiceTags": [],
            "Type": "",
            "Namespace": "default",
        }
        entries = []
        for service in sorted(self._services.values(), key=lambda s: s.service_id):
            if service.name != name or not all(tag in service.tags for tag in tags):
                continue
            checks = [serf] + [
                self._checks[check_id].as_json(service.tags) for check_id in service.check_ids
            ]
            if passing and any(check["Status"] != "passing" for check in checks):
                continue
            service_json = service.as_json()
            service_json["CreateIndex"] = service.create_index
            service_json["ModifyIndex"] = service.modify_index
            entries.append({"Node": node, "Service": service_json, "Checks": checks})
        return entries

    # -------------------------------------------------------------- routing
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.requests.append(
            RecordedRequest(
                request.method,
                path,
                {key: request.query.getall(key) for key in request.query},
                request.headers.get("X-Consul-Token"),
            )
        )
        if self.acl_token is not None and request.headers.get("X-Consul-Token") != self.acl_token:
            return web.Response(status=403, text="Permission denied")
        routes: list[tuple[str, str, Any]] = [
            ("PUT", r"/v1/agent/service/register", self._register),
            ("PUT", r"/v1/agent/service/deregister/(?P<id>.+)", self._deregister),
            ("PUT", r"/v1/agent/check/(?P<verb>pass|warn|fail)/(?P<id>.+)", self._ttl_update),
            ("GET", r"/v1/health/service/(?P<name>[^/]+)", self._health_service),
            ("GET", r"/v1/agent/services", self._agent_services),
            ("GET", r"/v1/status/leader", self._leader),
        ]
        for method, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match is None:
                continue
            if request.method != method:
                return web.Response(status=405, text="method not allowed")
            result: web.StreamResponse = await handler(request, **match.groupdict())
            return result
        return web.Response(status=404, text="404 page not found")

    async def _register(self, request: web.Request) -> web.Response:
        try:
            body = _lower_keys(json.loads(await request.text() or "{}"))
        except json.JSONDecodeError:
            return web.Response(status=400, text="Request decode failed: invalid JSON")
        name = body.get("name") or ""
        if not name:
            return web.Response(status=400, text="Missing service name")
        service_id = body.get("id") or name
        raw_checks = [body["check"]] if body.get("check") else []
        raw_checks += list(body.get("checks") or [])
        definitions: list[_Check] = []
        for number, raw in enumerate(raw_checks, start=1):
            spec = _lower_keys(raw)
            default_id = f"service:{service_id}" + (f":{number}" if len(raw_checks) > 1 else "")
            check = _Check(
                check_id=spec.get("checkid") or spec.get("id") or default_id,
                name=spec.get("name") or f"Service '{name}' check",
                service_id=service_id,
                service_name=name,
                kind="none",
                status=spec.get("status") or "critical",
                notes=spec.get("notes") or "",
                deregister_after=spec.get("deregistercriticalserviceafter") or "",
            )
            try:
                if spec.get("ttl"):
                    check.kind, check.ttl = "ttl", _seconds(spec["ttl"])
                    if check.ttl <= 0:
                        raise ValueError("TTL must be > 0 for TTL checks")
                elif spec.get("http"):
                    check.kind, check.http = "http", spec["http"]
                    check.interval = _seconds(spec.get("interval") or "")
                    if check.interval <= 0:
                        raise ValueError("Interval must be > 0 for HTTP checks")
                    if spec.get("timeout"):
                        check.timeout = _seconds(spec["timeout"])
                else:
                    raise ValueError("Must provide TTL or HTTP/Interval")
            except ValueError as exc:
                return web.Response(status=400, text=f"Invalid check: {exc}")
            definitions.append(check)

        existing = self._services.get(service_id)
        if existing is not None and existing.name != name:
            # An id moving to another service name: the old name's watchers must wake.
            self._bump(existing.name)
        previous_checks = {cid: self._checks[cid] for cid in existing.check_ids} if existing else {}
        replace = "replace-existing-checks" in request.query
        kept_ids = [] if replace else list(previous_checks)
        for check_id, old in previous_checks.items():
            if replace and check_id not in {check.check_id for check in definitions}:
                self._stop_check(old)
                del self._checks[check_id]
        self._index += 1
        service = _Service(
            service_id=service_id,
            name=name,
            address=body.get("address") or "",
            port=int(body.get("port") or 0),
            tags=list(body.get("tags") or []),
            meta=dict(body.get("meta") or {}),
            create_index=existing.create_index if existing else self._index,
            modify_index=self._index,
        )
        for check in definitions:
            previous = previous_checks.get(check.check_id)
            if previous is not None:
                # The agent keeps a re-registered check's state.
                self._stop_check(previous)
                check.status, check.output = previous.status, previous.output
            self._checks[check.check_id] = check
            if check.kind == "ttl" and check.status != "critical":
                self._arm_ttl(check)
            elif check.kind == "http":
                check.prober = asyncio.get_running_loop().create_task(self._probe(check))
        service.check_ids = list(dict.fromkeys(kept_ids + [c.check_id for c in definitions]))
        service.check_ids = [cid for cid in service.check_ids if cid in self._checks]
        self._services[service_id] = service
        self._bump(name)
        return web.Response(status=200)

    async def _deregister(self, request: web.Request, id: str) -> web.Response:
        service = self._services.pop(id, None)
        if service is None:
            return web.Response(
                status=404,
                text=f'Unknown service ID "{id}". Ensure that the service ID is passed, not the service name.',
            )
        for check_id in service.check_ids:
            check = self._checks.pop(check_id, None)
            if check is not None:
                self._stop_check(check)
        self._bump(service.name)
        return web.Response(status=200)

    async def _ttl_update(self, request: web.Request, verb: str, id: str) -> web.Response:
        check = self._checks.get(id)
        if check is None:
            return web.Response(
                status=404,
                text=f'Unknown check ID "{id}". Ensure that the check ID is passed, not the check name.',
            )
        if check.kind != "ttl":
            return web.Response(status=500, text=f'CheckID "{id}" does not have associated TTL')
        status = {"pass": "passing", "warn": "warning", "fail": "critical"}[verb]
        self._arm_ttl(check)
        check.notes = request.query.get("note", check.notes)
        self._set_status(check, status, request.query.get("note", ""))
        return web.Response(status=200)

    async def _health_service(self, request: web.Request, name: str) -> web.Response:
        if self.leaderless:  # a catalog read is forwarded to the servers: no leader, no answer
            return web.Response(status=500, text="No cluster leader")
        tags = request.query.getall("tag", [])
        passing = "passing" in request.query and request.query["passing"].lower() not in {
            "0",
            "false",
        }
        if "index" in request.query:
            try:
                wanted = int(request.query["index"])
                wait = _seconds(request.query.get("wait", "5m"))
            except ValueError:
                return web.Response(status=400, text="Invalid index or wait")
            wait = min(wait, 600.0)
            wait += random.uniform(0, wait / 16)
            try:
                async with asyncio.timeout(wait), self._changed:
                    await self._changed.wait_for(lambda: self._index_of(name) > wanted)
            except TimeoutError:
                pass  # the wait ran out: answer with the current state and index
        body = json.dumps(self._entries(name, tags, passing))
        return web.Response(
            status=200,
            text=body,
            content_type="application/json",
            headers={"X-Consul-Index": str(self._index_of(name))},
        )

    async def _agent_services(self, request: web.Request) -> web.Response:
        services = {sid: service.as_json() for sid, service in sorted(self._services.items())}
        return web.json_response(services)

    async def _leader(self, request: web.Request) -> web.Response:
        return web.json_response("" if self.leaderless else f"{NODE_ADDRESS}:8300")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
