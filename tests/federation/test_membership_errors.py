"""Bad membership handshake requests get the right Matrix errors and change nothing."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from federation.errors import FederationError
from tests.federation.membership_helpers import members
from tests.federation.rooms import build_pdu
from tests.federation.servers import FederatingServer, ServerFactory
from tests.rooms.helpers import make_user

V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"


async def refused(call: Any) -> FederationError:
    with pytest.raises(FederationError) as info:
        await call
    return info.value


async def make_join(
    origin: FederatingServer, resident: FederatingServer, room_id: str, user_id: str, **q: Any
) -> Any:
    path = f"{V1}/make_join/{quote(room_id, safe='')}/{quote(user_id, safe='')}"
    return await origin.fed.client.get_json(resident.server_name, path, q or None)


async def test_make_join_errors(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    room_id = await alice.create_room(preset="public_chat", room_version="10")
    bob_id = f"@bob:{b.server_name}"
    # A user of another server than the asking one.
    err = await refused(make_join(b, a, room_id, f"@mallory:{a.server_name}", ver=["10"]))
    assert (err.status, err.errcode) == (403, "M_FORBIDDEN")
    # The asker does not support the room's version.
    err = await refused(make_join(b, a, room_id, bob_id, ver=["9"]))
    assert (err.status, err.errcode) == (400, "M_INCOMPATIBLE_ROOM_VERSION")
    assert err.body["room_version"] == "10"
    # Unknown room; malformed user ID.
    err = await refused(make_join(b, a, f"!nope:{a.server_name}", bob_id, ver=["10"]))
    assert (err.status, err.errcode) == (404, "M_NOT_FOUND")
    err = await refused(make_join(b, a, room_id, "bob", ver=["10"]))
    assert (err.status, err.errcode) == (400, "M_INVALID_PARAM")
    # make_knock needs ver.
    path = f"{V1}/make_knock/{quote(room_id, safe='')}/{quote(bob_id, safe='')}"
    err = await refused(b.fed.client.get_json(a.server_name, path))
    assert (err.status, err.errcode) == (400, "M_MISSING_PARAM")
    template = await make_join(b, a, room_id, bob_id, ver=["9", "10"])
    assert template["room_version"] == "10"
    assert template["event"]["content"] == {"membership": "join"}
    assert "signatures" not in template["event"]


async def test_send_join_errors_change_nothing(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    room_id = await alice.create_room(preset="public_chat")
    bob_id = f"@bob:{b.server_name}"
    join = await build_pdu(
        a.server, room_id, "m.room.member", bob_id, {"membership": "join"}, state_key=bob_id,
        sign_as=(b.server_name, b.server.signing_key),
    )  # fmt: skip
    base = f"{V2}/send_join/{quote(room_id, safe='')}"
    put = b.fed.client.put_json
    # The path's event ID is not the event's.
    err = await refused(put(a.server_name, f"{base}/{quote('$other', safe='')}", dict(join.pdu)))
    assert (err.status, err.errcode) == (400, "M_BAD_JSON")
    # Not a join.
    leave = await build_pdu(
        a.server, room_id, "m.room.member", bob_id, {"membership": "leave"}, state_key=bob_id,
        sign_as=(b.server_name, b.server.signing_key),
    )  # fmt: skip
    err = await refused(
        put(a.server_name, f"{base}/{quote(leave.event_id, safe='')}", dict(leave.pdu))
    )
    assert (err.status, err.errcode) == (400, "M_BAD_JSON")
    # Sent by another server than the sender's.
    err = await refused(
        a.fed.client.put_json(
            b.server_name, f"{base}/{quote(join.event_id, safe='')}", dict(join.pdu)
        )
    )
    assert err.status == 404  # b is not in the room
    # A bad signature: the event was signed by a, not bob's server.
    forged = await build_pdu(
        a.server, room_id, "m.room.member", bob_id, {"membership": "join"}, state_key=bob_id
    )
    err = await refused(
        put(a.server_name, f"{base}/{quote(forged.event_id, safe='')}", dict(forged.pdu))
    )
    assert (err.status, err.errcode) == (403, "M_FORBIDDEN")
    assert (await members(a, room_id)).get(bob_id) is None
    # The real one works, and omit_members answers a partial state.
    answer = await put(
        a.server_name, f"{base}/{quote(join.event_id, safe='')}", dict(join.pdu),
        {"omit_members": "true"},
    )  # fmt: skip
    assert answer["members_omitted"] is True
    assert answer["servers_in_room"] == [a.server_name]
    assert all(e["type"] != "m.room.member" for e in answer["state"])
    assert (await members(a, room_id)).get(bob_id) == "join"


async def test_invite_errors(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    await make_user(b.harness, "bob")
    room_id = await alice.create_room(preset="private_chat", room_version="10")
    bob_id = f"@bob:{b.server_name}"
    invite = await build_pdu(
        a.server, room_id, "m.room.member", alice.user_id, {"membership": "invite"},
        state_key=bob_id,
    )  # fmt: skip
    path = f"{V2}/invite/{quote(room_id, safe='')}/{quote(invite.event_id, safe='')}"
    put = a.fed.client.put_json
    body: dict[str, Any] = {
        "room_version": "10",
        "event": dict(invite.pdu),
        "invite_room_state": [],
    }
    err = await refused(put(b.server_name, path, {**body, "room_version": "999"}))
    assert (err.status, err.errcode) == (400, "M_INCOMPATIBLE_ROOM_VERSION")
    err = await refused(put(b.server_name, path, {"room_version": "10"}))
    assert (err.status, err.errcode) == (400, "M_MISSING_PARAM")
    # Sent through a server that is not the inviter's.
    err = await refused(b.fed.client.put_json(a.server_name, path, body))
    assert err.status == 400  # the invitee is not a user of a
    # The good one is countersigned; bob is invited (out of band) on b.
    answer = await put(b.server_name, path, body)
    assert set(answer["event"]["signatures"]) == {a.server_name, b.server_name}
    history = await b.server.stores.state.rooms_for_user(bob_id)
    assert room_id not in history  # not in the room's state: b is not in the room
