"""The device list stream: /keys/changes, device deletion, joins and leaves, /sync."""

from __future__ import annotations

import asyncio

from tests.conftest import HomeserverHarness
from tests.e2ee.helpers import changes, current_token, login_again, make_device, query
from tests.rooms.helpers import make_user


async def test_changes_for_users_sharing_a_room(hs: HomeserverHarness) -> None:
    alice = await make_device(hs, "alice")
    bob = await make_user(hs, "bob")
    carol = await make_device(hs, "carol")
    room = await bob.create_room(preset="public_chat")
    await alice.user.join(room)
    start = current_token(hs)
    await alice.upload(device_keys=alice.device_keys())
    await carol.upload(device_keys=carol.device_keys())  # shares no room with bob
    end = current_token(hs)
    assert await changes(bob, start, end) == {"changed": [alice.user_id], "left": []}
    # alice sees her own change
    assert alice.user_id in (await changes(alice.user, start, end))["changed"]
    # nothing between end and end; OTK uploads are not device list changes
    await alice.upload(one_time_keys=alice.one_time_keys(3))
    assert await changes(bob, end, current_token(hs)) == {"changed": [], "left": []}


async def test_deleting_a_device_drops_its_keys_and_is_a_change(hs: HomeserverHarness) -> None:
    alice = await make_device(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await bob.create_room(preset="public_chat")
    await alice.user.join(room)
    await alice.upload(device_keys=alice.device_keys(), one_time_keys=alice.one_time_keys(2))
    start = current_token(hs)
    path = f"/devices/{alice.device_id}"
    first = await alice.user.request("DELETE", path, {}, expect=401)
    other = await login_again(hs, alice.user)
    await other.request(
        "DELETE",
        path,
        {
            "auth": {
                "type": "m.login.password",
                "session": first["session"],
                "identifier": {"type": "m.id.user", "user": alice.user_id},
                "password": "correct horse",
            }
        },
    )
    assert (await query(bob, alice.user_id))["device_keys"][alice.user_id] == {}
    assert await changes(bob, start, current_token(hs)) == {"changed": [alice.user_id], "left": []}
    claim = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}
    assert (await bob.request("POST", "/keys/claim", claim))["one_time_keys"] == {}


async def test_joining_makes_changed_and_leaving_makes_left(hs: HomeserverHarness) -> None:
    bob = await make_user(hs, "bob")
    dave = await make_device(hs, "dave")
    await dave.upload(device_keys=dave.device_keys())
    room = await bob.create_room(preset="public_chat")
    before_join = current_token(hs)
    await dave.user.join(room)
    after_join = current_token(hs)
    assert await changes(bob, before_join, after_join) == {"changed": [dave.user_id], "left": []}
    # and from dave's side: bob is newly shared
    assert (await changes(dave.user, before_join, after_join))["changed"] == [bob.user_id]
    await dave.user.leave(room)
    after_leave = current_token(hs)
    assert await changes(bob, after_join, after_leave) == {"changed": [], "left": [dave.user_id]}
    # still sharing another room: not "left"
    other = await bob.create_room(preset="public_chat")
    await dave.user.join(other)
    await dave.user.join(room)
    rejoined = current_token(hs)
    await dave.user.leave(room)
    assert (await changes(bob, rejoined, current_token(hs)))["left"] == []


async def test_sync_carries_device_lists_and_key_counts(hs: HomeserverHarness) -> None:
    alice = await make_device(hs, "alice")
    bob = await make_device(hs, "bob")
    room = await bob.user.create_room(preset="public_chat")
    await alice.user.join(room)
    await bob.upload(
        device_keys=bob.device_keys(),
        one_time_keys=bob.one_time_keys(4),
        fallback_keys=bob.one_time_keys(1, fallback=True),
    )
    initial = await bob.user.sync(timeout=0)
    assert initial["device_one_time_keys_count"] == {"signed_curve25519": 4}
    assert initial["device_unused_fallback_key_types"] == ["signed_curve25519"]
    since = initial["next_batch"]

    waiting = asyncio.create_task(bob.user.sync(since=since, timeout=10_000))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await alice.upload(device_keys=alice.device_keys())
    incremental = await asyncio.wait_for(waiting, 5)
    assert incremental["device_lists"] == {"changed": [alice.user_id], "left": []}


