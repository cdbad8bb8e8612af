"""Fixtures of the replication tests: real Redis (the machine's, or a private
``redis-server`` a test can kill and restart), real PostgreSQL, and buses that are
stopped at the end of the test.

Every test uses its own server name, so its channel is its own even when tests run
in parallel against one Redis.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis

from homeserver.config.sections import RedisConfig
from homeserver.replication.bus import RedisBus, Sleep
from homeserver.replication.notices import Notice
from storage.database import Database
from tests.pg_schemas import PgSchemaPool
from tests.push.support import gateway

__all__ = ["gateway"]  # (a push gateway on loopback, for the pusher role's tests)

REDIS_HOST = os.environ.get("HOMESERVER_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("HOMESERVER_TEST_REDIS_PORT", "6379"))
REDIS_SERVER = os.environ.get("HOMESERVER_TEST_REDIS_SERVER", "/usr/bin/redis-server")
DEADLINE_S = 15.0


async def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S) -> None:
    """Return once ``condition()`` holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


@pytest.fixture
def server_name() -> str:
    return f"t{secrets.token_hex(6)}.test"


@pytest.fixture
def redis_config() -> RedisConfig:
    return RedisConfig(enabled=True, host=REDIS_HOST, port=REDIS_PORT)


@pytest.fixture
async def pg(pg_schemas: PgSchemaPool) -> AsyncIterator[Database]:
    """A migrated PostgreSQL schema (the multi-writer streams need its sequences)."""
    db, schema = await pg_schemas.open()
    try:
        yield db
    finally:
        await db.close()
        pg_schemas.release(schema)


@dataclass
class Received:
    """What a bus handed to a subscriber, in order."""

    notices: list[Notice] = field(default_factory=list)

    def __call__(self, notice: Notice) -> None:
        self.notices.append(notice)


BusFactory = Callable[..., Awaitable[RedisBus]]


@pytest.fixture
async def make_bus(redis_config: RedisConfig, server_name: str) -> AsyncIterator[BusFactory]:
    """Start a bus (its own connections) for an instance; all are stopped at the end."""
    buses: list[RedisBus] = []

    async def factory(
        instance: str,
        *,
        config: RedisConfig | None = None,
        sleep: Sleep | None = None,
        start: bool = True,
        wait: bool = True,
        setup: Callable[[RedisBus], None] | None = None,
    ) -> RedisBus:
        kwargs = {} if sleep is None else {"sleep": sleep}
        bus = RedisBus(config or redis_config, server_name, instance, **kwargs)
        buses.append(bus)
        if setup is not None:
            setup(bus)
        if start:
            await bus.start()
            if wait:
                await bus.wait_connected(DEADLINE_S)
        return bus

    yield factory
    for bus in buses:
        await bus.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A ``redis-server`` of one test, on a port of its own, that the test may kill
    and start again on the same port (nothing kept on disk)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._process: asyncio.subprocess.Process | None = None

    @property
    def config(self) -> RedisConfig:
        return RedisConfig(enabled=True, host="127.0.0.1", port=self.port)

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        client = aioredis.Redis(host="127.0.0.1", port=self.port)
        try:
            deadline = time.monotonic() + DEADLINE_S
            while True:
                try:
                    if await client.ping():
                        return
                except (OSError, aioredis.ConnectionError):
                    pass
                if self._process.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}")
                await asyncio.sleep(0.01)
        finally:
            await client.aclose()

    async def kill(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()


@pytest.fixture
async def private_redis() -> AsyncIterator[PrivateRedis]:
    server: PrivateRedis | None = None
    for _ in range(5):  # another program may take the port between pick and bind
        candidate = PrivateRedis(free_port())
        try:
            await candidate.start()
        except RuntimeError:
            await candidate.kill()
            continue
        server = candidate
        break
    assert server is not None, "could not start a private redis-server"
    try:
        yield server
    finally:
        await server.kill()
