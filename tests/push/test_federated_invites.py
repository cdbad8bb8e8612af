"""An invite received over federation (a room this server is not in) is pushed to
the invitee, named from the invite's stripped state; rejecting it reads it."""

from __future__ import annotations

from tests.federation.membership_helpers import in_section, settled, sync_until
from tests.federation.servers import ServerFactory
from tests.push.support import LOOPBACK_OK, PUSHKEY, Gateway, eventually, pool, pusher_body
from tests.rooms.helpers import make_user


async def test_remote_invite_is_pushed_with_the_rooms_name(
    federation_servers: ServerFactory, gateway: Gateway
) -> None:
    a, b = await federation_servers(2, **LOOPBACK_OK)
    carol = await make_user(a.harness, "carol")
    alice = await make_user(b.harness, "alice")
    await alice.request("POST", "/pushers/set", pusher_body(gateway.url))
    room_id = await carol.create_room(preset="private_chat", name="Test Name")
    await carol.invite(room_id, alice.user_id)
    await eventually(lambda: len(gateway.received) == 1)
    notification = gateway.received[0]["notification"]
    assert notification["type"] == "m.room.member"
    assert notification["membership"] == "invite" and notification["user_is_target"] is True
    assert notification["room_id"] == room_id and notification["sender"] == carol.user_id
    assert notification["id"] == notification["event_id"]
    assert notification["room_name"] == "Test Name"
    assert notification["counts"] == {"unread": 1}
    assert notification["devices"][0]["pushkey"] == PUSHKEY
    assert notification["devices"][0]["tweaks"] == {"sound": "default"}
    # listed among alice's notifications
    notes = (await alice.request("GET", "/notifications"))["notifications"]
    assert [n["event"]["event_id"] for n in notes] == [notification["event_id"]]
    # rejecting the invite reads it: the badge drops to zero
    _s, _since = await sync_until(alice, in_section("invite", room_id))
    await alice.leave(room_id)
    await settled(a, b)
    assert await pool(b.harness).evaluator.unread_total(alice.user_id) == 0


async def test_remote_invite_is_not_pushed_when_muted_or_ignored(
    federation_servers: ServerFactory, gateway: Gateway
) -> None:
    a, b = await federation_servers(2, **LOOPBACK_OK)
    carol = await make_user(a.harness, "carol")
    dave = await make_user(a.harness, "dave")
    alice = await make_user(b.harness, "alice")
    await alice.request("POST", "/pushers/set", pusher_body(gateway.url))
    # alice ignores carol, and mutes invites from anyone
    await alice.request(
        "PUT",
        f"/user/{alice.user_id}/account_data/m.ignored_user_list",
        {"ignored_users": {carol.user_id: {}}},
    )
    ignored_room = await carol.create_room(preset="private_chat")
    await carol.invite(ignored_room, alice.user_id)
    await alice.request(
        "PUT", "/pushrules/global/override/.m.rule.invite_for_me/enabled", {"enabled": False}
    )
    muted_room = await dave.create_room(preset="private_chat")
    await dave.invite(muted_room, alice.user_id)
    await alice.request(
        "PUT", "/pushrules/global/override/.m.rule.invite_for_me/enabled", {"enabled": True}
    )
    pushed_room = await dave.create_room(preset="private_chat")
    await dave.invite(pushed_room, alice.user_id)
    await eventually(lambda: len(gateway.received) == 1)
    assert gateway.received[0]["notification"]["room_id"] == pushed_room
