"""Notifications a user's own events mark read (push.md, "Marking notifications as
read": sending an event updates the read receipt), and users who ignore the sender
(m.ignored_user_list) get no notification: no count, no /notifications entry, nothing
at the push gateway."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from tests.conftest import HarnessFactory, HomeserverHarness
from tests.push.support import LOOPBACK_OK, Gateway, eventually, room_with_pusher
from tests.rooms.helpers import User, make_user


async def unread(user: User, room_id: str) -> dict[str, int]:
    body = await user.sync()
    return dict(body["rooms"]["join"][room_id]["unread_notifications"])


def threaded(root: str) -> dict[str, Any]:
    return {"m.relates_to": {"rel_type": "m.thread", "event_id": root}}


async def ignore(user: User, *ignored: str) -> None:
    await user.request(
        "PUT",
        f"/user/{quote(user.user_id)}/account_data/m.ignored_user_list",
        {"ignored_users": {u: {} for u in ignored}},
    )


# -- sending an event reads what came before it -----------------------------------------------


async def test_sending_a_message_marks_earlier_notifications_read(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    await bob.send(room_id, "one")
    await bob.send(
        room_id, "two", "m.room.message", **{"m.mentions": {"user_ids": [alice.user_id]}}
    )
    assert await unread(alice, room_id) == {"notification_count": 2, "highlight_count": 1}
    await alice.send(room_id, "reading you")
    assert await unread(alice, room_id) == {"notification_count": 0, "highlight_count": 0}
    notes = (await alice.request("GET", "/notifications"))["notifications"]
    assert [n["read"] for n in notes] == [True, True]
    # later messages count again
    await bob.send(room_id, "three")
    assert await unread(alice, room_id) == {"notification_count": 1, "highlight_count": 0}


async def test_sending_in_a_thread_reads_that_thread_only(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    root = await bob.send(room_id, "root")
    await bob.send(room_id, "in thread 1", "m.room.message", **threaded(root))
    await bob.send(room_id, "in thread 2", "m.room.message", **threaded(root))
    assert (await unread(alice, room_id))["notification_count"] == 3
    # alice answers in the thread: the thread is read, the main timeline (the root) is not
    await alice.send(room_id, "answer", "m.room.message", **threaded(root))
    assert (await unread(alice, room_id))["notification_count"] == 1
    await bob.send(room_id, "in thread 3", "m.room.message", **threaded(root))
    assert (await unread(alice, room_id))["notification_count"] == 2
    # a message in the main timeline reads the main timeline, not the thread
    await alice.send(room_id, "main")
    assert (await unread(alice, room_id))["notification_count"] == 1


# -- ignored senders ---------------------------------------------------------------------------


async def test_ignored_sender_raises_no_count_and_no_notification(
    hs: HomeserverHarness,
) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    carol = await make_user(hs, "carol")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    await carol.join(room_id)
    await ignore(alice, bob.user_id)
    await bob.send(room_id, "you cannot hear me")
    await bob.send(
        room_id, "at all", "m.room.message", **{"m.mentions": {"user_ids": [alice.user_id]}}
    )
    # carol, who ignores nobody, is notified of bob
    assert (await unread(carol, room_id))["notification_count"] == 2
    carols = await carol.send(room_id, "but me")
    assert await unread(alice, room_id) == {"notification_count": 1, "highlight_count": 0}
    notes = (await alice.request("GET", "/notifications"))["notifications"]
    assert [n["event"]["event_id"] for n in notes] == [carols]
    # no longer ignored: bob notifies again
    await ignore(alice)
    await bob.send(room_id, "back")
    assert (await unread(alice, room_id))["notification_count"] == 2


async def test_invite_from_an_ignored_user_does_not_notify(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    await ignore(alice, bob.user_id)
    room_id = await bob.create_room()
    await bob.invite(room_id, alice.user_id)
    assert (await alice.request("GET", "/notifications"))["notifications"] == []
    carol = await make_user(hs, "carol")
    other = await carol.create_room()
    await carol.invite(other, alice.user_id)
    notes = (await alice.request("GET", "/notifications"))["notifications"]
    assert [n["room_id"] for n in notes] == [other]


async def test_ignored_sender_is_not_pushed_to_the_gateway(
    make_homeserver: HarnessFactory, gateway: Gateway
) -> None:
    hs = await make_homeserver(**LOOPBACK_OK)
    alice, bob, room_id = await room_with_pusher(hs, gateway.url)
    carol = await make_user(hs, "carol")
    await carol.join(room_id)
    await ignore(alice, bob.user_id)
    await bob.send(room_id, "ignored")
    carols = await carol.send(room_id, "heard")
    await eventually(lambda: len(gateway.received) == 1)
    await asyncio.sleep(0.05)
    assert [r["notification"]["event_id"] for r in gateway.received] == [carols]
    assert gateway.received[0]["notification"]["counts"] == {"unread": 1}
