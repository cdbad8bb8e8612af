"""Media of one server downloaded (and thumbnailed) through another over federation,
and from remote servers of other shapes: older ones without the federation media
endpoints, and ones answering with a ``Location`` instead of the bytes."""

from __future__ import annotations

import dataclasses
import io
import secrets
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlencode

import pytest
from aiohttp import web
from PIL import Image

from tests.federation.servers import (
    ServerFactory,
    TlsFiles,
    free_port,
    stop_listening,
)
from tests.rooms.helpers import make_user


def png_bytes(width: int = 300, height: int = 200) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 90)).save(out, "PNG")
    return out.getvalue()


async def test_remote_media_download_is_byte_exact_and_cached(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    data = png_bytes()
    upload = await a.harness.client.post(
        "/_matrix/media/v3/upload?filename=cat.png",
        data=data,
        headers={**alice.auth, "Content-Type": "image/png"},
    )
    assert upload.status == 200, await upload.text()
    mxc = (await upload.json())["content_uri"]
    server_name, media_id = mxc.removeprefix("mxc://").split("/")
    url = f"/_matrix/client/v1/media/download/{server_name}/{media_id}"
    first = await b.harness.client.get(url, headers=bob.auth)
    assert first.status == 200, await first.text()
    assert await first.read() == data
    assert first.headers["Content-Type"] == "image/png"
    # Served from b's cache afterwards, even with a down.
    await stop_listening(a)
    again = await b.harness.client.get(url, headers=bob.auth)
    assert again.status == 200 and await again.read() == data
    thumb = await b.harness.client.get(
        f"/_matrix/client/v1/media/thumbnail/{server_name}/{media_id}?width=96&height=96&method=crop",
        headers=bob.auth,
    )
    assert thumb.status == 200
    assert Image.open(io.BytesIO(await thumb.read())).size == (96, 96)


async def test_unknown_remote_media_is_404(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    bob = await make_user(b.harness, "bob")
    resp = await b.harness.client.get(
        f"/_matrix/client/v1/media/download/{a.server_name}/doesnotexist", headers=bob.auth
    )
    assert resp.status == 404
    assert (await resp.json())["errcode"] == "M_NOT_FOUND"


async def test_remote_media_quarantined_before_it_is_cached_is_never_served(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    admin = await make_user(b.harness, "admin")
    await b.server.stores.accounts.set_admin(admin.user_id, True)
    data = png_bytes()
    upload = await a.harness.client.post(
        "/_matrix/media/v3/upload",
        data=data,
        headers={**alice.auth, "Content-Type": "image/png"},
    )
    media_id = (await upload.json())["content_uri"].rsplit("/", 1)[1]
    quarantine = f"/_synapse/admin/v1/media/quarantine/{a.server_name}/{media_id}"
    response = await b.harness.client.post(quarantine, headers=admin.auth)
    assert response.status == 200
    url = f"/_matrix/client/v1/media/download/{a.server_name}/{media_id}"
    thumb = f"/_matrix/client/v1/media/thumbnail/{a.server_name}/{media_id}?width=32&height=32"
    for path in (url, thumb):
        response = await b.harness.client.get(path, headers=bob.auth)
        assert response.status == 404
        assert (await response.json())["errcode"] == "M_NOT_FOUND"
    record = await b.server.stores.media.get_media(a.server_name, media_id)
    assert record is not None and record.quarantined and not record.uploaded  # never fetched
    # a's own users are not affected; released on b, it is fetched and served.
    response = await a.harness.client.get(url, headers=alice.auth)
    assert await response.read() == data
    release = f"/_synapse/admin/v1/media/unquarantine/{a.server_name}/{media_id}"
    assert (await b.harness.client.post(release, headers=admin.auth)).status == 200
    response = await b.harness.client.get(url, headers=bob.auth)
    assert response.status == 200 and await response.read() == data


# -- a remote server answering media requests as each test says ----------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NEW_PATH = "/_matrix/federation/v1/media/download/{mediaId}"
OLD_PATH = "/_matrix/media/v3/download/{serverName}/{mediaId}"


@dataclasses.dataclass
class FakeRemote:
    """A remote "server" on loopback TLS (127.0.0.1 and 127.0.0.2) that records the
    requests it gets; its server name is ``localhost:<port>``."""

    port: int
    requests: list[tuple[str, dict[str, str]]]

    @property
    def server_name(self) -> str:
        return f"localhost:{self.port}"

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]


FakeRemoteFactory = Callable[[list[tuple[str, Handler]]], Awaitable[FakeRemote]]


@pytest.fixture
async def fake_remote(tls_files: TlsFiles) -> AsyncIterator[FakeRemoteFactory]:
    runners: list[web.AppRunner] = []

    async def start(routes: list[tuple[str, Handler]]) -> FakeRemote:
        requests: list[tuple[str, dict[str, str]]] = []

        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            requests.append((request.path, dict(request.query)))
            return await handler(request)

        app = web.Application(middlewares=[record])
        for path, handler in routes:
            app.router.add_get(path, handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(tls_files.certificate, tls_files.private_key)
        port = free_port()
        for host in ("127.0.0.1", "127.0.0.2"):
            await web.TCPSite(runner, host, port, ssl_context=tls).start()
        return FakeRemote(port, requests)

    yield start
    for runner in runners:
        await runner.cleanup()


def matrix_error(status: int, errcode: str) -> web.Response:
    return web.json_response({"errcode": errcode, "error": errcode}, status=status)


async def unrecognized(_request: web.Request) -> web.Response:
    return matrix_error(404, "M_UNRECOGNIZED")


def multipart_location(url: str) -> web.Response:
    """A federation media answer whose second part is a Location, not the bytes."""
    boundary = "6b3c0a1e"
    body = (
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n"
        f"--{boundary}\r\nLocation: {url}\r\n\r\n\r\n"
        f"--{boundary}--\r\n"
    )
    return web.Response(
        body=body.encode(), headers={"Content-Type": f"multipart/mixed; boundary={boundary}"}
    )


def download_url(server_name: str, media_id: str, **query: str) -> str:
    path = f"/_matrix/client/v1/media/download/{server_name}/{media_id}"
    return f"{path}?{urlencode(query)}" if query else path


async def test_old_server_is_asked_through_the_deprecated_endpoint(
    federation_servers: ServerFactory, fake_remote: FakeRemoteFactory
) -> None:
    """Spec: on 404 M_UNRECOGNIZED from /_matrix/federation/v1/media/download, fall
    back to /_matrix/media/v3/download with allow_remote=false."""
    data = png_bytes(120, 90)

    async def old_download(request: web.Request) -> web.Response:
        assert request.match_info["mediaId"] == "oldmedia"
        return web.Response(
            body=data,
            headers={
                "Content-Type": "image/png",
                "Content-Disposition": 'inline; filename="old.png"',
            },
        )

    remote = await fake_remote([(NEW_PATH, unrecognized), (OLD_PATH, old_download)])
    (b,) = await federation_servers(1)
    bob = await make_user(b.harness, "bob")
    response = await b.harness.client.get(
        download_url(remote.server_name, "oldmedia", timeout_ms="5000"), headers=bob.auth
    )
    assert response.status == 200, await response.text()
    assert await response.read() == data
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Content-Disposition"] == 'inline; filename="old.png"'
    assert remote.requests == [
        ("/_matrix/federation/v1/media/download/oldmedia", {"timeout_ms": "5000"}),
        (
            f"/_matrix/media/v3/download/{remote.server_name}/oldmedia",
            {"timeout_ms": "5000", "allow_remote": "false"},
        ),
    ]
    thumb = await b.harness.client.get(
        f"/_matrix/client/v1/media/thumbnail/{remote.server_name}/oldmedia"
        "?width=32&height=32&method=crop",
        headers=bob.auth,
    )
    assert thumb.status == 200
    assert Image.open(io.BytesIO(await thumb.read())).size == (32, 32)
    assert len(remote.requests) == 2  # cached: the thumbnail is made here


async def test_not_found_is_not_retried_on_the_deprecated_endpoint(
    federation_servers: ServerFactory, fake_remote: FakeRemoteFactory
) -> None:
    async def not_found(_request: web.Request) -> web.Response:
        return matrix_error(404, "M_NOT_FOUND")

    remote = await fake_remote([(NEW_PATH, not_found), (OLD_PATH, not_found)])
    (b,) = await federation_servers(1)
    bob = await make_user(b.harness, "bob")
    response = await b.harness.client.get(
        download_url(remote.server_name, "gone"), headers=bob.auth
    )
    assert (response.status, (await response.json())["errcode"]) == (404, "M_NOT_FOUND")
    assert remote.paths() == ["/_matrix/federation/v1/media/download/gone"]


def cdn_remote_routes(
    data: bytes, cdn_host: str, *, chunked: bool = False
) -> tuple[list[tuple[str, Handler]], list[str]]:
    """A remote answering with a one-time Location on ``cdn_host`` (its own port)."""
    issued: list[str] = []

    async def download(request: web.Request) -> web.Response:
        token = secrets.token_hex(8)
        issued.append(token)
        return multipart_location(f"https://{cdn_host}:{request.url.port}/cdn/{token}")

    async def cdn(request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        if token not in issued:
            return web.Response(status=403)
        issued.remove(token)  # a URL serves once, as expiring CDN URLs may
        headers = {
            "Content-Type": "application/pdf",
            "Content-Disposition": 'attachment; filename="cdn.pdf"',
        }
        if not chunked:
            return web.Response(body=data, headers=headers)
        response = web.StreamResponse(headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(data), 4096):
            await response.write(data[start : start + 4096])
        await response.write_eof()
        return response

    return [(NEW_PATH, download), ("/cdn/{token}", cdn)], issued


async def test_location_answer_is_followed_and_the_url_not_kept(
    federation_servers: ServerFactory, fake_remote: FakeRemoteFactory
) -> None:
    data = b"%PDF-1.4\n" + secrets.token_bytes(50_000)
    routes, _ = cdn_remote_routes(data, "127.0.0.2")
    remote = await fake_remote(routes)
    (b,) = await federation_servers(1)
    bob = await make_user(b.harness, "bob")
    url = download_url(remote.server_name, "oncdn")
    response = await b.harness.client.get(url, headers=bob.auth)
    assert response.status == 200, await response.text()
    assert await response.read() == data
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Content-Disposition"] == 'attachment; filename="cdn.pdf"'
    assert [p.split("/")[1] for p in remote.paths()] == ["_matrix", "cdn"]
    # The content is cached (served again without asking); the URL is not: once the
    # cache is purged, the media is asked for again and its new URL followed.
    assert await (await b.harness.client.get(url, headers=bob.auth)).read() == data
    assert len(remote.requests) == 2
    await b.server.media.purge_remote_cache(b.clock.time_ms() + 1)
    response = await b.harness.client.get(url, headers=bob.auth)
    assert response.status == 200 and await response.read() == data
    assert [p.split("/")[1] for p in remote.paths()] == ["_matrix", "cdn", "_matrix", "cdn"]


async def test_location_at_a_blacklisted_address_is_refused(
    federation_servers: ServerFactory, fake_remote: FakeRemoteFactory
) -> None:
    """The Location is fetched under ip_range_blacklist: this server may reach the
    remote (127.0.0.1 is whitelisted for federation) but not 127.0.0.2."""
    routes, _ = cdn_remote_routes(b"secret", "127.0.0.2")
    remote = await fake_remote(routes)
    (b,) = await federation_servers(1, federation_ip_range_whitelist=["127.0.0.1/32"])
    bob = await make_user(b.harness, "bob")
    response = await b.harness.client.get(
        download_url(remote.server_name, "internal"), headers=bob.auth
    )
    assert (response.status, (await response.json())["errcode"]) == (502, "M_UNKNOWN")
    assert remote.paths() == ["/_matrix/federation/v1/media/download/internal"]
    assert await b.server.stores.media.get_media(remote.server_name, "internal") is None


@pytest.mark.parametrize("chunked", [False, True])
async def test_location_content_over_the_size_cap_is_refused(
    federation_servers: ServerFactory, fake_remote: FakeRemoteFactory, chunked: bool
) -> None:
    routes, _ = cdn_remote_routes(b"x" * 40_000, "127.0.0.1", chunked=chunked)
    remote = await fake_remote(routes)
    (b,) = await federation_servers(1, max_upload_size=30_000)
    bob = await make_user(b.harness, "bob")
    response = await b.harness.client.get(download_url(remote.server_name, "big"), headers=bob.auth)
    assert (response.status, (await response.json())["errcode"]) == (502, "M_TOO_LARGE")
    assert await b.server.stores.media.get_media(remote.server_name, "big") is None
    content = Path(b.server.config.media_store_path) / "content"
    assert not content.exists() or not [p for p in content.rglob("*") if p.is_file()]


async def test_remote_answer_cut_short_is_502_and_not_cached(
    federation_servers: ServerFactory, fake_remote: FakeRemoteFactory
) -> None:
    async def cut_short(request: web.Request) -> web.StreamResponse:
        boundary = "c0ffee"
        head = (
            f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n"
            f"--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n"
        ).encode()
        response = web.StreamResponse(
            headers={"Content-Type": f"multipart/mixed; boundary={boundary}"}
        )
        response.content_length = len(head) + 100_000
        await response.prepare(request)
        await response.write(head + b"x" * 10_000)
        assert request.transport is not None
        request.transport.close()  # the connection drops mid-body
        return response

    remote = await fake_remote([(NEW_PATH, cut_short)])
    (b,) = await federation_servers(1)
    bob = await make_user(b.harness, "bob")
    response = await b.harness.client.get(download_url(remote.server_name, "cut"), headers=bob.auth)
    assert (response.status, (await response.json())["errcode"]) == (502, "M_UNKNOWN")
    assert await b.server.stores.media.get_media(remote.server_name, "cut") is None
