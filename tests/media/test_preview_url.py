"""URL previews: off by default, and never a way into private addresses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from homeserver.media.opengraph import parse_open_graph
from homeserver.media.preview import AddressFilter
from tests.conftest import HomeserverHarness
from tests.media.helpers import auth, error_of, png_bytes, user_token

PAGE = """<html><head><title>Fallback</title>
<meta property="og:title" content="A &amp; B">
<meta property="og:description" content="Described">
<meta property="og:image" content="/pic.png">
</head><body>hi</body></html>"""


@pytest.fixture
async def site() -> AsyncIterator[TestServer]:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def pic(request: web.Request) -> web.Response:
        return web.Response(body=png_bytes(48, 48), content_type="image/png")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/page")

    app = web.Application()
    app.router.add_get("/page", page)
    app.router.add_get("/pic.png", pic)
    app.router.add_get("/redirect", redirect)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


def preview_path(url: str) -> str:
    return f"/_matrix/client/v1/media/preview_url?url={url}"


def test_open_graph_parsing_falls_back_to_title() -> None:
    assert parse_open_graph(PAGE) == {
        "og:title": "A & B",
        "og:description": "Described",
        "og:image": "/pic.png",
    }
    assert parse_open_graph("<title> Plain </title><meta name=description content=d>") == {
        "og:title": "Plain",
        "og:description": "d",
    }


def test_address_filter() -> None:
    from ipaddress import ip_network

    addresses = AddressFilter([ip_network("127.0.0.0/8"), ip_network("::1/128")], [])
    assert not addresses.allows("127.0.0.1")
    assert not addresses.allows("::ffff:127.0.0.1")
    assert not addresses.allows("::1")
    assert addresses.allows("93.184.216.34")
    assert AddressFilter([ip_network("127.0.0.0/8")], [ip_network("127.0.0.1/32")]).allows(
        "127.0.0.1"
    )


async def test_preview_is_unrecognized_when_disabled(hs: HomeserverHarness) -> None:
    token = await user_token(hs)
    response = await hs.client.get(preview_path("https://example.org"), headers=auth(token))
    assert await error_of(response) == (404, "M_UNRECOGNIZED")


async def test_preview_fetches_open_graph_and_stores_the_image(
    make_homeserver: Any, site: TestServer
) -> None:
    hs: HomeserverHarness = await make_homeserver(
        url_preview_enabled=True, ip_range_whitelist=["127.0.0.1/32"]
    )
    token = await user_token(hs)
    for path in ("/page", "/redirect"):
        response = await hs.client.get(preview_path(str(site.make_url(path))), headers=auth(token))
        assert response.status == 200, await response.text()
        body = await response.json()
        assert body["og:title"] == "A & B"
        assert body["og:description"] == "Described"
        assert body["og:image"].startswith("mxc://test.local/")
        assert body["matrix:image:size"] == len(png_bytes(48, 48))
        assert (body["og:image:width"], body["og:image:height"]) == (48, 48)
        media_id = body["og:image"].rsplit("/", 1)[1]
        image = await hs.client.get(
            f"/_matrix/client/v1/media/download/test.local/{media_id}", headers=auth(token)
        )
        assert await image.read() == png_bytes(48, 48)


async def test_url_preview_ip_range_blacklist_replaces_the_general_lists(
    make_homeserver: Any, site: TestServer
) -> None:
    """url_preview_ip_range_blacklist (with url_preview_ip_range_whitelist), when set,
    is what previews obey: ip_range_blacklist and ip_range_whitelist no longer apply."""
    open_hs: HomeserverHarness = await make_homeserver(
        url_preview_enabled=True, url_preview_ip_range_blacklist=[]
    )
    token = await user_token(open_hs)
    response = await open_hs.client.get(
        preview_path(str(site.make_url("/page"))), headers=auth(token)
    )
    assert response.status == 200, await response.text()

    closed_hs: HomeserverHarness = await make_homeserver(
        url_preview_enabled=True,
        ip_range_whitelist=["127.0.0.1/32"],
        url_preview_ip_range_blacklist=["127.0.0.0/8"],
    )
    token = await user_token(closed_hs, "bob")
    response = await closed_hs.client.get(
        preview_path(str(site.make_url("/page"))), headers=auth(token)
    )
    assert response.status == 403, await response.text()


async def test_preview_refuses_blacklisted_addresses(
    make_homeserver: Any, site: TestServer
) -> None:
    hs: HomeserverHarness = await make_homeserver(url_preview_enabled=True)
    token = await user_token(hs)
    port = site.port
    for url in (
        f"http://127.0.0.1:{port}/page",
        f"http://localhost:{port}/page",
        f"http://[::1]:{port}/page",
        f"http://[::ffff:127.0.0.1]:{port}/page",
    ):
        response = await hs.client.get(preview_path(url), headers=auth(token))
        assert await error_of(response) == (403, "M_FORBIDDEN"), url


async def test_preview_refuses_other_schemes(make_homeserver: Any) -> None:
    hs: HomeserverHarness = await make_homeserver(url_preview_enabled=True)
    token = await user_token(hs)
    for url in ("file:///etc/passwd", "ftp://example.org/", "nonsense"):
        response = await hs.client.get(preview_path(url), headers=auth(token))
        assert await error_of(response) == (400, "M_INVALID_PARAM"), url
    response = await hs.client.get("/_matrix/client/v1/media/preview_url", headers=auth(token))
    assert await error_of(response) == (400, "M_MISSING_PARAM")
