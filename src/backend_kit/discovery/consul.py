"""``ConsulServiceRegistry``: the :class:`~backend_kit.discovery.ServiceRegistry` on Consul.

Needs the ``consul`` extra (``pip install 'backend-kit[consul]'``): py-consul's
asyncio client on aiohttp. It talks to the *local agent* over its HTTP API:
``PUT /v1/agent/service/register`` and ``/deregister``, ``PUT /v1/agent/check/pass``
(``warn``, ``fail``) for TTL checks, and ``GET /v1/health/service/:name?passing``
for discovery, with blocking queries (``index``/``wait``) for :meth:`watch`.

:class:`SyncConsulServiceRegistry` is the blocking twin on py-consul's
``requests`` client, for code without an event loop.

Every transport failure (connection refused, DNS, TLS, timeouts, a 5xx from the
agent) becomes :class:`~backend_kit.errors.RegistryUnavailableError` within
``request_timeout``; py-consul itself lets aiohttp's and requests' errors
through untouched. A :class:`~backend_kit.resilience.CircuitBreaker` in front
of the agent counts those failures: once it opens, requests fail at once with
the same error (and discovery serves its stale cache) instead of each waiting
for the timeout, until a trial request finds the agent answering again.
"""

from __future__ import annotations

from backend_kit._optional import import_optional

import_optional("consul", extra="consul")
import_optional("aiohttp", extra="consul")  # py-consul's asyncio client needs it

