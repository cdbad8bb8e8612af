"""Inviting by third-party ID through an identity server: lookups of bound addresses,
stored invites of unbound ones, /3pid/onbind, joins with third_party_signed, and the
exchange with the room's server when the invitee's server is not in the room."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from signedjson.key import generate_signing_key

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.federation.servers import TlsFiles, federation_servers, tls_files
from tests.rooms.helpers import User, make_user
from tests.rooms.identity_server import ACCESS_TOKEN, FakeIdentityServer, public_key_of

__all__ = ["federation_servers", "tls_files"]

EMAIL = "bob@example.org"
ONBIND = "/_matrix/federation/v1/3pid/onbind"
TEST_IS = {
    "use_insecure_ssl_client_just_for_testing_do_not_use": True,
    "ip_range_whitelist": ["127.0.0.1/32"],
}


@pytest.fixture
async def identity_server(tls_files: TlsFiles) -> AsyncIterator[FakeIdentityServer]:
    server = FakeIdentityServer()
    await server.start(tls_files)
    yield server
    await server.stop()


def invite_body(identity_server: FakeIdentityServer, address: str = EMAIL) -> dict[str, Any]:
    return {
        "id_server": identity_server.name,
        "id_access_token": ACCESS_TOKEN,
        "medium": "email",
        "address": address,
    }


async def onbind(hs: HomeserverHarness, body: dict[str, Any], method: str = "PUT") -> Any:
    response = await hs.client.request(method, ONBIND, json=body)
    return response.status, await response.json()


async def membership(user: User, room_id: str, target: str) -> str | None:
    data = await user.request("GET", f"/rooms/{room_id}/state/m.room.member/{target}", expect=None)
    return data.get("membership")


async def test_bound_address_invites_its_user(
    make_homeserver: HarnessFactory, identity_server: FakeIdentityServer
) -> None:
    hs = await make_homeserver(**TEST_IS)
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    identity_server.bindings[("email", EMAIL)] = bob.user_id
    room = await alice.create_room()
    await alice.request("POST", f"/rooms/{room}/invite", invite_body(identity_server))
    assert await membership(alice, room, bob.user_id) == "invite"
    # a hashed lookup: the address itself never went to the identity server in clear
    assert ("POST", "/_matrix/identity/v2/lookup") in identity_server.requests
    assert identity_server.invites == []
    # createRoom's invite_3pid does the same
    other = await alice.create_room(invite_3pid=[invite_body(identity_server)])
    assert await membership(alice, other, bob.user_id) == "invite"


async def test_unbound_address_is_invited_once_bound(
    make_homeserver: HarnessFactory, identity_server: FakeIdentityServer
) -> None:
    hs = await make_homeserver(**TEST_IS)
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    await alice.request("PUT", f"/profile/{alice.user_id}/displayname", {"displayname": "Alice"})
    room = await alice.create_room(name="Lounge")
    await alice.request("POST", f"/rooms/{room}/invite", invite_body(identity_server))
    [stored] = identity_server.invites
    assert stored.body["room_name"] == "Lounge"
    assert stored.body["sender_display_name"] == "Alice"
    assert (stored.room_id, stored.sender) == (room, alice.user_id)
    pending = await alice.state(room, "m.room.third_party_invite", stored.token)
    assert pending["display_name"] == "B***@example.org"
    assert len(pending["public_keys"]) == 2
    assert await membership(alice, room, bob.user_id) is None

    status, _ = await onbind(hs, identity_server.onbind_body("email", EMAIL, bob.user_id))
    assert status == 200
    member = await alice.state(room, "m.room.member", bob.user_id)
    assert member["membership"] == "invite"
    assert member["third_party_invite"]["display_name"] == "B***@example.org"
    assert member["third_party_invite"]["signed"]["token"] == stored.token
    # bob sees the invite, with the inviter's membership in its stripped state
    sync = await bob.sync()
    invite_state = sync["rooms"]["invite"][room]["invite_state"]["events"]
    assert any(
        e["type"] == "m.room.member" and e["state_key"] == alice.user_id for e in invite_state
    )
    await bob.join(room)
    assert await membership(alice, room, bob.user_id) == "join"


async def test_onbind_by_post_and_after_the_inviter_left(
    make_homeserver: HarnessFactory, identity_server: FakeIdentityServer
) -> None:
    """Identity servers POST /3pid/onbind (Synapse serves POST; the spec says PUT); the
    invite is still made when its sender has left the room since."""
    hs = await make_homeserver(**TEST_IS)
    alice = await make_user(hs, "alice")
    carol = await make_user(hs, "carol")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat")
    await carol.join(room)
    await alice.request("POST", f"/rooms/{room}/invite", invite_body(identity_server))
    await alice.leave(room)
    status, _ = await onbind(
        hs, identity_server.onbind_body("email", EMAIL, bob.user_id), method="POST"
    )
    assert status == 200
    assert await membership(carol, room, bob.user_id) == "invite"


@pytest.mark.parametrize("problem", ["other_key", "revoked", "unreachable"])
async def test_onbind_refuses_what_the_room_cannot_trust(
    make_homeserver: HarnessFactory, identity_server: FakeIdentityServer, problem: str
) -> None:
    hs = await make_homeserver(**TEST_IS)
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room()
    await alice.request("POST", f"/rooms/{room}/invite", invite_body(identity_server))
    sign: dict[str, Any] = {}
    if problem == "other_key":
        sign["key"] = generate_signing_key("0")
    body = identity_server.onbind_body("email", EMAIL, bob.user_id, **sign)
    if problem == "revoked":
        identity_server.revoked.add(public_key_of(identity_server.key))
    if problem == "unreachable":
        await identity_server.stop()
    before = await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM events")
    status, error = await onbind(hs, body)
    assert status == (502 if problem == "unreachable" else 403), error
    assert await membership(alice, room, bob.user_id) is None
    assert await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM events") == before
    # nor can bob join the invite-only room
    err = await bob.request("POST", f"/join/{room}", {}, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"


async def test_join_with_third_party_signed(
    make_homeserver: HarnessFactory, identity_server: FakeIdentityServer
) -> None:
    hs = await make_homeserver(**TEST_IS)
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room()
    await alice.request("POST", f"/rooms/{room}/invite", invite_body(identity_server))
    [stored] = identity_server.invites
    signed = identity_server.signed(
        bob.user_id, stored.token, key=identity_server.ephemeral_key, sender=alice.user_id
    )
    # a block for another user is refused
    err = await bob.request(
        "POST",
        f"/join/{room}",
        {"third_party_signed": identity_server.signed("@eve:test.local", stored.token)},
        expect=400,
    )
    assert err["errcode"] == "M_BAD_JSON"
    await bob.request("POST", f"/join/{room}", {"third_party_signed": signed})
    assert await membership(alice, room, bob.user_id) == "join"


async def test_bad_third_party_invites(
    make_homeserver: HarnessFactory, identity_server: FakeIdentityServer
) -> None:
    hs = await make_homeserver(**TEST_IS)
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room()
    before = await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM events")
    body = invite_body(identity_server)
    del body["id_access_token"]
    err = await alice.request("POST", f"/rooms/{room}/invite", body, expect=400)
    assert err["errcode"] == "M_MISSING_PARAM"
    err = await alice.request(
        "POST",
        f"/rooms/{room}/invite",
        {**invite_body(identity_server), "id_server": "not a server/"},
        expect=400,
    )
    assert err["errcode"] == "M_INVALID_PARAM"
    err = await alice.request(
        "POST", f"/rooms/{room}/invite", {**invite_body(identity_server), "medium": 3}, expect=400
    )
    assert err["errcode"] == "M_BAD_JSON"
    # a wrong identity-server token: the identity server refuses, so do we
    err = await alice.request(
        "POST",
        f"/rooms/{room}/invite",
        {**invite_body(identity_server), "id_access_token": "wrong"},
        expect=502,
    )
    # not joined: refused before the identity server is asked
    asked = len(identity_server.requests)
    err = await bob.request(
        "POST", f"/rooms/{room}/invite", invite_body(identity_server), expect=403
    )
    assert err["errcode"] == "M_FORBIDDEN"
    assert len(identity_server.requests) == asked
    err = await alice.request("POST", "/createRoom", {"invite_3pid": ["x"]}, expect=400)
    assert err["errcode"] == "M_BAD_JSON"
    assert await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM events") == before
    # onbind for a user of another server, or a signed block naming someone else
    status, error = await onbind(hs, {"mxid": "@bob:elsewhere", "invites": []})
    assert (status, error["errcode"]) == (400, "M_BAD_JSON")
    status, error = await onbind(
        hs,
        {
            "mxid": bob.user_id,
            "invites": [
                {
                    "mxid": bob.user_id,
                    "room_id": room,
                    "sender": alice.user_id,
                    "signed": identity_server.signed("@eve:test.local", "t"),
                }
            ],
        },
    )
    assert (status, error["errcode"]) == (400, "M_BAD_JSON")
    assert await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM events") == before


async def test_exchange_with_the_rooms_server(
    federation_servers: Any, identity_server: FakeIdentityServer
) -> None:
    """bob's server is not in the room: it asks the inviter's server to make the
    invite (/exchange_third_party_invite), which sends it to bob's server."""
    a, b = await federation_servers(2, **TEST_IS)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room = await alice.create_room()
    await alice.request("POST", f"/rooms/{room}/invite", invite_body(identity_server))
    # (the federation API of these servers is on their TLS listener)
    async with aiohttp.ClientSession() as session:
        async with session.put(
            f"{b.base_url}{ONBIND}",
            json=identity_server.onbind_body("email", EMAIL, bob.user_id),
            ssl=False,
        ) as response:
            assert response.status == 200, await response.text()
    assert await membership(alice, room, bob.user_id) == "invite"
    sync = await bob.sync()
    assert room in sync["rooms"]["invite"]
    await bob.join(room)
    assert await membership(alice, room, bob.user_id) == "join"


