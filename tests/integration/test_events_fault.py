"""Fault test: RabbitMQ restarts (``rabbitmqctl stop_app`` / ``start_app``) mid-stream.

5,000 events are published with confirms and consumed while the broker's
application stops and starts again. Every event whose publish was confirmed
must be consumed at least once (deduplicated by id: zero lost), and
consumption must resume with no call from the test. The broker is always
restarted in a ``finally`` and waited for (``rabbitmqctl await_startup``).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from urllib.parse import urlsplit

import pytest

from backend_kit.errors import PublishError
from backend_kit.events import Event, Subscription
from tests.events_contract import eventually
from tests.integration.events_support import TrackingAmqpEventBus, delete_topology, queues_of

pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.timeout(120)]

TOTAL = 5_000
BATCH = 50


async def _rabbitmqctl(*args: str, within: float = 60.0) -> None:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {stderr.decode()[-300:]}")


async def test_no_confirmed_event_is_lost_across_a_broker_restart(
    amqp_url: str, unique_name: str
) -> None:
    if shutil.which("rabbitmqctl") is None or urlsplit(amqp_url).hostname not in (
        "127.0.0.1",
        "localhost",
    ):
        pytest.skip("needs the local broker's rabbitmqctl to restart it")
    declared: list[Subscription] = []
    bus = TrackingAmqpEventBus(
        amqp_url,
        declared=declared,
        exchange=unique_name,
        publish_timeout=45.0,  # long enough to ride out the restart
        reconnect_interval=0.5,
        shutdown_timeout=2.0,
    )
    received: set[str] = set()
    deliveries = 0

    async def handler(event: Event) -> None:
        nonlocal deliveries
        deliveries += 1
        received.add(event.id)

    confirmed: list[str] = []
    unconfirmed: list[str] = []
    restart = {"stopped_at": 0.0, "started_at": 0.0, "confirmed_before_stop": 0}

    async def publish_all() -> None:
        for start in range(0, TOTAL, BATCH):
            batch = [Event.create("fault.tick", {"n": n}) for n in range(start, start + BATCH)]
            try:
                await bus.publish_many(batch)
            except PublishError as exc:
                failed = set(exc.event_ids)
                unconfirmed.extend(failed)
                confirmed.extend(e.id for e in batch if e.id not in failed)
            else:
                confirmed.extend(e.id for e in batch)
            await asyncio.sleep(0.02)  # spread the stream so the restart lands in the middle

    async def restart_broker() -> None:
        await eventually(lambda: len(confirmed) >= 1_000, within=30, what="1,000 confirms")
        restart["confirmed_before_stop"] = len(confirmed)
        try:
            await _rabbitmqctl("stop_app")
            restart["stopped_at"] = time.monotonic()
            await asyncio.sleep(1.0)
        finally:
            # Always give the shared broker back, whatever happened above.
            await _rabbitmqctl("start_app")
            await _rabbitmqctl("await_startup", within=60)
            restart["started_at"] = time.monotonic()

    started = time.monotonic()
    try:
        async with asyncio.timeout(85):
            await bus.connect()
            await bus.subscribe("fault.#", handler, group="survivor", prefetch=200)
            await asyncio.gather(publish_all(), restart_broker())
            # Consumption resumes by itself: no reconnect or resubscribe call here.
            await eventually(
                lambda: set(confirmed) <= received,
                within=40,
                what="every confirmed event to be consumed",
            )
    finally:
        try:
            await bus.close()
        finally:
            await _rabbitmqctl("await_startup", within=60)
            await delete_topology(
                amqp_url, unique_name, [q for sub in declared for q in queues_of(sub)]
            )

    assert restart["stopped_at"] > 0, "the broker was never stopped"
    assert restart["confirmed_before_stop"] < TOTAL, "the restart did not land mid-stream"
    lost = set(confirmed) - received
    assert lost == set(), f"{len(lost)} confirmed events were lost"
    assert len(confirmed) + len(unconfirmed) == TOTAL
    assert len(confirmed) >= TOTAL * 0.9  # publishing rode out the restart
    assert time.monotonic() - started < 90
    print(  # noqa: T201 - shown with -s: what the restart cost
        f"\nrestart: {len(confirmed)} confirmed, {len(unconfirmed)} unconfirmed, "
        f"{deliveries - len(received)} duplicate deliveries, "
        f"{time.monotonic() - started:.1f} s in all"
    )