async def test_a_new_device_is_a_change(hs: HomeserverHarness) -> None:
    """A login makes a device: the user's other devices and the users sharing a room
    with them see the user in ``changed`` (before any key is uploaded)."""
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    carol = await make_user(hs, "carol")  # shares no room with alice
    room = await bob.create_room(preset="public_chat")
    await alice.join(room)
    start = current_token(hs)
    second = await login_again(hs, alice)
    end = current_token(hs)
    assert await changes(bob, start, end) == {"changed": [alice.user_id], "left": []}
    assert await changes(alice, start, end) == {"changed": [alice.user_id], "left": []}
    assert await changes(carol, start, end) == {"changed": [], "left": []}
    # and through /sync, which wakes for it
    since = (await alice.sync(timeout=0))["next_batch"]
    waiting = asyncio.create_task(alice.sync(since=since, timeout=10_000))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    third = await login_again(hs, alice)
    synced = await asyncio.wait_for(waiting, 5)
    assert synced["device_lists"]["changed"] == [alice.user_id]
    assert second.device_id != third.device_id
    # a login that reuses a device ID is no new device
    again = current_token(hs)
    resp = await hs.client.post(
        "/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": alice.user_id},
            "password": "correct horse",
            "device_id": third.device_id,
        },
    )
    assert resp.status == 200
    assert await changes(bob, again, current_token(hs)) == {"changed": [], "left": []}


async def test_invited_and_knocking_users_are_changed(hs: HomeserverHarness) -> None:
    """As Synapse does: a client encrypting for a room's members includes the
    invited, so an invite (or a knock) into a room of ours puts the user in
    ``changed``; the invited leaving again (a rejection) puts them in ``left``."""
    bob = await make_user(hs, "bob")
    dave = await make_user(hs, "dave")
    erin = await make_user(hs, "erin")
    room = await bob.create_room()
    knockable = await bob.create_room(room_version="10")
    await bob.request("PUT", f"/rooms/{knockable}/state/m.room.join_rules", {"join_rule": "knock"})
    start = current_token(hs)
    await bob.request("POST", f"/rooms/{room}/invite", {"user_id": dave.user_id})
    await erin.request("POST", f"/knock/{knockable}", {})
    invited = current_token(hs)
    assert await changes(bob, start, invited) == {
        "changed": sorted([dave.user_id, erin.user_id]),
        "left": [],
    }
    await dave.leave(room)  # rejects the invite
    assert await changes(bob, invited, current_token(hs)) == {
        "changed": [],
        "left": [dave.user_id],
    }
    # invited then gone within one window: left, not changed
    assert (await changes(bob, start, current_token(hs)))["left"] == [dave.user_id]
    assert dave.user_id not in (await changes(bob, start, current_token(hs)))["changed"]


async def test_a_key_upload_returns_once_listeners_were_told(hs: HomeserverHarness) -> None:
    """Other servers' EDUs are queued (by a ``change_listeners`` entry) before the
    client's request that changed the keys or the device returns."""
    alice = await make_device(hs, "alice")
    told: list[tuple[str, list[str]]] = []

    async def slow_listener(user_id: str, device_ids: list[str], position: int) -> None:
        await asyncio.sleep(0.05)
        told.append((user_id, device_ids))

    hs.server.client.e2ee.device_lists.change_listeners.append(slow_listener)
    await alice.upload(device_keys=alice.device_keys())
    assert told == [(alice.user_id, [alice.device_id])]
    await alice.user.request("PUT", f"/devices/{alice.device_id}", {"display_name": "phone"})
    assert told[-1] == (alice.user_id, [alice.device_id])
    # nothing changed, nothing to tell
    await alice.upload(device_keys=alice.device_keys())
    assert len(told) == 2


async def test_a_listener_added_later_does_not_hear_of_an_older_change(
    hs: HomeserverHarness,
) -> None:
    """The listeners told of a change are those there were when it committed, even
    when an earlier listener is still busy with it as another one is added."""
    device_lists = hs.server.client.e2ee.device_lists
    release = asyncio.Event()
    first: list[str] = []
    late: list[str] = []

    async def blocking_listener(user_id: str, device_ids: list[str], position: int) -> None:
        await release.wait()
        first.append(user_id)

    async def late_listener(user_id: str, device_ids: list[str], position: int) -> None:
        late.append(user_id)

    device_lists.change_listeners.insert(0, blocking_listener)
    alice = await make_device(hs, "alice")  # the login is a change; its telling waits
    device_lists.change_listeners.append(late_listener)
    release.set()
    await device_lists.wait_listeners()
    assert first == [alice.user_id]
    assert late == []
