"""A redis-server a fault test starts on a free loopback port and stops at will.

Never the shared server: tests kill, stop (SIGSTOP) and restart their own.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

__all__ = ["OwnRedis", "start_own_redis"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class OwnRedis:
    """A redis-server this test started, on its own port, to stop at will."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)


def start_own_redis(tmp_path: Path, port: int | None = None) -> OwnRedis:
    port = port or _free_port()
    tmp_path.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    try:
        for _ in range(200):
            try:
                if client.ping():
                    return OwnRedis(port, process)
            except redis.ConnectionError:
                time.sleep(0.025)
    finally:
        client.close()
    process.kill()
    raise RuntimeError("redis-server did not start")
