"""Real federating homeservers of this project on loopback HTTPS, for tests.

Use the ``federation_servers`` fixture (registered in ``tests/federation/conftest.py``;
other test packages can import it from here into their conftest)::

    async def test_something(federation_servers):
        alice_hs, bob_hs = await federation_servers(2)
        await alice_hs.fed.client.get_json(bob_hs.server_name, "/_matrix/federation/v1/version")

Each server has its own database (of the parametrised engine), signing key, media
store and server name ``localhost:<port>``, and serves ``federation`` and ``keys`` on
a real TLS listener (``homeserver/server.py``) with a self-signed certificate made
for the test session. Certificates are not verified (``federation_verify_certificates:
false``) and 127.0.0.0/8 is whitelisted, as in a test network. Their client API is a
:class:`HomeserverHarness` (``server.harness``), so ``tests.rooms.helpers.make_user``
works on each. All servers share one :class:`FakeClock`.
"""

from __future__ import annotations

import dataclasses
import errno
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from federation.context import FederationContext
from homeserver.clock import FakeClock
from homeserver.selfsigned import make_self_signed_certificate
from homeserver.server import Homeserver
from storage.database import Database
from tests.conftest import HomeserverHarness, make_config
from tests.pg_schemas import PgSchemaPool
from tests.sqlite_seed import SqliteSeed


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    certificate: Path
    private_key: Path


def make_test_certificate(directory: Path) -> TlsFiles:
    """A self-signed certificate for ``localhost`` and 127.0.0.1 (via ``openssl``)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test TLS certificate")
    return TlsFiles(*make_self_signed_certificate(directory))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class FederatingServer:
    server: Homeserver
    harness: HomeserverHarness
    port: int

    @property
    def server_name(self) -> str:
        return self.server.config.server_name

    @property
    def fed(self) -> FederationContext:
        return self.server.federation

    @property
    def clock(self) -> FakeClock:
        return self.harness.clock

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


ServerFactory = Callable[..., Awaitable[list[FederatingServer]]]


async def stop_listening(server: FederatingServer) -> None:
    """Take a server off the network (its listeners close; its state stays)."""
    runners = server.server._runners
    for runner in runners:
        await runner.cleanup()
    runners.clear()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_test_certificate(tmp_path_factory.mktemp("tls"))


async def _open_database(
    engine: str, directory: Path, request: pytest.FixtureRequest, schemas: list[str]
) -> Database:
    """A migrated database; on PostgreSQL a schema of the worker's pool, appended to
    ``schemas`` to be given back once the server is closed."""
    if engine == "sqlite":
        seed: SqliteSeed = request.getfixturevalue("sqlite_seed")
        return await seed.open(directory / "homeserver.db")
    pool: PgSchemaPool = request.getfixturevalue("pg_schemas")
    db, schema = await pool.open()
    schemas.append(schema)
    return db


@pytest.fixture
async def federation_servers(
    engine: str, tmp_path: Path, tls_files: TlsFiles, request: pytest.FixtureRequest
) -> AsyncIterator[ServerFactory]:
    """A factory starting ``n`` federating homeservers; ``overrides`` (config keys)
    apply to all of them, ``per_server`` (a list of dicts) to each in turn."""
    started: list[FederatingServer] = []
    schemas: list[str] = []
    clock = FakeClock()

    async def start(
        n: int = 2, *, per_server: list[dict[str, Any]] | None = None, **overrides: Any
    ) -> list[FederatingServer]:
        servers = []
        for i in range(n):
            federating = await start_one(i, per_server, overrides)
            started.append(federating)
            servers.append(federating)
        return servers

    async def start_one(
        i: int, per_server: list[dict[str, Any]] | None, overrides: dict[str, Any]
    ) -> FederatingServer:
        # The free port may be taken by another test process before we bind it.
        for attempt in range(5):
            try:
                return await start_at(i, free_port(), per_server, overrides, attempt)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or attempt == 4:
                    raise
        raise AssertionError("unreachable")

    async def start_at(
        i: int,
        port: int,
        per_server: list[dict[str, Any]] | None,
        overrides: dict[str, Any],
        attempt: int,
    ) -> FederatingServer:
        directory = tmp_path / f"hs{len(started)}-{attempt}"
        directory.mkdir()
        raw: dict[str, Any] = {
            "server_name": f"localhost:{port}",
            "signing_key_path": str(directory / "signing.key"),
            "media_store_path": str(directory / "media"),
            "listeners": [
                {
                    "port": port,
                    "bind_addresses": ["127.0.0.1"],
                    "tls": True,
                    "resources": [{"names": ["federation", "keys"]}],
                }
            ],
            "tls_certificate_path": str(tls_files.certificate),
            "tls_private_key_path": str(tls_files.private_key),
            "federation_verify_certificates": False,
            "federation_ip_range_whitelist": ["127.0.0.0/8"],
        }
        raw.update(overrides)
        if per_server is not None:
            raw.update(per_server[i])
        config = make_config(directory, **raw)
        db = await _open_database(engine, directory, request, schemas)
        server = await Homeserver.build(config, clock=clock, db=db)
        try:
            await server.start_listeners()
        except OSError:
            await server.close()
            raise
        test_server = TestServer(server.make_app({"client", "media"}))
        await test_server.start_server(access_log=None)
        client: TestClient[Any, Any] = TestClient(test_server)
        await client.start_server()
        return FederatingServer(server, HomeserverHarness(server, client, clock), port)

    yield start
    for federating in started:
        await federating.harness.client.close()
        await federating.server.close()
    if schemas:
        pool: PgSchemaPool = request.getfixturevalue("pg_schemas")
        for schema in schemas:
            pool.release(schema)
