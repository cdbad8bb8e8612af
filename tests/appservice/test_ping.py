"""POST /_matrix/client/v1/appservice/{appserviceId}/ping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from homeserver.appservice import AppServiceClient
from tests.appservice.conftest import (
    FakeAppService,
    as_headers,
    registration,
    write_registration,
)
from tests.conftest import HarnessFactory, HomeserverHarness

PING = "/_matrix/client/v1/appservice/bridge/ping"


async def test_ping_reaches_the_service(
    as_hs: HomeserverHarness, appservice: tuple[FakeAppService, str]
) -> None:
    service, _ = appservice
    resp = await as_hs.client.post(PING, json={"transaction_id": "t1"}, headers=as_headers())
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert isinstance(body["duration_ms"], int) and body["duration_ms"] >= 0
    assert ("POST", "/_matrix/app/v1/ping") in service.requests


async def test_ping_needs_the_services_own_token(as_hs: HomeserverHarness) -> None:
    alice = await as_hs.register("alice")
    resp = await as_hs.client.post(
        PING, json={}, headers={"Authorization": f"Bearer {alice['access_token']}"}
    )
    assert resp.status == 403
    assert (await resp.json())["errcode"] == "M_FORBIDDEN"
    resp = await as_hs.client.post(
        "/_matrix/client/v1/appservice/other/ping", json={}, headers=as_headers()
    )
    assert resp.status == 403
    assert (await resp.json())["errcode"] == "M_FORBIDDEN"
    resp = await as_hs.client.post(PING, json={})
    assert resp.status == 401


async def test_ping_bad_body(as_hs: HomeserverHarness) -> None:
    resp = await as_hs.client.post(PING, json={"transaction_id": 5}, headers=as_headers())
    assert resp.status == 400
    assert (await resp.json())["errcode"] == "M_BAD_JSON"
    resp = await as_hs.client.post(PING, data=b"nope", headers=as_headers())
    assert resp.status == 400
    assert (await resp.json())["errcode"] == "M_NOT_JSON"


async def test_ping_of_a_failing_service_is_bad_status(
    as_hs: HomeserverHarness, appservice: tuple[FakeAppService, str]
) -> None:
    service, _ = appservice
    service.down = True
    resp = await as_hs.client.post(PING, json={}, headers=as_headers())
    assert resp.status == 502
    body = await resp.json()
    assert body["errcode"] == "M_BAD_STATUS"
    assert body["status"] == 503
    assert "M_UNKNOWN" in body["body"]


async def test_ping_without_url(make_homeserver: HarnessFactory, tmp_path: Path) -> None:
    hs = await make_homeserver(
        app_service_config_files=[write_registration(tmp_path, registration(None))]
    )
    resp = await hs.client.post(PING, json={}, headers=as_headers())
    assert resp.status == 400
    assert (await resp.json())["errcode"] == "M_URL_NOT_SET"


async def test_ping_of_an_unreachable_service(
    make_homeserver: HarnessFactory, tmp_path: Path
) -> None:
    # a port nothing listens on: bind one, note it, close it
    server = TestServer(web.Application())
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    await server.close()
    hs = await make_homeserver(
        app_service_config_files=[write_registration(tmp_path, registration(url))]
    )
    resp = await hs.client.post(PING, json={}, headers=as_headers())
    assert resp.status == 502
    assert (await resp.json())["errcode"] == "M_CONNECTION_FAILED"


@pytest.fixture
async def silent_service() -> AsyncIterator[str]:
    """A service that never answers (until the test ends)."""
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hang)
    server = TestServer(app)
    await server.start_server(access_log=None)
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        release.set()
        await server.close()


async def test_ping_timeout(
    make_homeserver: HarnessFactory, tmp_path: Path, silent_service: str
) -> None:
    hs = await make_homeserver(
        app_service_config_files=[write_registration(tmp_path, registration(silent_service))]
    )
    appservices = hs.server.client.appservices
    await appservices.client.close()
    appservices.client = AppServiceClient(query_timeout_s=0.2)
    async with asyncio.timeout(10):
        resp = await hs.client.post(PING, json={}, headers=as_headers())
    assert resp.status == 504
    assert (await resp.json())["errcode"] == "M_CONNECTION_TIMEOUT"
