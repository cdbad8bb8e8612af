"""An application service played by a real aiohttp app, and homeservers that have it
registered (through a registration file, as a deployment does)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import HarnessFactory, HomeserverHarness

AS_TOKEN = "as_token_of_the_bridge"
HS_TOKEN = "hs_token_of_the_bridge"
SERVER_NAME = "test.local"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeAppService:
    """A bridge's HTTP side: records every request the homeserver makes to it.

    ``transactions`` holds (txn_id, body) of every accepted PUT; ``down`` makes
    every request fail with 503 (the bridge is restarting); ``known_users`` /
    ``known_aliases`` are what the user and alias queries answer yes to (a test may
    set ``on_user_query`` / ``on_alias_query`` to act before answering, as a
    bridge registers the user before it says yes).
    """

    def __init__(self, hs_token: str = HS_TOKEN) -> None:
        self.hs_token = hs_token
        self.transactions: list[tuple[str, dict[str, Any]]] = []
        self.requests: list[tuple[str, str]] = []
        self.down = False
        self.known_users: set[str] = set()
        self.known_aliases: set[str] = set()
        self.on_user_query: Callable[[str], Awaitable[None]] | None = None
        self.on_alias_query: Callable[[str], Awaitable[None]] | None = None
        self.thirdparty_answers: dict[str, Any] = {}
        # when set, a transaction is answered only once it is (a slow bridge)
        self.transaction_gate: asyncio.Event | None = None
        self._changed = asyncio.Condition()
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        if request.headers.get("Authorization") != f"Bearer {self.hs_token}":
            return web.json_response({"errcode": "M_FORBIDDEN"}, status=403)
        if self.down:
            return web.json_response({"errcode": "M_UNKNOWN"}, status=503)
        path = request.path
        prefix = "/_matrix/app/v1"
        if not path.startswith(prefix):
            return web.json_response({"errcode": "M_UNRECOGNIZED"}, status=404)
        path = path[len(prefix) :]
        if request.method == "PUT" and path.startswith("/transactions/"):
            body = await request.json()
            if self.transaction_gate is not None:
                await self.transaction_gate.wait()
            txn_id = path.rsplit("/", 1)[1]
            async with self._changed:
                if all(txn_id != seen for seen, _ in self.transactions):
                    self.transactions.append((txn_id, body))
                self._changed.notify_all()
            return web.json_response({})
        if request.method == "GET" and path.startswith("/users/"):
            user_id = request.match_info["tail"].rsplit("/", 1)[1]
            if self.on_user_query is not None:
                await self.on_user_query(user_id)
            if user_id in self.known_users:
                return web.json_response({})
            return web.json_response({"errcode": "M_NOT_FOUND"}, status=404)
        if request.method == "GET" and path.startswith("/rooms/"):
            alias = request.match_info["tail"].rsplit("/", 1)[1]
            if self.on_alias_query is not None:
                await self.on_alias_query(alias)
            if alias in self.known_aliases:
                return web.json_response({})
            return web.json_response({"errcode": "M_NOT_FOUND"}, status=404)
        if request.method == "POST" and path == "/ping":
            return web.json_response({})
        if request.method == "GET" and path.startswith("/thirdparty/"):
            answer = self.thirdparty_answers.get(path[len("/thirdparty") :])
            if answer is None:
                return web.json_response({"errcode": "M_NOT_FOUND"}, status=404)
            return web.json_response(answer)
        return web.json_response({"errcode": "M_UNRECOGNIZED"}, status=404)

    def events(self) -> list[dict[str, Any]]:
        return [event for _, body in self.transactions for event in body.get("events", [])]

    async def wait_for(self, predicate: Callable[[FakeAppService], bool]) -> None:
        """Until ``predicate`` holds (callers bound it with asyncio.timeout)."""
        async with self._changed:
            await self._changed.wait_for(lambda: predicate(self))


@pytest.fixture
async def appservice() -> AsyncIterator[tuple[FakeAppService, str]]:
    """The fake service and its URL."""
    service = FakeAppService()
    server = TestServer(service.app)
    await server.start_server(access_log=None)
    try:
        yield service, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def registration(url: str | None, **overrides: Any) -> dict[str, Any]:
    """A registration like a bridge's: ``@_bridge_.*`` users and ``#_bridge_.*``
    aliases exclusive, sender ``@bridgebot``."""
    raw: dict[str, Any] = {
        "id": "bridge",
        "url": url,
        "as_token": AS_TOKEN,
        "hs_token": HS_TOKEN,
        "sender_localpart": "bridgebot",
        "namespaces": {
            "users": [{"regex": rf"@_bridge_.*:{SERVER_NAME}", "exclusive": True}],
            "aliases": [{"regex": rf"#_bridge_.*:{SERVER_NAME}", "exclusive": True}],
            "rooms": [],
        },
        "rate_limited": False,
        "protocols": ["bridgeproto"],
    }
    raw.update(overrides)
    return raw


def write_registration(tmp_path: Path, raw: dict[str, Any], name: str = "reg.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return str(path)


@pytest.fixture
async def as_hs(
    make_homeserver: HarnessFactory,
    appservice: tuple[FakeAppService, str],
    tmp_path: Path,
) -> HomeserverHarness:
    """A homeserver with the fake service registered."""
    _, url = appservice
    return await homeserver_with(make_homeserver, tmp_path, registration(url))


async def homeserver_with(
    make_homeserver: HarnessFactory,
    tmp_path: Path,
    *registrations: dict[str, Any],
    **config: Any,
) -> HomeserverHarness:
    """A homeserver with these registration files, and ``config`` options."""
    files = [
        write_registration(tmp_path, raw, f"reg{i}.yaml") for i, raw in enumerate(registrations)
    ]
    return await make_homeserver(app_service_config_files=files, **config)


def as_headers(token: str = AS_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
