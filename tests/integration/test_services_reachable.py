"""A round trip to each real service with its raw client.

These pin the ground the component tests stand on: if one of these fails,
the service (not backend_kit) is the problem.
"""

from __future__ import annotations

import uuid

import aio_pika
import psycopg
import redis
from sqlalchemy.engine import make_url


def test_redis_round_trip(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    key = f"bk-test:{uuid.uuid4().hex}"
    try:
        assert client.set(key, b"value", ex=10)
        assert client.get(key) == b"value"
    finally:
        client.delete(key)
        client.close()


def test_postgres_round_trip(postgres_url: str) -> None:
    url = make_url(postgres_url)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, connect_timeout=5) as conn:
        row = conn.execute("SELECT %s::int + 1", (41,)).fetchone()
    assert row == (42,)


async def test_rabbitmq_round_trip(amqp_url: str) -> None:
    connection = await aio_pika.connect(amqp_url, timeout=5)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await channel.default_exchange.publish(
            aio_pika.Message(body=b"ping"), routing_key=queue.name
        )
        message = await queue.get(timeout=5, fail=True)
        assert message is not None
        await message.ack()
        assert message.body == b"ping"