async def test_bad_exchange_requests_are_refused(
    federation_servers: Any, identity_server: FakeIdentityServer
) -> None:
    from federation.errors import FederationError

    a, b = await federation_servers(2, **TEST_IS)
    alice = await make_user(a.harness, "alice")
    room = await alice.create_room()
    await alice.request("POST", f"/rooms/{room}/invite", invite_body(identity_server))
    [stored] = identity_server.invites
    bob = (await make_user(b.harness, "bob")).user_id
    good = {
        "type": "m.room.member",
        "room_id": room,
        "sender": alice.user_id,
        "state_key": bob,
        "content": {
            "membership": "invite",
            "third_party_invite": {"signed": identity_server.signed(bob, stored.token)},
        },
    }
    path = f"/_matrix/federation/v1/exchange_third_party_invite/{room}"
    before = await a.server.db.fetchval("t", "SELECT COUNT(*) FROM events")
    for bad, status in (
        ({**good, "type": "m.room.message"}, 400),
        ({**good, "room_id": "!other:x"}, 400),
        ({**good, "content": {"membership": "join"}}, 400),
        ({**good, "state_key": "@eve:x"}, 400),  # signed.mxid is bob
        (
            {
                **good,
                "content": {
                    "membership": "invite",
                    "third_party_invite": {
                        "signed": identity_server.signed(
                            bob, stored.token, key=generate_signing_key("0")
                        )
                    },
                },
            },
            403,
        ),
    ):
        with pytest.raises(FederationError) as caught:
            await b.fed.client.put_json(a.server_name, path, bad)
        assert caught.value.status == status, bad
    # a server not in the room cannot make the invite
    with pytest.raises(FederationError) as caught:
        await a.fed.client.put_json(b.server_name, path, good)
    assert caught.value.status == 404
    assert await a.server.db.fetchval("t", "SELECT COUNT(*) FROM events") == before
    # and the good one works
    await b.fed.client.put_json(a.server_name, path, good)
    assert await membership(alice, room, bob) == "invite"
