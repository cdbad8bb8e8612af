"""Interop: logging in through an OpenID Provider nobody here wrote, panva's certified
``oidc-provider`` (tests/sso/js/provider.mjs), end to end: discovery, authorization
with PKCE, its login and consent (granted without forms), the code exchange with
client_secret_basic, its RS256 ID token and its userinfo endpoint.

Needs Node 20+ and ``npm ci --prefix tests/sso/js``; skipped when node is missing.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from tests.conftest import HarnessFactory
from tests.sso.oidc_support import CALLBACK, Walk, callback, session_cookie
from tests.sso.support import CLIENT_URL, PUBLIC_BASEURL, V3, login_token_of, token_login

JS_DIR = Path(__file__).resolve().parent / "js"
SECRET = "interop-secret"


@pytest.fixture
async def node_provider() -> AsyncIterator[str]:
    """The issuer URL of a running oidc-provider."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: the oidc-provider interop test needs Node 20+")
    if not (JS_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("tests/sso/js/node_modules is missing: run `npm ci --prefix tests/sso/js`")
    proc = await asyncio.create_subprocess_exec(
        node,
        str(JS_DIR / "provider.mjs"),
        CALLBACK,
        SECRET,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line, "oidc-provider did not start"
        yield str(json.loads(line)["issuer"])
    finally:
        proc.terminate()
        await proc.wait()


async def test_login_through_panva_oidc_provider(
    make_homeserver: HarnessFactory, node_provider: str
) -> None:
    hs = await make_homeserver(
        public_baseurl=PUBLIC_BASEURL,
        ip_range_whitelist=["127.0.0.0/8"],
        oidc_providers=[
            {
                "idp_id": "node",
                "idp_name": "oidc-provider",
                "issuer": node_provider,
                "client_id": "matrix",
                "client_secret": SECRET,
                "skip_verification": True,  # it runs on http://127.0.0.1
                "scopes": ["openid", "profile"],
                "user_profile_method": "userinfo_endpoint",
                "user_mapping_provider": {
                    "config": {
                        "localpart_template": "{{ user.preferred_username }}",
                        "display_name_template": "{{ user.name }}",
                    }
                },
            }
        ],
    )
    # its tokens carry the real time
    hs.clock.advance(time.time() - hs.clock.time_ms() / 1000)
    resp = await hs.client.get(
        f"{V3}/login/sso/redirect/oidc-node",
        params={"redirectUrl": CLIENT_URL},
        allow_redirects=False,
    )
    assert resp.status == 302, await resp.text()
    walk = Walk(resp.headers["Location"], session_cookie(resp))
    # the browser at the provider: follow its redirects (keeping its cookies) until
    # it sends us back to the callback
    location = walk.authorize_url
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        for _ in range(10):
            if location.startswith(CALLBACK):
                break
            async with browser.get(location, allow_redirects=False) as answer:
                assert answer.status in (302, 303), (location, await answer.text())
                location = str(answer.url.join(URL(answer.headers["Location"])))
        else:
            pytest.fail("oidc-provider never sent the browser back")
    status, page, _ = await callback(hs, location, walk.cookie)
    assert status == 200, page
    status, body = await token_login(hs, login_token_of(page))
    assert status == 200, body
    assert body["user_id"] == f"@alice:{hs.server.config.server_name}"
    resp = await hs.client.get(f"{V3}/profile/{body['user_id']}/displayname")
    assert (await resp.json())["displayname"] == "Alice Liddell"
