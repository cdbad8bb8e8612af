"""Two real ``Homeserver``s as processes "A" and "B" of one homeserver, on one
migrated PostgreSQL schema, each with its own connection pool and caches, and an
in-memory bus standing for Redis between them.

The bus keeps what each server publishes (through the wire form, as over Redis) and
hands it to the other server's cache invalidator, and to its role notices when it
has them, only when the test says so (``deliver``). Used by test_invalidation,
test_resync_caches and test_roles. PostgreSQL only: workers refuse SQLite (its IDs
are allocated in-process).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from homeserver.clock import FakeClock
from homeserver.replication.invalidation import CacheInvalidator
from homeserver.replication.notices import (
    CacheNotice,
    Notice,
    RoomEventNotice,
    UserStreamNotice,
    decode_notice,
    encode_notice,
)
from homeserver.replication.roles import ProcessRoles, RoleNotices
from homeserver.server import Homeserver
from storage.connect import open_postgres
from storage.database import Database
from tests.conftest import HomeserverHarness, make_config
from tests.pg_schemas import PgSchemaPool
from tests.rooms.helpers import User, make_user

INSTANCES = ("A", "B")


@dataclasses.dataclass
class Receiver:
    """What takes a process's notices: its cache invalidator, and its role notices
    when the test gives it roles (None: role notices are not delivered)."""

    invalidator: CacheInvalidator
    roles: RoleNotices | None = None

    async def apply(self, notice: Notice) -> None:
        if isinstance(notice, RoomEventNotice):
            self.invalidator.on_room_event(notice)
            if self.roles is not None:
                self.roles.on_room_event(notice)
        elif isinstance(notice, UserStreamNotice):
            self.invalidator.on_user_stream(notice)
        elif isinstance(notice, CacheNotice):
            await self.invalidator.on_cache(notice)
        elif self.roles is not None:
            self.roles.on_notice(notice)


class MemoryBus:
    """Redis pub/sub in a list: every server's notices wait here until delivered to
    the others."""

    def __init__(self) -> None:
        self.pending: list[bytes] = []
        self.published: list[Notice] = []
        self.receivers: dict[str, Receiver] = {}
        self.delivering = True  # False: notices are dropped (shows a test needs them)

    def publisher(self, instance: str) -> InstancePublisher:
        return InstancePublisher(self, instance)

    def kinds(self, kind: type[Any]) -> list[Any]:
        """The notices of ``kind`` published so far, delivered or not."""
        return [n for n in self.published if isinstance(n, kind)]

    async def deliver(self) -> None:
        """Apply every pending notice to every server but its writer."""
        while self.pending:
            notice = decode_notice(self.pending.pop(0))
            if not self.delivering:
                continue
            for instance, receiver in self.receivers.items():
                if instance != notice.instance:
                    await receiver.apply(notice)


@dataclasses.dataclass
class InstancePublisher:
    bus: MemoryBus
    instance: str

    def publish(self, notice: Notice) -> None:
        assert notice.instance == self.instance
        self.bus.published.append(notice)
        self.bus.pending.append(encode_notice(notice))


@dataclasses.dataclass
class TwoProcesses:
    a: HomeserverHarness
    b: HomeserverHarness
    bus: MemoryBus

    async def user(self, localpart: str) -> tuple[User, User]:
        """A user registered on A, and the same user (same token) talking to B."""
        on_a = await make_user(self.a, localpart)
        return on_a, dataclasses.replace(on_a, hs=self.b)


async def serve(server: Homeserver, clock: FakeClock) -> HomeserverHarness:
    """``server``'s client API behind a test server."""
    test_server = TestServer(server.make_app({"client"}))
    await test_server.start_server(access_log=None)
    client: TestClient[Any, Any] = TestClient(test_server)
    await client.start_server()
    return HomeserverHarness(server, client, clock)


@asynccontextmanager
async def two_processes(
    pg_schemas: PgSchemaPool,
    tmp_path: Path,
    *,
    roles: Callable[[str], ProcessRoles] | None = None,
    prepare: Callable[[str, Homeserver, MemoryBus], None] | None = None,
) -> AsyncIterator[TwoProcesses]:
    """A and B on one schema, their notices on one bus. ``roles``: each instance's
    roles (None: single-process defaults, and role notices are not delivered);
    ``prepare``: called with each built server before it serves."""
    db_a, schema = await pg_schemas.open()
    databases: list[Database] = [db_a]
    harnesses: list[HomeserverHarness] = []
    try:
        databases.append(
            await open_postgres(pg_schemas.conninfo, min_size=1, max_size=4, search_path=schema)
        )
        bus = MemoryBus()
        config = make_config(
            tmp_path, enable_ephemeral_messages=True, ip_range_whitelist=["127.0.0.0/8"]
        )
        for instance, db in zip(INSTANCES, databases, strict=True):
            clock = FakeClock()
            server = await Homeserver.build(
                config,
                clock=clock,
                db=db,
                publisher=bus.publisher(instance),
                instance_name=instance,
                roles=None if roles is None else roles(instance),
            )
            assert server.cache_invalidator is not None and server.role_notices is not None
            bus.receivers[instance] = Receiver(
                server.cache_invalidator, None if roles is None else server.role_notices
            )
            if prepare is not None:
                prepare(instance, server, bus)
            harnesses.append(await serve(server, clock))
        yield TwoProcesses(harnesses[0], harnesses[1], bus)
    finally:
        for harness in harnesses:
            await harness.client.close()
            await harness.server.close()  # (its outbound HTTP clients too)
        for db in databases:
            await db.close()
        pg_schemas.release(schema)
