"""The outbound federation client against a local TLS server: well-known redirects
under the address policy, answer size caps, timeouts, error mapping, streaming."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from ipaddress import ip_network
from typing import Any

import pytest
from aiohttp import web
from signedjson.key import generate_signing_key
from yarl import URL

from federation.client import FederationClient, FederationClientSettings
from federation.errors import FederationDenied, FederationError
from federation.xmatrix import parse_x_matrix
from homeserver.clock import FakeClock
from homeserver.config.homeserver_config import DEFAULT_IP_RANGE_BLACKLIST
from homeserver.media.preview import AddressFilter
from tests.federation.servers import TlsFiles, free_port


@dataclass
class Peer:
    port: int
    seen: list[web.Request]

    @property
    def name(self) -> str:
        return f"localhost:{self.port}"

    def url(self, path: str) -> URL:
        return URL(f"https://localhost:{self.port}{path}")


@pytest.fixture
async def peer(tls_files: TlsFiles) -> AsyncIterator[Peer]:
    seen: list[web.Request] = []
    release = asyncio.Event()  # set at the end: the slow answer comes only then

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        path = request.path
        if path == "/.well-known/matrix/server":
            raise web.HTTPFound("/wk2")
        if path == "/wk2":
            raise web.HTTPFound(f"https://127.0.0.1:{port}/wk3")
        if path == "/wk3":
            return web.json_response({"m.server": "delegated.test:443"})
        if path == "/loop":
            raise web.HTTPFound("/loop2")
        if path == "/loop2":
            raise web.HTTPFound("/loop")
        if path == "/to-private":
            raise web.HTTPFound("https://10.1.2.3/x")
        if path == "/big":
            return web.json_response({"x": "a" * 10_000})
        if path == "/slow":
            await release.wait()
            return web.json_response({})
        if path == "/error":
            return web.json_response({"errcode": "M_FORBIDDEN", "error": "no"}, status=403)
        if path == "/html-error":
            return web.Response(status=502, text="<html>bad gateway</html>")
        if path == "/not-json":
            return web.Response(text="hello")
        if path == "/stream":
            return web.Response(body=b"x" * 300_000, content_type="application/octet-stream")
        return web.json_response({"path": request.path_qs, "body": await request.text()})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_files.certificate, tls_files.private_key)
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    yield Peer(port, seen)
    release.set()
    await runner.cleanup()


def make_client(
    *, whitelist: tuple[str, ...] = ("127.0.0.0/8",), **settings: Any
) -> FederationClient:
    addresses = AddressFilter(
        tuple(ip_network(n) for n in DEFAULT_IP_RANGE_BLACKLIST),
        tuple(ip_network(n) for n in whitelist),
    )
    return FederationClient(
        "me.test",
        generate_signing_key("k"),
        FederationClientSettings(verify_certificates=False, addresses=addresses, **settings),
        FakeClock(),
    )


@pytest.fixture
async def client() -> AsyncIterator[FederationClient]:
    client = make_client()
    yield client
    await client.close()


async def test_well_known_redirects_are_followed(client: FederationClient, peer: Peer) -> None:
    answer = await client.fetch_well_known_url(peer.url("/.well-known/matrix/server"), "x")
    assert answer.status == 200
    assert b"delegated.test:443" in answer.body
    assert [r.path for r in peer.seen] == ["/.well-known/matrix/server", "/wk2", "/wk3"]


async def test_well_known_redirect_loops_and_private_targets_are_refused(
    client: FederationClient, peer: Peer
) -> None:
    with pytest.raises(FederationError, match="loop"):
        await client.fetch_well_known_url(peer.url("/loop"), "x")
    with pytest.raises(FederationDenied):
        await client.fetch_well_known_url(peer.url("/to-private"), "x")


async def test_requests_are_signed_for_the_destination(
    client: FederationClient, peer: Peer
) -> None:
    answer = await client.put_json(peer.name, "/_matrix/federation/v1/send/1", {"pdus": []})
    assert answer == {"path": "/_matrix/federation/v1/send/1", "body": '{"pdus":[]}'}
    request = peer.seen[-1]
    assert request.headers["Host"] == peer.name
    assert request.headers["Content-Type"] == "application/json"
    credentials = parse_x_matrix(request.headers["Authorization"])
    assert (credentials.origin, credentials.destination) == ("me.test", peer.name)
    answer = await client.get_json(peer.name, "/_matrix/x", {"a": "b c", "d": ["1", "2"]})
    assert answer["path"] == "/_matrix/x?a=b+c&d=1&d=2"


async def test_error_answers_become_federation_errors(client: FederationClient, peer: Peer) -> None:
    with pytest.raises(FederationError) as caught:
        await client.get_json(peer.name, "/error")
    assert (caught.value.status, caught.value.errcode, caught.value.message) == (
        403,
        "M_FORBIDDEN",
        "no",
    )
    assert not caught.value.retryable
    assert caught.value.to_matrix_error().status == 403
    with pytest.raises(FederationError) as caught:
        await client.get_json(peer.name, "/html-error")
    assert (caught.value.status, caught.value.errcode) == (502, None)
    assert caught.value.retryable
    assert caught.value.to_matrix_error().status == 502
    with pytest.raises(FederationError, match="not JSON"):
        await client.get_json(peer.name, "/not-json")
    with pytest.raises(FederationError, match="too large"):
        await client.get_json(peer.name, "/big", max_bytes=1000)
    with pytest.raises(FederationError, match="timed out"):
        await client.get_json(peer.name, "/slow", timeout_s=0.2)
    with pytest.raises(FederationDenied):
        await client.get_json("bad name!", "/x")


async def test_streaming(client: FederationClient, peer: Peer) -> None:
    async with client.open_stream(peer.name, "/stream") as response:
        data = await response.content.read()
    assert len(data) == 300_000
    with pytest.raises(FederationError) as caught:
        async with client.open_stream(peer.name, "/error"):
            pass
    assert caught.value.status == 403


async def test_redirects_of_api_requests_are_not_followed(
    client: FederationClient, peer: Peer
) -> None:
    with pytest.raises(FederationError) as caught:
        await client.get_json(peer.name, "/loop")
    assert caught.value.status == 302
