"""A small identity server for tests (Identity Service API v2: hashed lookups, stored
invites, key validity), served over HTTPS on loopback, and the bindings it tells
homeservers about (``/3pid/onbind``) with invites signed by its keys."""

from __future__ import annotations

import dataclasses
import hashlib
import ssl
from base64 import urlsafe_b64encode
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json
from signedjson.types import SigningKey

from tests.federation.servers import TlsFiles

ACCESS_TOKEN = "is-token"
PEPPER = "matrixrocks"


def public_key_of(key: SigningKey) -> str:
    return encode_verify_key_base64(get_verify_key(key))


@dataclasses.dataclass
class StoredInvite:
    medium: str
    address: str
    room_id: str
    sender: str
    token: str
    body: dict[str, Any]


class FakeIdentityServer:
    def __init__(self) -> None:
        self.key = generate_signing_key("0")
        self.ephemeral_key = generate_signing_key("0")
        self.revoked: set[str] = set()
        self.bindings: dict[tuple[str, str], str] = {}
        self.invites: list[StoredInvite] = []
        self.requests: list[tuple[str, str]] = []
        self._server: TestServer | None = None

    @property
    def name(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.port}"

    async def start(self, tls: TlsFiles) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls.certificate, tls.private_key)
        app = web.Application()
        base = "/_matrix/identity/v2"
        app.router.add_get(f"{base}/hash_details", self._hash_details)
        app.router.add_post(f"{base}/lookup", self._lookup)
        app.router.add_post(f"{base}/store-invite", self._store_invite)
        app.router.add_get(f"{base}/pubkey/isvalid", self._is_valid)
        self._server = TestServer(app)
        await self._server.start_server(ssl=context)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.close()

    def _authorised(self, request: web.Request) -> None:
        self.requests.append((request.method, request.path))
        if request.headers.get("Authorization") != f"Bearer {ACCESS_TOKEN}":
            raise web.HTTPUnauthorized(
                text='{"errcode":"M_UNAUTHORIZED"}', content_type="application/json"
            )

    async def _hash_details(self, request: web.Request) -> web.Response:
        self._authorised(request)
        return web.json_response({"lookup_pepper": PEPPER, "algorithms": ["none", "sha256"]})

    async def _lookup(self, request: web.Request) -> web.Response:
        self._authorised(request)
        body = await request.json()
        assert body["algorithm"] == "sha256" and body["pepper"] == PEPPER
        by_hash = {
            urlsafe_b64encode(hashlib.sha256(f"{address} {medium} {PEPPER}".encode()).digest())
            .decode()
            .rstrip("="): mxid
            for (medium, address), mxid in self.bindings.items()
        }
        return web.json_response(
            {"mappings": {h: by_hash[h] for h in body["addresses"] if h in by_hash}}
        )

    async def _store_invite(self, request: web.Request) -> web.Response:
        self._authorised(request)
        body = await request.json()
        token = f"token{len(self.invites)}"
        self.invites.append(
            StoredInvite(
                body["medium"], body["address"], body["room_id"], body["sender"], token, body
            )
        )
        url = f"https://{self.name}/_matrix/identity/v2/pubkey/isvalid"
        return web.json_response(
            {
                "token": token,
                "display_name": "B***@example.org",
                "public_key": public_key_of(self.key),
                "public_keys": [
                    {"public_key": public_key_of(self.key), "key_validity_url": url},
                    {"public_key": public_key_of(self.ephemeral_key), "key_validity_url": url},
                ],
            }
        )

    async def _is_valid(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path))
        key = request.query.get("public_key")
        valid = (
            key in (public_key_of(self.key), public_key_of(self.ephemeral_key))
            and key not in self.revoked
        )
        return web.json_response({"valid": valid})

    def signed(self, mxid: str, token: str, *, key: SigningKey | None = None, **extra: Any) -> Any:
        """A ``signed`` block for ``mxid`` and an invite token, signed by ``key``
        (the server's long-term key by default)."""
        return sign_json({"mxid": mxid, "token": token, **extra}, self.name, key or self.key)

    def onbind_body(self, medium: str, address: str, mxid: str, **sign: Any) -> dict[str, Any]:
        """What the server sends to the homeserver of ``mxid`` once it is bound to
        ``(medium, address)``: every pending invite of the address, signed."""
        self.bindings[(medium, address)] = mxid
        invites = [
            {
                "medium": invite.medium,
                "address": invite.address,
                "mxid": mxid,
                "room_id": invite.room_id,
                "sender": invite.sender,
                "signed": self.signed(mxid, invite.token, **sign),
            }
            for invite in self.invites
            if (invite.medium, invite.address) == (medium, address)
        ]
        return {"medium": medium, "address": address, "mxid": mxid, "invites": invites}
