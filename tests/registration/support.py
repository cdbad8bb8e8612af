"""A siteverify endpoint on loopback, played by an aiohttp app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.conftest import HarnessFactory, HomeserverHarness

REGISTER = "/_matrix/client/v3/register"
V3 = "/_matrix/client/v3"
PUBLIC_KEY = "the-site-key"
PRIVATE_KEY = "the-secret-key"
GOOD = "solved-captcha"


@dataclass
class FakeSiteverify:
    """Answers ``{"success": true}`` for the response GOOD sent with the right secret,
    ``{"success": false}`` otherwise; ``answer`` / ``status`` / ``raw`` override that.
    Records every form it was posted."""

    url: str = ""
    forms: list[dict[str, str]] = field(default_factory=list)
    answer: Any = None
    raw: str | None = None
    status: int = 200

    async def siteverify(self, request: web.Request) -> web.Response:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        self.forms.append(form)
        if self.raw is not None:
            return web.Response(text=self.raw, status=self.status)
        answer = self.answer
        if answer is None:
            answer = {
                "success": form.get("secret") == PRIVATE_KEY and form.get("response") == GOOD,
                "hostname": "client.example",
            }
        return web.json_response(answer, status=self.status)


@pytest.fixture
async def siteverify() -> AsyncIterator[FakeSiteverify]:
    fake = FakeSiteverify()
    app = web.Application()
    app.router.add_post("/recaptcha/api/siteverify", fake.siteverify)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}/recaptcha/api/siteverify"
    yield fake
    await runner.cleanup()


async def captcha_homeserver(
    make_homeserver: HarnessFactory, siteverify: FakeSiteverify, **options: Any
) -> HomeserverHarness:
    """A homeserver whose registration needs a captcha checked at ``siteverify``
    (loopback allowed outbound)."""
    settings: dict[str, Any] = {
        "enable_registration_captcha": True,
        "recaptcha_public_key": PUBLIC_KEY,
        "recaptcha_private_key": PRIVATE_KEY,
        "recaptcha_siteverify_api": siteverify.url,
        "ip_range_whitelist": ["127.0.0.0/8"],
        "enable_registration_without_verification": False,
    }
    settings.update(options)
    return await make_homeserver(**settings)


async def start(hs: HomeserverHarness, **body: Any) -> dict[str, Any]:
    """The 401 of a first POST /register."""
    resp = await hs.client.post(REGISTER, json={"username": "alice", "password": "pw", **body})
    assert resp.status == 401, await resp.text()
    return dict(await resp.json())


async def stage(hs: HomeserverHarness, session: str, auth: dict[str, Any]) -> tuple[int, Any]:
    resp = await hs.client.post(
        REGISTER,
        json={"username": "alice", "password": "pw", "auth": {"session": session, **auth}},
    )
    return resp.status, await resp.json()


async def count_users(hs: HomeserverHarness) -> int:
    return int(await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM users"))
