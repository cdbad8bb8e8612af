"""A real push gateway on loopback for the push tests, and helpers around pushers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from homeserver.push.pushers import PusherPool
from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user

LOOPBACK_OK = {"ip_range_whitelist": ["127.0.0.0/8"]}
PUSHKEY = "a-push-key"


@dataclass
class Gateway:
    """A push gateway: records each notify request; answers as told."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    rejected: list[str] = field(default_factory=list)
    attempts: int = 0
    redirect_to: str | None = None  # answer 308 to this URL
    # badge-only pushes (no event type) get no answer until ``release`` is set
    hold_badges: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def notify(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.redirect_to is not None:
            raise web.HTTPPermanentRedirect(self.redirect_to)
        if self.status != 200:
            return web.json_response({"error": "down"}, status=self.status)
        body = await request.json()
        self.received.append(body)
        if self.hold_badges and "type" not in body["notification"]:
            await self.release.wait()
        return web.json_response({"rejected": self.rejected})


async def eventually(check: Callable[[], bool], within_s: float = 5.0) -> None:
    """Wait for real HTTP to happen (short polls, bounded)."""
    deadline = asyncio.get_running_loop().time() + within_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def pusher_body(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "http",
        "app_id": "com.example.app.ios",
        "pushkey": PUSHKEY,
        "app_display_name": "Example",
        "device_display_name": "Alice's phone",
        "lang": "en",
        "data": {"url": url, "custom": "x"},
        **extra,
    }


def pool(hs: HomeserverHarness) -> PusherPool:
    return hs.server.client.push.pushers


async def room_with_pusher(hs: HomeserverHarness, url: str) -> tuple[User, User, str]:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat", name="Mission Control")
    await bob.join(room_id)
    await alice.request("POST", "/pushers/set", pusher_body(url))
    return alice, bob, room_id


async def serve_gateway(gateway: Gateway, host: str = "127.0.0.1") -> web.AppRunner:
    """Listen on ``host`` (a free port); set ``gateway.url``; clean up the runner after."""
    app = web.Application()
    app.router.add_post("/_matrix/push/v1/notify", gateway.notify)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    gateway.url = f"http://{host}:{port}/_matrix/push/v1/notify"
    return runner


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    """A push gateway on loopback, released and stopped after the test."""
    gw = Gateway()
    runner = await serve_gateway(gw)
    yield gw
    gw.release.set()
    await runner.cleanup()
