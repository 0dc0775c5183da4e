"""Events benchmark: AmqpEventBus against raw aio-pika (the floor) and FastStream.

Run (needs RabbitMQ; AMQP_URL or the loopback default):

    python benchmarks/events_bench.py [--rounds 9] [--messages 1500]

Every variant runs once per round, in a shuffled order each round (so no
variant always follows a slow one), on the same broker, exchange and JSON
payload (serialized per message in every variant). Printed: the median
throughput (messages/s) of each variant over the rounds, its ratio to (a),
this process's CPU time per message (robust to load from other processes;
the broker's CPU is not in it), and the target ratios computed *within each
round* (paired; compared variants run back to back), median over the rounds
with their min-max, which is what resists a shared, noisy machine.

Publishing (to a durable topic exchange, persistent messages, one bound queue,
purged between variants):
  a  raw aio-pika, no confirms (the ceiling every ratio is taken against)
  b  raw aio-pika, confirmed one by one
  c  raw aio-pika, confirmed with 500 in flight (semaphore + tasks)
  d  bus.publish_event, one by one (confirmed, mandatory)
  e  bus.publish_many (confirm window 500)
  f  FastStream broker.publish, gathered (confirms on, its default)

End to end (publish -> consume -> ack, prefetch 100 everywhere; the same raw
unconfirmed publisher feeds every consumer so the consumer is what differs):
  g  raw aio-pika consumer (orjson.loads + message.ack())
  h  FastStream subscriber (its default: ack after the handler returns;
     its per-message logging turned off, which only helps it)
  i  bus.subscribe (envelope validation, Event, ack after the handler)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import orjson
from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange, RabbitQueue
from faststream.rabbit.schemas import Channel

from backend_kit.events import Event, encode_event
from backend_kit.events.amqp import AmqpEventBus

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PAYLOAD = {"order_id": 0, "total": "19.90", "currency": "EUR", "items": [1, 2, 3]}
WINDOW = 500
PREFETCH = 100


def _body(n: int) -> bytes:
    return orjson.dumps({**PAYLOAD, "order_id": n})


class Bench:
    def __init__(self, messages: int) -> None:
        self.n = messages
        self.exchange_name = f"bench_events_{uuid.uuid4().hex[:8]}"
        self.sink_name = self.exchange_name + ".sink"

    async def setup(self) -> None:
        self.conn = await aio_pika.connect_robust(URL)
        self.fast_channel = await self.conn.channel(publisher_confirms=False)
        self.confirm_channel = await self.conn.channel(publisher_confirms=True)
        self.admin = await self.conn.channel()
        self.exchange_fast = await self.fast_channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self.exchange_confirm = await self.confirm_channel.get_exchange(self.exchange_name)
        self.sink = await self.admin.declare_queue(self.sink_name, durable=True)
        await self.sink.bind(self.exchange_name, "pub.#")

        self.bus = AmqpEventBus(URL, exchange=self.exchange_name, confirm_window=WINDOW)
        await self.bus.connect()

        # Consumers for the end-to-end variants, each on its own queue and key.
        self.received: dict[str, int] = {"raw": 0, "fs": 0, "bus": 0}
        self.done: dict[str, asyncio.Event] = {k: asyncio.Event() for k in self.received}
        self.target = self.n

        self.raw_consumer_channel = await self.conn.channel()
        await self.raw_consumer_channel.set_qos(prefetch_count=PREFETCH)
        raw_queue = await self.raw_consumer_channel.declare_queue(
            self.exchange_name + ".raw", durable=True
        )
        await raw_queue.bind(self.exchange_name, "e2e.raw")

        async def raw_handler(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            orjson.loads(message.body)
            await message.ack()
            self._count("raw")

        await raw_queue.consume(raw_handler)
        self.raw_queue = raw_queue

        # logger=None: FastStream logs two lines per message by default; the
        # peer is measured without that cost, as a tuned deployment would run it.
        self.broker = RabbitBroker(
            URL, default_channel=Channel(prefetch_count=PREFETCH), logger=None
        )
        exchange = RabbitExchange(self.exchange_name, type=ExchangeType.TOPIC, durable=True)

        @self.broker.subscriber(
            RabbitQueue(self.exchange_name + ".fs", durable=True, routing_key="e2e.fs"), exchange
        )
        async def fs_handler(body: dict[str, Any]) -> None:
            self._count("fs")

        await self.broker.start()
        self.fs_exchange = exchange

        async def bus_handler(event: Event) -> None:
            self._count("bus")

        self.subscription = await self.bus.subscribe(
            "e2e.bus", bus_handler, group="bench", prefetch=PREFETCH
        )

    def _count(self, key: str) -> None:
        self.received[key] += 1
        if self.received[key] >= self.target:
            self.done[key].set()

    async def teardown(self) -> None:
        await self.broker.stop()
        await self.bus.close()
        # Close the robust connection first: deleting a queue a robust channel
        # still consumes from makes aio-pika re-declare it.
        await self.conn.close()
        connection = await aio_pika.connect(URL)
        async with connection:
            channel = await connection.channel()
            for name in [
                self.sink_name,
                self.exchange_name + ".raw",
                self.exchange_name + ".fs",
                self.subscription.queue,
                self.subscription.dead_letter_queue,
                self.subscription.queue + ".retry.1000ms",
            ]:
                await channel.queue_delete(name)
            await channel.exchange_delete(self.exchange_name)

    # ---------------------------------------------------------------- publish
    async def a_raw_unconfirmed(self) -> None:
        for n in range(self.n):
            await self.exchange_fast.publish(
                aio_pika.Message(_body(n), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                "pub.order",
            )

    async def b_raw_confirmed_one_by_one(self) -> None:
        for n in range(self.n):
            await self.exchange_confirm.publish(
                aio_pika.Message(_body(n), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                "pub.order",
            )

    async def c_raw_confirmed_window(self) -> None:
        window = asyncio.Semaphore(WINDOW)

        async def one(n: int) -> None:
            try:
                await self.exchange_confirm.publish(
                    aio_pika.Message(_body(n), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    "pub.order",
                )
            finally:
                window.release()

        tasks = []
        for n in range(self.n):
            await window.acquire()
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)

    async def d_bus_publish_event(self) -> None:
        for n in range(self.n):
            await self.bus.publish_event("pub.order", {**PAYLOAD, "order_id": n})

    async def e_bus_publish_many(self) -> None:
        await self.bus.publish_many(
            Event.create("pub.order", {**PAYLOAD, "order_id": n}) for n in range(self.n)
        )

    async def f_faststream_gathered(self) -> None:
        await asyncio.gather(
            *(
                self.broker.publish(
                    {**PAYLOAD, "order_id": n},
                    exchange=self.fs_exchange,
                    routing_key="pub.order",
                    persist=True,
                )
                for n in range(self.n)
            )
        )

    # ---------------------------------------------------------------- end to end
    async def _e2e(self, key: str, routing_key: str) -> None:
        self.received[key] = 0
        self.done[key].clear()
        for n in range(self.n):
            event = Event.create("e2e", {**PAYLOAD, "order_id": n})
            await self.exchange_fast.publish(
                aio_pika.Message(
                    encode_event(event), delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                ),
                routing_key,
            )
        await asyncio.wait_for(self.done[key].wait(), 60)

    async def g_raw_consumer(self) -> None:
        await self._e2e("raw", "e2e.raw")

    async def h_faststream_subscriber(self) -> None:
        await self._e2e("fs", "e2e.fs")

    async def i_bus_subscribe(self) -> None:
        await self._e2e("bus", "e2e.bus")


async def main(rounds: int, messages: int) -> None:
    bench = Bench(messages)
    await bench.setup()
    variants: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("a raw publish, no confirms", bench.a_raw_unconfirmed),
        ("b raw confirmed one by one", bench.b_raw_confirmed_one_by_one),
        ("c raw confirmed, 500 in flight", bench.c_raw_confirmed_window),
        ("d bus.publish_event one by one", bench.d_bus_publish_event),
        ("e bus.publish_many", bench.e_bus_publish_many),
        ("f FastStream publish gathered", bench.f_faststream_gathered),
        ("g e2e raw aio-pika consumer", bench.g_raw_consumer),
        ("h e2e FastStream subscriber", bench.h_faststream_subscriber),
        ("i e2e bus.subscribe", bench.i_bus_subscribe),
    ]
    rates: dict[str, list[float]] = {name: [] for name, _ in variants}
    cpu_us: dict[str, list[float]] = {name: [] for name, _ in variants}
    by_name = dict(variants)
    # Variants compared with each other run back to back (in a shuffled
    # order), so a burst of load from other work hits both sides of a ratio.
    groups = [
        ["a raw publish, no confirms"],
        ["b raw confirmed one by one", "d bus.publish_event one by one"],
        [
            "c raw confirmed, 500 in flight",
            "e bus.publish_many",
            "f FastStream publish gathered",
        ],
        [
            "g e2e raw aio-pika consumer",
            "h e2e FastStream subscriber",
            "i e2e bus.subscribe",
        ],
    ]
    shuffler = random.Random(7)  # the same sequence of orders every run
    try:
        await bench.a_raw_unconfirmed()  # warm-up
        await bench.sink.purge()
        for _ in range(rounds):
            shuffler.shuffle(groups)
            for group in groups:
                shuffler.shuffle(group)
                for name in group:
                    cpu_started = time.process_time()
                    started = time.perf_counter()
                    await by_name[name]()
                    elapsed = time.perf_counter() - started
                    rates[name].append(messages / elapsed)
                    cpu_us[name].append((time.process_time() - cpu_started) / messages * 1e6)
                    await bench.sink.purge()
    finally:
        await bench.teardown()

    med = {name: statistics.median(values) for name, values in rates.items()}
    a = med["a raw publish, no confirms"]
    print(
        f"\nevents benchmark: {rounds} interleaved rounds x {messages} messages, {URL.split('@')[-1]}"
    )
    print(f"{'variant':36} {'msg/s (median)':>15} {'vs a':>7} {'CPU us/msg':>11}")
    for name, value in med.items():
        cpu = statistics.median(cpu_us[name])
        print(f"{name:36} {value:15,.0f} {value / a:6.2f}x {cpu:11.0f}")
    print()
    targets = [
        (
            "publish_many / raw 500 in flight",
            "e bus.publish_many",
            "c raw confirmed, 500 in flight",
            0.9,
        ),
        (
            "publish_event / raw one by one",
            "d bus.publish_event one by one",
            "b raw confirmed one by one",
            None,
        ),
        ("subscribe / raw consumer", "i e2e bus.subscribe", "g e2e raw aio-pika consumer", 0.9),
        ("subscribe / FastStream", "i e2e bus.subscribe", "h e2e FastStream subscriber", 1.3),
    ]
    print(f"{'paired ratio (per round)':36} {'median':>7} {'min-max':>12}  target")
    for label, ours, theirs, target in targets:
        paired = [x / y for x, y in zip(rates[ours], rates[theirs], strict=True)]
        verdict = (
            ""
            if target is None
            else f">= {target} {'met' if statistics.median(paired) >= target else 'MISSED'}"
        )
        print(
            f"{label:36} {statistics.median(paired):6.2f}x {min(paired):5.2f}-{max(paired):.2f}x  {verdict}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--messages", type=int, default=1500)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.messages))
