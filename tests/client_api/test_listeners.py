"""Listener options through real listeners: resources ``health`` and ``compress``, and
``x_forwarded`` (client addresses from a reverse proxy)."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from homeserver.clock import FakeClock
from homeserver.server import Homeserver
from storage.database import Database
from tests.conftest import make_config

Start = Callable[..., Awaitable[list[str]]]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def start(database: Database, tmp_path: Path) -> AsyncIterator[Start]:
    """Start a homeserver with the given listeners (ports filled in); yields their URLs."""
    servers: list[Homeserver] = []

    async def starter(*listeners: dict[str, Any], **overrides: Any) -> list[str]:
        ports = [free_port() for _ in listeners]
        config = make_config(
            tmp_path,
            listeners=[{**lst, "port": p} for lst, p in zip(listeners, ports, strict=True)],
            **overrides,
        )
        server = await Homeserver.build(config, clock=FakeClock(), db=database)
        servers.append(server)
        await server.start_listeners()
        return [f"http://127.0.0.1:{p}" for p in ports]

    yield starter
    for server in servers:
        await server.close()


async def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession(auto_decompress=True) as session,
        session.get(url, headers=headers) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.read()


async def test_health(start: Start) -> None:
    [health_only, both] = await start(
        {"resources": [{"names": ["health"]}]},
        {"resources": [{"names": ["client", "health"]}]},
    )
    status, headers, body = await get(f"{health_only}/health")
    assert (status, body) == (200, b"OK")
    assert headers["Content-Type"].startswith("text/plain")
    # A listener serves only its resources.
    assert (await get(f"{health_only}/_matrix/client/versions"))[0] == 404
    assert (await get(f"{both}/health"))[0] == 200
    assert (await get(f"{both}/_matrix/client/versions"))[0] == 200


async def test_health_is_not_served_unless_listed(start: Start) -> None:
    [client_only] = await start({"resources": [{"names": ["client"]}]})
    assert (await get(f"{client_only}/health"))[0] == 404


async def test_compress(start: Start) -> None:
    [compressing, plain] = await start(
        {"resources": [{"names": ["client"], "compress": True}, {"names": ["keys"]}]},
        {"resources": [{"names": ["client", "keys"]}]},
    )
    versions = "/_matrix/client/versions"
    status, headers, body = await get(compressing + versions, **{"Accept-Encoding": "gzip"})
    assert status == 200 and headers.get("Content-Encoding") == "gzip"
    assert b'"versions"' in body  # decompressed by the client
    for accept in ("identity", "gzip;q=0, deflate", "br"):
        _, headers, body = await get(compressing + versions, **{"Accept-Encoding": accept})
        assert "Content-Encoding" not in headers, accept
        assert b'"versions"' in body
    # Only the resources of the entry with compress: true.
    _, headers, _ = await get(f"{compressing}/_matrix/key/v2/server", **{"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in headers
    # Errors of a compressed resource are JSON too.
    status, headers, body = await get(
        f"{compressing}/_matrix/client/v3/account/whoami", **{"Accept-Encoding": "gzip"}
    )
    assert status == 401 and b"M_MISSING_TOKEN" in body
    _, headers, _ = await get(plain + versions, **{"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in headers


async def test_x_forwarded_for_gives_the_client_address(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    """Rate limits per address and the request log use the proxy's X-Forwarded-For
    on a listener with x_forwarded: true, and ignore it on the others."""
    [proxied, direct] = await start(
        {"x_forwarded": True, "resources": [{"names": ["client"]}]},
        {"resources": [{"names": ["client"]}]},
        rc_registration={"per_second": 0.001, "burst_count": 1},
    )
    available = "/_matrix/client/v3/register/available?username=someone"
    caplog.set_level(logging.INFO, logger="homeserver.access")
    # As Synapse: the first address of the header is the client.
    first = {"X-Forwarded-For": "203.0.113.7, 10.0.0.1"}
    assert (await get(proxied + available, **first))[0] == 200
    assert (await get(proxied + available, **first))[0] == 429
    assert (await get(proxied + available, **{"X-Forwarded-For": "203.0.113.8"}))[0] == 200
    logged = [r.getMessage() for r in caplog.records if r.name == "homeserver.access"]
    assert any(line.startswith("203.0.113.7 GET ") for line in logged), logged
    # Without a header the proxy's own address counts.
    assert (await get(proxied + available))[0] == 200
    # A listener without x_forwarded ignores the header: one bucket, 127.0.0.1's
    # (spent just above by the request without a header).
    assert (await get(direct + available, **{"X-Forwarded-For": "198.51.100.1"}))[0] == 429
    assert (await get(direct + available, **{"X-Forwarded-For": "198.51.100.2"}))[0] == 429
    logged = [r.getMessage() for r in caplog.records if r.name == "homeserver.access"]
    assert not any(line.startswith("198.51.100.") for line in logged)
