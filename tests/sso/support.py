"""A fake CAS server on loopback for the SSO tests, and the steps of an SSO login
through the homeserver's HTTP API."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

import pytest
from aiohttp import web

from tests.conftest import HarnessFactory, HomeserverHarness

V3 = "/_matrix/client/v3"
R0 = "/_matrix/client/r0"
PUBLIC_BASEURL = "https://hs.test/"
CLIENT_URL = "https://client?p=http%3A%2F%2Fserver"
TICKET = "goldenticket"


def cas_success(user: str, attributes: Mapping[str, str | list[str]] | None = None) -> str:
    """A CAS 2.0 validation success for ``user`` with ``attributes``."""
    items = []
    for name, values in (attributes or {}).items():
        for value in [values] if isinstance(values, str) else values:
            items.append(f"<cas:{name}>{escape(value)}</cas:{name}>")
    return (
        "<cas:serviceResponse xmlns:cas='http://www.yale.edu/tp/cas'>\n"
        "  <cas:authenticationSuccess>\n"
        f"    <cas:user>{escape(user)}</cas:user>\n"
        f"    <cas:attributes>{''.join(items)}</cas:attributes>\n"
        "  </cas:authenticationSuccess>\n"
        "</cas:serviceResponse>\n"
    )


CAS_FAILURE = (
    "<cas:serviceResponse xmlns:cas='http://www.yale.edu/tp/cas'>\n"
    "  <cas:authenticationFailure code='INVALID_TICKET'>Ticket not recognized"
    "</cas:authenticationFailure>\n"
    "</cas:serviceResponse>\n"
)


@dataclass
class FakeCas:
    """A CAS server: answers every validation with ``answer`` (and ``status``) and
    records the query of each validation request."""

    base_url: str = ""
    answer: str = field(default_factory=lambda: cas_success("alice"))
    status: int = 200
    validations: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    async def validate(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        self.validations.append(dict(request.query))
        return web.Response(text=self.answer, status=self.status, content_type="text/plain")


@pytest.fixture
async def cas() -> AsyncIterator[FakeCas]:
    fake = FakeCas()
    app = web.Application()
    app.router.add_get("/cas/proxyValidate", fake.validate)
    app.router.add_get("/cas/p3/proxyValidate", fake.validate)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.base_url = f"http://127.0.0.1:{port}/cas"
    yield fake
    await runner.cleanup()


async def cas_homeserver(
    make_homeserver: HarnessFactory, cas: FakeCas, **cas_options: Any
) -> HomeserverHarness:
    """A homeserver logging users in through ``cas`` (loopback allowed outbound)."""
    top_level = ("sso", "ip_range_whitelist", "allow_guest_access")
    extra = {k: cas_options.pop(k) for k in top_level if k in cas_options}
    extra.setdefault("ip_range_whitelist", ["127.0.0.0/8"])
    return await make_homeserver(
        public_baseurl=PUBLIC_BASEURL,
        cas_config={"server_url": cas.base_url, **cas_options},
        **extra,
    )


def service_url(**args: str) -> str:
    """The service URL the homeserver gives CAS (as SyTest spells it out)."""
    from urllib.parse import urlencode

    return f"{PUBLIC_BASEURL}_matrix/client/r0/login/cas/ticket?{urlencode(args)}"


async def ticket_request(
    hs: HomeserverHarness, *, ticket: str = TICKET, **params: str
) -> tuple[int, str, Mapping[str, str]]:
    """GET /login/cas/ticket as the browser does when CAS sends it back."""
    resp = await hs.client.get(
        f"{R0}/login/cas/ticket", params={**params, "ticket": ticket}, allow_redirects=False
    )
    return resp.status, await resp.text(), resp.headers


def login_token_of(page: str) -> str:
    """The login token in the confirmation page's link."""
    match = re.search(r'href="([^"]+)"', page)
    assert match is not None, page
    url = unescape(match.group(1))
    tokens = parse_qs(urlsplit(url).query)["loginToken"]
    assert len(tokens) == 1, url
    return tokens[0]


def link_of(page: str) -> str:
    match = re.search(r'href="([^"]+)"', page)
    assert match is not None, page
    return unescape(match.group(1))


async def cas_login_token(hs: HomeserverHarness, redirect_url: str = CLIENT_URL) -> str:
    """The login token a successful CAS login hands the client."""
    status, page, _ = await ticket_request(hs, redirectUrl=redirect_url)
    assert status == 200, page
    return login_token_of(page)


async def token_login(hs: HomeserverHarness, token: Any, **extra: Any) -> tuple[int, Any]:
    resp = await hs.client.post(
        f"{V3}/login", json={"type": "m.login.token", "token": token, **extra}
    )
    return resp.status, await resp.json()
