"""Shared fixtures: a database of each engine for every storage-touching test.

PostgreSQL tests use one database per test run (``hs_test_<random>``), dropped at
the end, and a fresh schema per test inside it, so runs and tests never see each
other. Set ``HOMESERVER_TEST_PG`` to a libpq conninfo to point them elsewhere.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from homeserver.clock import FakeClock
from homeserver.config import HomeserverConfig, parse_config
from homeserver.server import Homeserver
from storage.database import Database
from tests.pg_schemas import PgSchemaPool
from tests.sqlite_seed import SqliteSeed

PG_ADMIN = os.environ.get(
    "HOMESERVER_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)


def pytest_configure(config: pytest.Config) -> None:
    look_up_system_cas_lazily()


def look_up_system_cas_lazily() -> None:
    """Every ``ssl.create_default_context()`` parses the whole system CA bundle (about
    40 ms), and building a homeserver makes four of them. Where the same authorities
    are also in OpenSSL's hashed directory (Debian's /etc/ssl/certs), point the bundle
    at an empty file: OpenSSL then reads from the directory only the authority a
    verification needs, and trusts exactly the same ones. This process and the
    servers it starts (which inherit the environment) build contexts in well under
    a millisecond. Left alone where the bundle is not the system's one."""
    paths = ssl.get_default_verify_paths()
    bundle = os.environ.get(paths.openssl_cafile_env, paths.openssl_cafile)
    directory = os.environ.get(paths.openssl_capath_env, paths.openssl_capath)
    if os.path.realpath(bundle) != os.path.realpath(paths.openssl_cafile):
        return  # a bundle of someone's choice: keep it
    if not os.path.isdir(directory) or not any(
        name.endswith(".0") for name in os.listdir(directory)
    ):
        return  # no hashed directory to look authorities up in
    os.environ[paths.openssl_cafile_env] = os.devnull
    os.environ[paths.openssl_capath_env] = directory


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database for this test run; yields its conninfo."""
    name = f"hs_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.replace("dbname=postgres", "")
    yield f"{base} dbname={name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_schemas(pg_database: str) -> Iterator[PgSchemaPool]:
    """Migrated schemas of this worker's database, reused from test to test."""
    pool = PgSchemaPool(pg_database)
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def sqlite_seed(tmp_path_factory: pytest.TempPathFactory) -> SqliteSeed:
    """This worker's migrated SQLite file, copied for each test."""
    return SqliteSeed(tmp_path_factory.mktemp("sqlite-seed"))


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Database]:
    """A freshly migrated database of the parametrised engine (a copy of this
    worker's migrated SQLite file, or a schema of its PostgreSQL pool, as the
    migrations left it)."""
    if engine == "sqlite":
        seed: SqliteSeed = request.getfixturevalue("sqlite_seed")
        db = await seed.open(tmp_path / "homeserver.db")
        try:
            yield db
        finally:
            await db.close()
        return
    pool: PgSchemaPool = request.getfixturevalue("pg_schemas")
    db, schema = await pool.open()
    try:
        yield db
    finally:
        await db.close()
        pool.release(schema)


# -- a homeserver behind a real aiohttp test server ---------------------------------


UNLIMITED = {"per_second": 1000, "burst_count": 1000}


def make_config(tmp_path: Path, **overrides: Any) -> HomeserverConfig:
    """A test config: open registration, fast bcrypt, no rate limits unless asked,
    anyone may publish rooms."""
    raw: dict[str, Any] = {
        "server_name": "test.local",
        "listeners": [{"port": 8008, "resources": [{"names": ["client"]}]}],
        "signing_key_path": str(tmp_path / "signing.key"),
        "media_store_path": str(tmp_path / "media"),
        "enable_registration": True,
        "enable_registration_without_verification": True,
        "bcrypt_rounds": 4,
        "rc_message": UNLIMITED,
        "rc_registration": UNLIMITED,
        "rc_login": {"address": UNLIMITED, "account": UNLIMITED, "failed_attempts": UNLIMITED},
        "rc_joins": {"local": UNLIMITED, "remote": UNLIMITED},
        "rc_room_creation": UNLIMITED,
        "rc_reports": UNLIMITED,
        "rc_presence": {"per_user": UNLIMITED},
        "room_list_publication_rules": [{"action": "allow"}],
    }
    raw.update(overrides)
    return parse_config(raw, environ={})


@dataclasses.dataclass
class HomeserverHarness:
    server: Homeserver
    client: TestClient[Any, Any]
    clock: FakeClock

    async def register(
        self, localpart: str, password: str = "correct horse", **extra: Any
    ) -> dict[str, Any]:
        """Register through the API (two-step UIA with m.login.dummy); return the response."""
        body = {"username": localpart, "password": password, **extra}
        first = await self.client.post("/_matrix/client/v3/register", json=body)
        assert first.status == 401, await first.text()
        session = (await first.json())["session"]
        body["auth"] = {"type": "m.login.dummy", "session": session}
        second = await self.client.post("/_matrix/client/v3/register", json=body)
        assert second.status == 200, await second.text()
        return dict(await second.json())


HarnessFactory = Callable[..., Awaitable[HomeserverHarness]]


@pytest.fixture
async def make_homeserver(database: Database, tmp_path: Path) -> AsyncIterator[HarnessFactory]:
    """Build a homeserver over the parametrised database, served by a test server."""
    started: list[HomeserverHarness] = []

    async def factory(**overrides: Any) -> HomeserverHarness:
        config = make_config(tmp_path, **overrides)
        clock = FakeClock()
        server = await Homeserver.build(config, clock=clock, db=database)
        app = server.make_app({"client", "federation", "keys", "media"})
        test_server = TestServer(app)
        await test_server.start_server(access_log=None)
        client: TestClient[Any, Any] = TestClient(test_server)
        await client.start_server()
        harness = HomeserverHarness(server, client, clock)
        started.append(harness)
        return harness

    yield factory
    for harness in started:
        await harness.client.close()
        # its outbound HTTP clients (federation, appservices, identity servers) too;
        # the database is closed again, harmlessly, by the database fixture
        await harness.server.close()


@pytest.fixture
async def hs(make_homeserver: HarnessFactory) -> HomeserverHarness:
    return await make_homeserver()
