"""A server our configuration forbids is 403 M_FORBIDDEN on every client endpoint
that would reach it (as Synapse answers with FederationDeniedError), never the 502 of
a server that could not be reached: federation_domain_whitelist, and the IP range
blacklist (``localhost`` resolves to 127.0.0.1, blacklisted once the test network's
whitelist of 127.0.0.0/8 is gone). Nothing is sent to the forbidden server."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.federation.servers import FederatingServer, ServerFactory
from tests.rooms.helpers import User, make_user

POLICIES: dict[str, dict[str, Any]] = {
    "domain_whitelist": {"federation_domain_whitelist": ["friend.test"]},
    "ip_blacklist": {"federation_ip_range_whitelist": []},
}


@pytest.fixture(params=sorted(POLICIES))
def policy(request: pytest.FixtureRequest) -> dict[str, Any]:
    return POLICIES[str(request.param)]


async def forbidding_pair(
    federation_servers: ServerFactory, policy: dict[str, Any]
) -> tuple[FederatingServer, User, FederatingServer, User, str]:
    """b (reachable, with a public room and an alias) and a, whose config forbids b."""
    (b,) = await federation_servers(1)
    (a,) = await federation_servers(1, **policy)
    bob = await make_user(b.harness, "bob")
    room_id = await bob.create_room(preset="public_chat", room_alias_name="lobby")
    await bob.request("PUT", f"/directory/list/room/{room_id}", {"visibility": "public"})
    alice = await make_user(a.harness, "alice")
    return a, alice, b, bob, room_id


def forbidden(answer: Any) -> None:
    assert answer["errcode"] == "M_FORBIDDEN", answer


async def test_client_endpoints_reaching_a_forbidden_server_are_403(
    federation_servers: ServerFactory, policy: dict[str, Any]
) -> None:
    a, alice, b, bob, room_id = await forbidding_pair(federation_servers, policy)
    via = {"server_name": b.server_name}
    forbidden(await alice.request("POST", f"/join/{quote(room_id)}", {}, expect=403, params=via))
    alias = f"#lobby:{b.server_name}"
    forbidden(await alice.request("POST", f"/join/{quote(alias)}", {}, expect=403))
    forbidden(await alice.request("GET", f"/directory/room/{quote(alias)}", expect=403))
    forbidden(await alice.request("GET", f"/profile/{bob.user_id}", expect=403))
    forbidden(await alice.request("GET", f"/profile/{bob.user_id}/displayname", expect=403))
    forbidden(
        await alice.request("GET", "/publicRooms", expect=403, params={"server": b.server_name})
    )
    forbidden(
        await alice.request(
            "POST", "/publicRooms", {"limit": 5}, expect=403, params={"server": b.server_name}
        )
    )
    response = await a.harness.client.get(
        f"/_matrix/client/v1/media/download/{b.server_name}/someid", headers=alice.auth
    )
    assert response.status == 403
    forbidden(await response.json())
    # a room of a: inviting a user of b needs b to sign the invite
    own_room = await alice.create_room()
    forbidden(
        await alice.request(
            "POST", f"/rooms/{own_room}/invite", {"user_id": bob.user_id}, expect=403
        )
    )
    # keys: 200 with the server under failures, its status 403 (as Synapse)
    keys = await alice.request("POST", "/keys/query", {"device_keys": {bob.user_id: []}})
    assert keys["failures"][b.server_name]["status"] == 403
    assert bob.user_id not in keys["device_keys"]
    claimed = await alice.request(
        "POST", "/keys/claim", {"one_time_keys": {bob.user_id: {"DEV": "signed_curve25519"}}}
    )
    assert claimed["failures"][b.server_name]["status"] == 403
    # nothing of b's reached a
    assert await a.server.stores.rooms.room_exists(room_id) is False


async def test_an_allowed_server_is_still_reached(federation_servers: ServerFactory) -> None:
    (b,) = await federation_servers(1)
    (a,) = await federation_servers(1, federation_domain_whitelist=[b.server_name])
    bob = await make_user(b.harness, "bob")
    await bob.request("PUT", "/profile/" + bob.user_id + "/displayname", {"displayname": "Bob"})
    alice = await make_user(a.harness, "alice")
    profile = await alice.request("GET", f"/profile/{bob.user_id}")
    assert profile["displayname"] == "Bob"
