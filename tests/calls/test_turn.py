"""GET /voip/turnServer: TURN REST API credentials from the shared secret, fixed
credentials, no TURN configured, guests."""

from __future__ import annotations

import base64
import hashlib
import hmac

from homeserver.calls.turn import shared_secret_credentials
from tests.conftest import HarnessFactory
from tests.rooms.helpers import make_user

URIS = ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349"]


def test_shared_secret_credentials_are_coturns() -> None:
    username, password = shared_secret_credentials("s3cret", "@a:hs", 1_000_000, 3_600_000)
    assert username == "4600:@a:hs"
    digest = hmac.new(b"s3cret", b"4600:@a:hs", hashlib.sha1).digest()
    assert base64.b64decode(password) == digest


async def test_shared_secret_gives_time_limited_credentials(
    make_homeserver: HarnessFactory,
) -> None:
    hs = await make_homeserver(
        turn_uris=URIS, turn_shared_secret="s3cret", turn_user_lifetime="10m"
    )
    alice = await make_user(hs, "alice")
    hs.clock.advance(5)
    body = await alice.request("GET", "/voip/turnServer")
    expiry = (hs.clock.time_ms() + 600_000) // 1000
    assert body["uris"] == URIS and body["ttl"] == 600
    assert body["username"] == f"{expiry}:{alice.user_id}"
    assert (
        body["password"]
        == shared_secret_credentials("s3cret", alice.user_id, hs.clock.time_ms(), 600_000)[1]
    )


async def test_fixed_credentials_and_no_turn(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(turn_uris=URIS, turn_username="u", turn_password="p")
    alice = await make_user(hs, "alice")
    body = await alice.request("GET", "/voip/turnServer")
    assert (body["username"], body["password"], body["ttl"]) == ("u", "p", 3600)
    plain = await make_homeserver()
    bob = await make_user(plain, "bob")
    assert await bob.request("GET", "/voip/turnServer") == {}
    resp = await plain.client.get("/_matrix/client/v3/voip/turnServer")
    assert resp.status == 401 and (await resp.json())["errcode"] == "M_MISSING_TOKEN"


async def test_guests_only_when_allowed(make_homeserver: HarnessFactory) -> None:
    for allowed in (True, False):
        hs = await make_homeserver(
            turn_uris=URIS,
            turn_shared_secret="s",
            turn_allow_guests=allowed,
            allow_guest_access=True,
        )
        resp = await hs.client.post("/_matrix/client/v3/register?kind=guest", json={})
        assert resp.status == 200, await resp.text()
        token = (await resp.json())["access_token"]
        resp = await hs.client.get(
            "/_matrix/client/v3/voip/turnServer", headers={"Authorization": f"Bearer {token}"}
        )
        body = await resp.json()
        if allowed:
            assert resp.status == 200 and body["uris"] == URIS
        else:
            assert resp.status == 403 and body["errcode"] == "M_GUEST_ACCESS_FORBIDDEN"
