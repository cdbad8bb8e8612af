"""Real counterparts of the third-party ID tests: an SMTP server (aiosmtpd, on the
test's own loop) whose received mails the tests read and follow, and an identity
server (aiohttp over TLS) that validates sessions, binds, and unbinds only requests
signed by the homeserver's key."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.smtp import SMTP, Envelope, Session
from signedjson.key import get_verify_key
from signedjson.sign import SignatureVerifyException, verify_signed_json

from federation.xmatrix import parse_x_matrix, request_object
from tests.conftest import HarnessFactory, HomeserverHarness
from tests.federation.servers import TlsFiles, tls_files

__all__ = ["tls_files"]

V3 = "/_matrix/client/v3"
PUBLIC_BASEURL = "http://hs.test/"
ID_ACCESS_TOKEN = "id-token"
UNLIMITED = {"per_second": 1000, "burst_count": 1000}


# -- SMTP ------------------------------------------------------------------------------


@dataclass
class ReceivedMail:
    sender: str
    recipients: list[str]
    message: Message

    def part(self, content_type: str) -> str:
        for part in self.message.walk():
            if part.get_content_type() == content_type:
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                return payload.decode()
        raise AssertionError(f"no {content_type} part")

    @property
    def link(self) -> str:
        """The first URL of the plain-text part (what SyTest follows)."""
        match = re.search(r"(http\S*)", self.part("text/plain"))
        assert match is not None, "no link in the mail"
        return match.group(1)

    @property
    def link_query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.link).query).items()}


@dataclass
class SmtpSink:
    """Mails the SMTP server received, in order; ``next_mail`` waits for one."""

    port: int = 0
    mails: list[ReceivedMail] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.mails.append(
            ReceivedMail(
                str(envelope.mail_from), list(envelope.rcpt_tos), message_from_bytes(content)
            )
        )
        self.arrived.set()
        return "250 OK"

    async def next_mail(self, seen: int) -> ReceivedMail:
        """The mail after the first ``seen`` ones (the homeserver hands it over before
        answering requestToken, so it is normally already here)."""
        while len(self.mails) <= seen:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 10)
        return self.mails[seen]


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(sink), "127.0.0.1", 0)
    sink.port = server.sockets[0].getsockname()[1]
    yield sink
    server.close()
    await server.wait_closed()


# -- identity server ----------------------------------------------------------------


@dataclass
class FakeIdentityServer:
    """Sessions validated out of band (``validate``), bindings, and the unbind
    requests it accepted; ``unbind_status`` makes it answer unbinds with an error."""

    verify_keys: dict[str, Any] = field(default_factory=dict)
    sessions: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    bindings: dict[tuple[str, str], str] = field(default_factory=dict)
    unbinds: list[dict[str, Any]] = field(default_factory=list)
    unbind_status: int | None = None
    _server: TestServer | None = None

    @property
    def name(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.port}"

    def validate(self, medium: str, address: str, client_secret: str) -> str:
        sid = f"is-session-{len(self.sessions)}"
        self.sessions[sid] = (medium, address, client_secret)
        return sid

    async def start(self, tls: TlsFiles) -> None:
        import ssl

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls.certificate, tls.private_key)
        app = web.Application()
        app.router.add_post("/_matrix/identity/v2/3pid/bind", self._bind)
        app.router.add_post("/_matrix/identity/v2/3pid/unbind", self._unbind)
        self._server = TestServer(app)
        await self._server.start_server(ssl=context)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.close()

    async def _bind(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {ID_ACCESS_TOKEN}":
            return web.json_response({"errcode": "M_UNAUTHORIZED"}, status=401)
        body = await request.json()
        session = self.sessions.get(body.get("sid"))
        if session is None or session[2] != body.get("client_secret"):
            return web.json_response({"errcode": "M_NO_VALID_SESSION"}, status=400)
        medium, address, _ = session
        self.bindings[(medium, address)] = body["mxid"]
        return web.json_response(
            {"medium": medium, "address": address, "mxid": body["mxid"], "ts": 0}
        )

    async def _unbind(self, request: web.Request) -> web.Response:
        body = await request.json()
        credentials = parse_x_matrix(request.headers.get("Authorization", ""))
        verify_key = self.verify_keys.get(credentials.origin)
        signed = request_object("POST", request.path, credentials.origin, self.name, body)
        signed["signatures"] = {credentials.origin: {credentials.key: credentials.sig}}
        try:
            assert verify_key is not None and credentials.destination == self.name
            verify_signed_json(signed, credentials.origin, verify_key)
        except (AssertionError, SignatureVerifyException):
            return web.json_response({"errcode": "M_FORBIDDEN"}, status=403)
        if self.unbind_status is not None:
            return web.json_response({"errcode": "M_UNKNOWN"}, status=self.unbind_status)
        threepid = (body["threepid"]["medium"], body["threepid"]["address"])
        if self.bindings.get(threepid) != body["mxid"]:
            return web.Response(status=404)
        del self.bindings[threepid]
        self.unbinds.append(body)
        return web.json_response({})


@pytest.fixture
async def identity_server(tls_files: TlsFiles) -> AsyncIterator[FakeIdentityServer]:
    server = FakeIdentityServer()
    await server.start(tls_files)
    yield server
    await server.stop()


# -- the homeserver ------------------------------------------------------------------


def email_config(smtp: SmtpSink, **email: Any) -> dict[str, Any]:
    """Config overrides of a homeserver that mails through ``smtp``."""
    return {
        "public_baseurl": PUBLIC_BASEURL,
        "email": {
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "notif_from": "Test HS <hs@test.local>",
            **email,
        },
        "use_insecure_ssl_client_just_for_testing_do_not_use": True,
        "ip_range_whitelist": ["127.0.0.1/32"],
        "rc_3pid_validation": UNLIMITED,
    }


async def email_homeserver(
    make_homeserver: HarnessFactory,
    smtp: SmtpSink,
    identity_server: FakeIdentityServer | None = None,
    **overrides: Any,
) -> HomeserverHarness:
    hs = await make_homeserver(**{**email_config(smtp), **overrides})
    if identity_server is not None:
        key = hs.server.signing_key
        identity_server.verify_keys[hs.server.config.server_name] = get_verify_key(key)
    return hs


def local_path(link: str) -> str:
    """The path and query of a link under public_baseurl (the test client's server)."""
    assert link.startswith(PUBLIC_BASEURL), link
    return "/" + link[len(PUBLIC_BASEURL) :]


async def request_token(
    hs: HomeserverHarness,
    path: str,
    address: str,
    client_secret: str = "s3cret",
    send_attempt: int = 1,
    **extra: Any,
) -> tuple[int, dict[str, Any]]:
    response = await hs.client.post(
        f"{V3}{path}",
        json={
            "email": address,
            "client_secret": client_secret,
            "send_attempt": send_attempt,
            **extra,
        },
    )
    return response.status, await response.json()


async def validate_email(
    hs: HomeserverHarness,
    smtp: SmtpSink,
    path: str,
    address: str,
    client_secret: str = "s3cret",
) -> str:
    """requestToken, then follow the mailed link; the session ID."""
    seen = len(smtp.mails)
    status, body = await request_token(hs, path, address, client_secret)
    assert status == 200, body
    mail = await smtp.next_mail(seen)
    page = await hs.client.get(local_path(mail.link))
    assert page.status == 200, await page.text()
    return str(body["sid"])


async def register(hs: HomeserverHarness, localpart: str, password: str = "pw") -> str:
    """A new user's access token."""
    return str((await hs.register(localpart, password))["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