import asyncio  # noqa: E402 - after the extra check, so a missing extra names its install line
import itertools  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import threading  # noqa: E402
import warnings  # noqa: E402
from collections.abc import (  # noqa: E402
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import contextmanager  # noqa: E402
from typing import Any, Final, Self, TypeVar  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import aiohttp  # noqa: E402
import consul  # noqa: E402
import consul.aio  # noqa: E402
import requests  # noqa: E402
from consul.exceptions import (  # noqa: E402
    ACLDisabled,
    ACLPermissionDenied,
    BadRequest,
    ClientError,
    ConsulException,
    NotFound,
)
from consul.exceptions import Timeout as ConsulTimeout  # noqa: E402

from backend_kit.discovery._base import (  # noqa: E402
    DEFAULT_REGISTERED_CHECK,
    BaseServiceRegistry,
    logger,
)
from backend_kit.discovery._cache import StaleWhileUnavailableCache  # noqa: E402
from backend_kit.discovery._models import (  # noqa: E402
    CheckStatus,
    HttpCheck,
    ServiceCheck,
    ServiceInstance,
    TtlCheck,
    format_duration,
    parse_duration,
)
from backend_kit.discovery._protocol import ChooseStrategy  # noqa: E402
from backend_kit.discovery._validate import validate_registration  # noqa: E402
from backend_kit.errors import (  # noqa: E402
    CircuitOpenError,
    ConfigurationError,
    DiscoveryError,
    NoHealthyInstanceError,
    RegistryUnavailableError,
)
from backend_kit.resilience import CircuitBreaker  # noqa: E402

__all__ = ["ConsulServiceRegistry", "SyncConsulServiceRegistry"]

T = TypeVar("T")

DEFAULT_ADDRESS: Final = "http://127.0.0.1:8500"
BREAKER_FAILURE_THRESHOLD: Final = 3
"""Consecutive failed requests that open the default breaker."""
BREAKER_RESET_TIMEOUT: Final = 5.0
"""Seconds the default breaker stays open before one trial request goes to the agent."""
_STATUS_CALLS: Final = {"passing": "ttl_pass", "warning": "ttl_warn", "critical": "ttl_fail"}


def check_id_for(service_id: str) -> str:
    """The id Consul gives the single check of a service: ``service:<service_id>``."""
    return f"service:{service_id}"


class ConsulServiceRegistry(BaseServiceRegistry):
    """Service registry on a Consul agent, with a per-service discovery cache.

    Args:
        address: the agent's HTTP API, ``"http://host:8500"`` or ``"host:port"``
            (default ``http://127.0.0.1:8500``, the local agent).
        token: ACL token sent as ``X-Consul-Token``; ``None`` sends none. Only
            this argument counts (py-consul on its own would let the
            ``CONSUL_HTTP_TOKEN`` variable override it); use :meth:`from_env`
            to read the environment.
        datacenter: datacenter to discover in (default: the agent's).
        verify: verify the agent's TLS certificate (``https`` only); a path
            names a CA bundle.
        request_timeout: seconds one request may take before it counts as the
            agent being unavailable (default 5).
        cache_ttl: seconds a discovery answer is served without asking the
            agent again, per service name and tag (default 1; 0 asks every time).
        max_stale: seconds the last good answer may be served, with a warning,
            while the agent is unreachable (default 30); past that
            :class:`~backend_kit.errors.RegistryUnavailableError` is raised.
        watch_wait: seconds a blocking query of :meth:`watch` waits for a change
            (default 30; Consul caps it at 600).
        watch_min_interval: the least seconds between two requests of one watch
            (default 0.5), so a misbehaving agent cannot drive a busy loop.
        watch_max_backoff: the longest pause, in seconds, between retries of a
            watch while the agent is unreachable (default 10).
        breaker: the :class:`~backend_kit.resilience.CircuitBreaker` in front
            of the agent. Default: opens after 3 consecutive failed requests
            (transport errors, timeouts, 5xx), stays open 5 s, then lets one
            trial request through. While it is open every request fails at
            once with ``RegistryUnavailableError`` (discovery serves its stale
            cache within ``max_stale``). Refusals from an agent that answered
            (ACL, bad request) do not count. Pass your own to tune it or to
            get ``on_state_change`` hooks; :meth:`watch` does not go through it
            (its blocking queries have their own backoff).
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        token: str | None = None,
        datacenter: str | None = None,
        verify: bool | str = True,
        request_timeout: float = 5.0,
        cache_ttl: float = 1.0,
        max_stale: float = 30.0,
        watch_wait: float = 30.0,
        watch_min_interval: float = 0.5,
        watch_max_backoff: float = 10.0,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        super().__init__()
        self._scheme, self._host, self._port = _parse_address(address)
        self._breaker = breaker if breaker is not None else _default_breaker(self.address)
        self._token = token or None
        self._datacenter = datacenter or None
        self._verify = verify
        for label, value in (
            ("request_timeout", request_timeout),
            ("watch_wait", watch_wait),
            ("watch_min_interval", watch_min_interval),
            ("watch_max_backoff", watch_max_backoff),
        ):
            if value <= 0:
                raise ConfigurationError(f"{label} must be positive")
        if watch_wait > 600:
            raise ConfigurationError("watch_wait is capped at 600 s by Consul")
        self._request_timeout = request_timeout
        self._watch_wait = watch_wait
        self._watch_min_interval = watch_min_interval
        self._watch_max_backoff = max(watch_max_backoff, watch_min_interval)
        self._cache: StaleWhileUnavailableCache[tuple[str, str | None], list[ServiceInstance]] = (
            StaleWhileUnavailableCache(ttl=cache_ttl, max_stale=max_stale)
        )
        self._names_by_id: dict[str, str] = {}
        self._client: consul.aio.Consul | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_env(cls, **options: Any) -> Self:
        """A registry configured like the ``consul`` CLI, from the environment.

        Reads ``CONSUL_HTTP_ADDR`` (default ``http://127.0.0.1:8500``),
        ``CONSUL_HTTP_TOKEN``, ``CONSUL_HTTP_SSL`` (``true`` selects https for
        an address without a scheme) and ``CONSUL_HTTP_SSL_VERIFY``
        (``false`` turns certificate checks off). ``options`` go to the
        constructor (``cache_ttl=...``) and win over the environment.
        """
        address = _env_options(options)
        return cls(address, **options)

    @property
    def address(self) -> str:
        """The agent's HTTP API address (it never holds a secret)."""
        return f"{self._scheme}://{self._host}:{self._port}"

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker in front of the agent (``breaker.state``: is the agent trusted?)."""
        return self._breaker

    def __repr__(self) -> str:
        return f"ConsulServiceRegistry({self.address!r})"

    # ------------------------------------------------------------ primitives
    async def register_service(
        self,
        name: str,
        service_id: str,
        port: int,
        *,
        address: str | None = None,
        tags: Sequence[str] = (),
        meta: Mapping[str, str] | None = None,
        check: ServiceCheck | None = None,
    ) -> None:
        """``PUT /v1/agent/service/register``: add ``service_id`` or replace it and its checks.

        Without ``address`` Consul advertises the agent node's address. The
        check gets the id ``service:<service_id>`` (what Consul names a
        service's single check). Raises ``RegistryUnavailableError`` promptly
        when the agent cannot be reached, ``DiscoveryError`` when it refuses.
        """
        normal_tags, normal_meta = validate_registration(name, service_id, port, tags, meta)
        check_body = _check_body(name, service_id, check)

        async def call(client: consul.aio.Consul) -> bool:
            result: bool = await client.agent.service.register(
                name,
                service_id=service_id,
                address=address or None,
                port=port,
                tags=list(normal_tags),
                meta=normal_meta or None,
                check=check_body,
                # Re-registering the same id replaces its checks instead of
                # adding to them: registration is idempotent.
                replace_existing_checks=True,
            )
            return result

        await self._call(f"register {service_id!r}", call)
        self._names_by_id[service_id] = name
        self._invalidate(name)

    async def deregister_service(self, service_id: str) -> bool:
        """``PUT /v1/agent/service/deregister/:id``; ``False`` when the agent did not know it."""
        return await self._deregister(service_id, through_breaker=True)

    async def _deregister_on_exit(self, service_id: str) -> None:
        # The last chance to leave the catalogue cleanly: sent even while the
        # breaker is open (one request, bounded by request_timeout).
        await self._deregister(service_id, through_breaker=False)

    async def _deregister(self, service_id: str, *, through_breaker: bool) -> bool:
        async def call(client: consul.aio.Consul) -> bool:
            result: bool = await client.agent.service.deregister(service_id)
            return result

        what = f"deregister {service_id!r}"
        if through_breaker:
            # py-consul turns the agent's 404 "Unknown service ID" into False.
            known = await self._call(what, call)
        else:
            known = await self._request(what, call, self._request_timeout)
        self._invalidate(self._names_by_id.pop(service_id, None))
        return known

    async def update_ttl(
        self, service_id: str, status: CheckStatus = "passing", *, note: str | None = None
    ) -> bool:
        """``PUT /v1/agent/check/{pass,warn,fail}/service:<id>``; ``False`` if the agent lacks it."""
        method = _STATUS_CALLS.get(status)
        if method is None:
            raise ConfigurationError(f"status must be passing, warning or critical, not {status!r}")
        check_id = check_id_for(service_id)

        async def call(client: consul.aio.Consul) -> bool:
            result: bool = await getattr(client.agent.check, method)(check_id, notes=note)
            return result

        known = await self._call(f"update the TTL check of {service_id!r}", call)
        self._invalidate(self._names_by_id.get(service_id))
        return known

    async def instances(self, name: str, *, tag: str | None = None) -> list[ServiceInstance]:
        """Passing instances of ``name``, from the cache when fresh (see ``cache_ttl``).

        ``GET /v1/health/service/:name?passing=1``. When the agent is
        unreachable the last good answer is served, with a warning, for up to
        ``max_stale`` seconds; then ``RegistryUnavailableError``.
        """
        return await self._cache.get((name, tag), lambda: self._fetch_instances(name, tag))

    async def watch(
        self, name: str, *, tag: str | None = None
    ) -> AsyncIterator[list[ServiceInstance]]:
        """Yield the passing instances of ``name`` now, then after each change.

        Long-polls ``GET /v1/health/service/:name`` with ``index`` and ``wait``
        (Consul's blocking queries): an answer with the same ``X-Consul-Index``
        is not a change; an index that goes backwards restarts the loop; the
        index sent is never below 1; requests are at least
        ``watch_min_interval`` apart. An unreachable agent is retried with
        backoff (logged as warnings) and the watch resumes when it returns;
        an agent that refuses the query (ACL, bad request) raises
        ``DiscoveryError``. Every answer also refreshes the discovery cache.
        Stop it by breaking out of the loop or cancelling the task.
        """
        loop = asyncio.get_running_loop()
        index = 0
        last: list[ServiceInstance] | None = None
        backoff = self._watch_min_interval
        wait = format_duration(self._watch_wait)
        # Consul adds up to wait/16 of jitter to a blocking query.
        timeout = self._watch_wait * 17 / 16 + self._request_timeout
        while True:
            started = loop.time()

            async def call(client: consul.aio.Consul, sent: int = index) -> tuple[Any, Any]:
                result: tuple[Any, Any] = await client.health.service(
                    name,
                    passing=True,
                    tag=tag,
                    index=sent or None,
                    wait=wait,
                    dc=self._datacenter,
                )
                return result

            try:
                # Not through the breaker: a blocking query may last
                # watch_wait, and must not hold the half-open trial slot.
                raw_index, entries = await self._request(f"watch {name!r}", call, timeout)
            except RegistryUnavailableError as exc:
                logger.warning("watch of %r: %s; retrying in %.1f s", name, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._watch_max_backoff)
                continue
            backoff = self._watch_min_interval
            new_index = _parse_index(raw_index)
            if last is None or new_index != index:
                instances = _parse_entries(entries)
                self._cache.put((name, tag), instances)
                if instances != last:
                    last = instances
                    yield instances
            if new_index < index:
                logger.info(
                    "watch of %r: Consul index went backwards (%d -> %d); restarting",
                    name,
                    index,
                    new_index,
                )
                new_index = 0
            # An index of 0 would turn the next request into a busy loop; 1 is always safe.
            index = max(new_index, 1)
            pause = self._watch_min_interval - (loop.time() - started)
            if pause > 0:
                await asyncio.sleep(pause)

    async def aping(self) -> bool:
        """``GET /v1/status/leader``: ``True`` when the agent answers and knows a leader.

        Raises ``RegistryUnavailableError`` otherwise (an agent without a
        leader cannot serve discovery).
        """

        async def call(client: consul.aio.Consul) -> object:
            return await client.status.leader()

        leader = await self._call("ping", call)
        if not leader:
            raise RegistryUnavailableError(f"Consul agent at {self.address} has no cluster leader")
        return True

    async def aclose(self) -> None:
        """Close the HTTP session. The registry can still be used; it reconnects."""
        client, self._client, self._client_loop = self._client, None, None
        if client is not None:
            await client.close()

    # -------------------------------------------------------------- internal
    def _client_for_loop(self) -> consul.aio.Consul:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            # aiohttp sessions belong to one event loop; a registry reused from
            # another loop (test suites, asyncio.run twice) gets a new one.
            with warnings.catch_warnings():
                # py-consul 1.8 still passes aiohttp's deprecated verify_ssl= and ssl_context=.
                warnings.filterwarnings(
                    "ignore", "(verify_ssl|ssl_context) is deprecated", DeprecationWarning
                )
                client = consul.aio.Consul(
                    host=self._host,
                    port=self._port,
                    scheme=self._scheme,
                    verify=self._verify,
                    dc=self._datacenter,
                )
            # py-consul reads CONSUL_HTTP_TOKEN *over* its token argument; the
            # explicit constructor argument is what this class promises.
            client.token = self._token
            self._client, self._client_loop = client, loop
        return self._client

    async def _call(self, what: str, call: Callable[[consul.aio.Consul], Awaitable[T]]) -> T:
        """One request through the breaker; errors typed as :meth:`_request` types them.

        Raises:
            RegistryUnavailableError: the agent failed, or the breaker refused
                the request without sending it (chained from ``CircuitOpenError``).
            DiscoveryError: the agent answered with a refusal (counts as a success).
        """
        refusal: DiscoveryError | None = None
        try:
            async with self._breaker:
                try:
                    return await self._request(what, call, self._request_timeout)
                except RegistryUnavailableError:
                    raise
                except DiscoveryError as exc:
                    refusal = exc  # the agent answered: it is up, the request was wrong
        except CircuitOpenError as exc:
            raise _refused_by_breaker(exc, what, self.address) from exc
        # The block either returned, raised, or kept the agent's refusal.
        raise refusal

    async def _request(
        self, what: str, call: Callable[[consul.aio.Consul], Awaitable[T]], limit: float
    ) -> T:
        """One request within ``limit`` seconds, with every failure typed."""
        client = self._client_for_loop()
        try:
            async with asyncio.timeout(limit):
                return await call(client)
        except TimeoutError as exc:
            raise RegistryUnavailableError(
                f"Consul agent at {self.address} did not answer ({what}) within {limit:.1f} s"
            ) from exc
        except aiohttp.ClientError as exc:
            raise RegistryUnavailableError(
                f"Consul agent at {self.address} is unreachable ({what}): {type(exc).__name__}"
            ) from exc
        except ConsulException as exc:
            raise _consul_error(exc, what, self.address) from exc

    async def _fetch_instances(self, name: str, tag: str | None) -> list[ServiceInstance]:
        async def call(client: consul.aio.Consul) -> tuple[Any, Any]:
            result: tuple[Any, Any] = await client.health.service(
                name, passing=True, tag=tag, dc=self._datacenter
            )
            return result

        _, entries = await self._call(f"discover {name!r}", call)
        return _parse_entries(entries)

    def _invalidate(self, name: str | None) -> None:
        if name is None:
            self._cache.invalidate()
        else:
            self._cache.invalidate(lambda key: key[0] == name)


class SyncConsulServiceRegistry:
    """The blocking twin of :class:`ConsulServiceRegistry`, for code without an event loop.

    Same constructor arguments (less the ``watch_*`` ones), same methods less
    ``watch``, same cache and failure behaviour; it runs on py-consul's
    ``requests`` client, whose errors (connection refused, timeouts, TLS) are
    mapped to :class:`~backend_kit.errors.RegistryUnavailableError` just like
    aiohttp's, and it has its own circuit breaker (``breaker``, same default).
    One instance may be shared between threads.
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        token: str | None = None,
        datacenter: str | None = None,
        verify: bool | str = True,
        request_timeout: float = 5.0,
        cache_ttl: float = 1.0,
        max_stale: float = 30.0,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._scheme, self._host, self._port = _parse_address(address)
        self._breaker = breaker if breaker is not None else _default_breaker(self.address)
        if request_timeout <= 0:
            raise ConfigurationError("request_timeout must be positive")
        self._token = token or None
        self._datacenter = datacenter or None
        self._verify = verify
        self._request_timeout = request_timeout
        self._cache: StaleWhileUnavailableCache[tuple[str, str | None], list[ServiceInstance]] = (
            StaleWhileUnavailableCache(ttl=cache_ttl, max_stale=max_stale)
        )
        self._names_by_id: dict[str, str] = {}
        self._round_robin: dict[tuple[str, str | None], itertools.count[int]] = {}
        self._lock = threading.Lock()  # requests sessions are not documented thread-safe
        self._client: consul.Consul | None = None

    @classmethod
    def from_env(cls, **options: Any) -> Self:
        """Configured from ``CONSUL_HTTP_ADDR``, ``CONSUL_HTTP_TOKEN``, ... like the async one."""
        address = _env_options(options)
        return cls(address, **options)

    @property
    def address(self) -> str:
        """The agent's HTTP API address (it never holds a secret)."""
        return f"{self._scheme}://{self._host}:{self._port}"

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker in front of the agent."""
        return self._breaker

    def __repr__(self) -> str:
        return f"SyncConsulServiceRegistry({self.address!r})"

    def register_service(
        self,
        name: str,
        service_id: str,
        port: int,
        *,
        address: str | None = None,
        tags: Sequence[str] = (),
        meta: Mapping[str, str] | None = None,
        check: ServiceCheck | None = None,
    ) -> None:
        """Blocking :meth:`ConsulServiceRegistry.register_service`."""
        normal_tags, normal_meta = validate_registration(name, service_id, port, tags, meta)
        check_body = _check_body(name, service_id, check)
        self._call(
            f"register {service_id!r}",
            lambda client: client.agent.service.register(
                name,
                service_id=service_id,
                address=address or None,
                port=port,
                tags=list(normal_tags),
                meta=normal_meta or None,
                check=check_body,
                replace_existing_checks=True,
            ),
        )
        self._names_by_id[service_id] = name
        self._invalidate(name)

    def deregister_service(self, service_id: str) -> bool:
        """Blocking :meth:`ConsulServiceRegistry.deregister_service`."""
        return self._deregister(service_id, through_breaker=True)

    def _deregister(self, service_id: str, *, through_breaker: bool) -> bool:
        what = f"deregister {service_id!r}"
        send = self._call if through_breaker else self._request
        known = bool(send(what, lambda client: client.agent.service.deregister(service_id)))
        self._invalidate(self._names_by_id.pop(service_id, None))
        return known

    def update_ttl(
        self, service_id: str, status: CheckStatus = "passing", *, note: str | None = None
    ) -> bool:
        """Blocking :meth:`ConsulServiceRegistry.update_ttl`."""
        method = _STATUS_CALLS.get(status)
        if method is None:
            raise ConfigurationError(f"status must be passing, warning or critical, not {status!r}")
        check_id = check_id_for(service_id)
        known = bool(
            self._call(
                f"update the TTL check of {service_id!r}",
                lambda client: getattr(client.agent.check, method)(check_id, notes=note),
            )
        )
        self._invalidate(self._names_by_id.get(service_id))
        return known

    def instances(self, name: str, *, tag: str | None = None) -> list[ServiceInstance]:
        """Blocking :meth:`ConsulServiceRegistry.instances` (same cache rules)."""

        def load() -> list[ServiceInstance]:
            _, entries = self._call(
                f"discover {name!r}",
                lambda client: client.health.service(
                    name, passing=True, tag=tag, dc=self._datacenter
                ),
            )
            return _parse_entries(entries)

        return self._cache.get_blocking((name, tag), load)

    def discover_service(self, name: str, *, tag: str | None = None) -> list[str]:
        """The healthy instances of ``name`` as ``"address:port"`` strings."""
        return [instance.endpoint for instance in self.instances(name, tag=tag)]

    def choose(
        self, name: str, *, tag: str | None = None, strategy: ChooseStrategy = "round_robin"
    ) -> ServiceInstance:
        """Blocking :meth:`ConsulServiceRegistry.choose`."""
        candidates = self.instances(name, tag=tag)
        if not candidates:
            raise NoHealthyInstanceError(f"no healthy instance of service {name!r}")
        if strategy == "random":
            return random.choice(candidates)  # noqa: S311 - load spreading, not security
        if strategy != "round_robin":
            raise ConfigurationError(f"unknown choose strategy {strategy!r}")
        with self._lock:
            counter = self._round_robin.setdefault((name, tag), itertools.count())
            position = next(counter)
        return candidates[position % len(candidates)]

    @contextmanager
    def registered(
        self,
        name: str,
        service_id: str,
        port: int,
        *,
        address: str | None = None,
        tags: Sequence[str] = (),
        meta: Mapping[str, str] | None = None,
        check: ServiceCheck | None = DEFAULT_REGISTERED_CHECK,
        heartbeat_interval: float | None = None,
    ) -> Iterator[None]:
        """Blocking :meth:`ConsulServiceRegistry.registered`; the heartbeat runs in a thread."""

        def register() -> None:
            self.register_service(
                name, service_id, port, address=address, tags=tags, meta=meta, check=check
            )

        register()
        stop = threading.Event()
        heartbeat: threading.Thread | None = None
        try:
            if isinstance(check, TtlCheck):
                interval = heartbeat_interval or check.ttl_seconds / 3
                if interval <= 0:
                    raise ConfigurationError("heartbeat_interval must be positive")
                self.update_ttl(service_id, "passing")
                heartbeat = threading.Thread(
                    target=self._heartbeat,
                    args=(service_id, interval, register, stop),
                    name=f"backend_kit.discovery heartbeat {service_id}",
                    daemon=True,
                )
                heartbeat.start()
            yield
        finally:
            stop.set()
            if heartbeat is not None:
                heartbeat.join()
            try:
                # Sent even while the breaker is open: the last chance to leave cleanly.
                self._deregister(service_id, through_breaker=False)
            except DiscoveryError as exc:
                logger.warning(
                    "could not deregister %s on exit (%s); its health check will take it out of rotation",
                    service_id,
                    exc,
                )

    def ping(self) -> bool:
        """``True`` when the agent answers and knows a leader; else ``RegistryUnavailableError``."""
        if not self._call("ping", lambda client: client.status.leader()):
            raise RegistryUnavailableError(f"Consul agent at {self.address} has no cluster leader")
        return True

    def close(self) -> None:
        """Close the HTTP session (py-consul's own ``close`` leaves it open)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.http.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -------------------------------------------------------------- internal
    def _heartbeat(
        self,
        service_id: str,
        interval: float,
        register: Callable[[], None],
        stop: threading.Event,
    ) -> None:
        while not stop.wait(interval):
            try:
                if not self.update_ttl(service_id, "passing"):
                    logger.warning(
                        "the registry no longer knows %s (agent restarted?); registering it again",
                        service_id,
                    )
                    register()
                    self.update_ttl(service_id, "passing")
            except RegistryUnavailableError as exc:
                logger.warning(
                    "heartbeat for %s failed (%s); retrying in %.1f s", service_id, exc, interval
                )
            except DiscoveryError as exc:
                logger.error(
                    "heartbeat for %s refused (%s); retrying in %.1f s", service_id, exc, interval
                )

    def _call(self, what: str, call: Callable[[consul.Consul], T]) -> T:
        """Blocking :meth:`ConsulServiceRegistry._call`: one request through the breaker."""
        refusal: DiscoveryError | None = None
        try:
            # Outside self._lock: an open breaker refuses without queueing behind a request.
            with self._breaker:
                try:
                    return self._request(what, call)
                except RegistryUnavailableError:
                    raise
                except DiscoveryError as exc:
                    refusal = exc  # the agent answered: it is up, the request was wrong
        except CircuitOpenError as exc:
            raise _refused_by_breaker(exc, what, self.address) from exc
        # The block either returned, raised, or kept the agent's refusal.
        raise refusal

    def _request(self, what: str, call: Callable[[consul.Consul], T]) -> T:
        with self._lock:
            if self._client is None:
                client = consul.Consul(
                    host=self._host,
                    port=self._port,
                    scheme=self._scheme,
                    verify=self._verify,
                    dc=self._datacenter,
                    connections_timeout=self._request_timeout,
                )
                client.token = self._token  # the argument wins over CONSUL_HTTP_TOKEN
                self._client = client
            try:
                return call(self._client)
            except requests.Timeout as exc:
                raise RegistryUnavailableError(
                    f"Consul agent at {self.address} did not answer ({what}) "
                    f"within {self._request_timeout:.1f} s"
                ) from exc
            except requests.RequestException as exc:
                raise RegistryUnavailableError(
                    f"Consul agent at {self.address} is unreachable ({what}): {type(exc).__name__}"
                ) from exc
            except ConsulException as exc:
                raise _consul_error(exc, what, self.address) from exc

    def _invalidate(self, name: str | None) -> None:
        if name is None:
            self._cache.invalidate()
        else:
            self._cache.invalidate(lambda key: key[0] == name)


# ------------------------------------------------------------------ helpers
def _default_breaker(address: str) -> CircuitBreaker:
    return CircuitBreaker(
        f"consul agent {address}",
        failure_threshold=BREAKER_FAILURE_THRESHOLD,
        reset_timeout=BREAKER_RESET_TIMEOUT,
    )


def _refused_by_breaker(exc: CircuitOpenError, what: str, address: str) -> RegistryUnavailableError:
    """The error for a request the open breaker did not send."""
    if exc.retry_after is None:
        when = "a trial request is in flight"
    else:
        when = f"next attempt in {exc.retry_after:.1f} s"
    return RegistryUnavailableError(
        f"Consul agent at {address} keeps failing; circuit breaker open, {when} ({what} not sent)"
    )


def _consul_error(exc: ConsulException, what: str, address: str) -> DiscoveryError:
    """The typed error for what py-consul raised from an agent's answer."""
    if isinstance(exc, ACLPermissionDenied | ACLDisabled):
        return DiscoveryError(f"Consul refused to {what}: permission denied (check the ACL token)")
    if isinstance(exc, BadRequest | ClientError | NotFound):
        return DiscoveryError(f"Consul rejected {what}: {_brief(exc)}")
    if isinstance(exc, ConsulTimeout):
        return RegistryUnavailableError(f"Consul agent at {address} timed out ({what})")
    # A 5xx ("No cluster leader", ...) or an answer py-consul could not decode.
    return RegistryUnavailableError(f"Consul agent at {address} failed to {what}: {_brief(exc)}")


def _env_options(options: dict[str, Any]) -> str:
    """Fill ``options`` from the ``CONSUL_HTTP_*`` variables; return the agent address."""
    address = os.environ.get("CONSUL_HTTP_ADDR") or DEFAULT_ADDRESS
    if "://" not in address and os.environ.get("CONSUL_HTTP_SSL", "").lower() == "true":
        address = f"https://{address}"
    options.setdefault("token", os.environ.get("CONSUL_HTTP_TOKEN") or None)
    if os.environ.get("CONSUL_HTTP_SSL_VERIFY", "").lower() == "false":
        options.setdefault("verify", False)
    return address


def _parse_address(address: str) -> tuple[str, str, int]:
    text = address.strip()
    if "://" not in text:
        text = f"http://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError("invalid Consul address: expected http://host:port") from exc
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigurationError("invalid Consul address: expected http://host:port")
    if parts.username or parts.password:
        raise ConfigurationError(
            "put the Consul token in token= or CONSUL_HTTP_TOKEN, not in the address"
        )
    default_port = 8501 if parts.scheme == "https" else 8500
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return parts.scheme, host, port if port is not None else default_port


def _check_body(name: str, service_id: str, check: ServiceCheck | None) -> dict[str, Any] | None:
    """The check definition as Consul's register body takes it (``Checks`` entries)."""
    if check is None:
        return None
    body: dict[str, Any] = {"CheckID": check_id_for(service_id)}
    if isinstance(check, TtlCheck):
        body["Name"] = f"Service '{name}' TTL check"
        body["TTL"] = format_duration(parse_duration(check.ttl))
    elif isinstance(check, HttpCheck):
        body["Name"] = f"Service '{name}' HTTP check"
        body["HTTP"] = check.url
        body["Interval"] = format_duration(parse_duration(check.interval))
        body["Timeout"] = format_duration(parse_duration(check.timeout))
    else:  # pragma: no cover - the type says it cannot happen; users may not use mypy
        raise ConfigurationError(f"unknown check type {type(check).__name__}")
    if check.deregister_after is not None:
        body["DeregisterCriticalServiceAfter"] = format_duration(
            parse_duration(check.deregister_after)
        )
    return body


def _parse_index(raw: object) -> int:
    try:
        return max(int(str(raw)), 0)
    except ValueError:
        return 0


def _parse_entries(entries: object) -> list[ServiceInstance]:
    """Instances from a ``/v1/health/service`` answer, ``Node.Address`` filling an empty address."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise DiscoveryError("malformed answer from Consul: expected a list of service entries")
    instances = []
    try:
        for entry in entries:
            service = entry["Service"]
            node = entry.get("Node") or {}
            instances.append(
                ServiceInstance(
                    service_id=str(service["ID"]),
                    name=str(service["Service"]),
                    # Documented fallback: an empty Service.Address means the node's address.
                    address=str(service.get("Address") or node.get("Address") or ""),
                    port=int(service.get("Port") or 0),
                    tags=tuple(str(tag) for tag in service.get("Tags") or ()),
                    meta={str(k): str(v) for k, v in (service.get("Meta") or {}).items()},
                )
            )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DiscoveryError("malformed service entry in Consul's answer") from exc
    instances.sort(key=lambda instance: (instance.service_id, instance.address, instance.port))
    return instances


def _brief(exc: BaseException) -> str:
    """The agent's own words, trimmed (they name ids and fields, never secrets)."""
    text = " ".join(str(exc).split())
    return text[:200] + ("..." if len(text) > 200 else "")
