"""EDUs reaching the ephemeral services over federation (typing, to-device, receipts, presence)."""

from __future__ import annotations

import asyncio

from tests.federation.rooms import send_txn, settle, share_room
from tests.federation.servers import ServerFactory


async def test_typing_and_to_device_edus_reach_the_services(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b)
    typing = {
        "edu_type": "m.typing",
        "content": {"room_id": room_id, "user_id": alice.user_id, "typing": True},
    }
    assert await send_txn(a, b, [], [typing]) == {"pdus": {}}
    assert b.server.client.typing.typing_users(room_id) == [alice.user_id]
    # alice's client sends a to-device message to bob's device on b.
    messages = {"messages": {bob.user_id: {bob.device_id: {"hello": "bob"}}}}
    await alice.request("PUT", "/sendToDevice/m.test/txn1", messages)
    await settle(a, b)
    sync = await bob.sync()
    events = sync.get("to_device", {}).get("events", [])
    assert [(e["sender"], e["type"], e["content"]) for e in events] == [
        (alice.user_id, "m.test", {"hello": "bob"})
    ]


async def test_typing_and_receipts_go_both_ways(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b)
    # alice types on a: b's typing service learns it; bob types on b: a learns it.
    await alice.request(
        "PUT", f"/rooms/{room_id}/typing/{alice.user_id}", {"typing": True, "timeout": 20000}
    )
    await bob.request(
        "PUT", f"/rooms/{room_id}/typing/{bob.user_id}", {"typing": True, "timeout": 20000}
    )
    await settle(a, b)
    assert alice.user_id in b.server.client.typing.typing_users(room_id)
    assert bob.user_id in a.server.client.typing.typing_users(room_id)
    await alice.request("PUT", f"/rooms/{room_id}/typing/{alice.user_id}", {"typing": False})
    await settle(a, b)
    assert alice.user_id not in b.server.client.typing.typing_users(room_id)

    # Read receipts: public ones cross, private ones never leave their server.
    event_id = await alice.send(room_id, "read me")
    await settle(a, b)
    await bob.request("POST", f"/rooms/{room_id}/receipt/m.read/{event_id}", {})
    await alice.request("POST", f"/rooms/{room_id}/receipt/m.read.private/{event_id}", {})
    await settle(a, b)

    def readers(sync: dict, receipt_type: str) -> set[str]:
        found: set[str] = set()
        room = sync.get("rooms", {}).get("join", {}).get(room_id, {})
        for edu in room.get("ephemeral", {}).get("events", []):
            if edu["type"] == "m.receipt":
                found |= set(edu["content"].get(event_id, {}).get(receipt_type, {}))
        return found

    assert bob.user_id in readers(await alice.sync(), "m.read")
    bob_view = await bob.sync()
    assert alice.user_id not in readers(bob_view, "m.read.private")
    assert alice.user_id not in readers(bob_view, "m.read")


async def test_presence_goes_both_ways(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b)
    await alice.request(
        "PUT", f"/presence/{alice.user_id}/status", {"presence": "online", "status_msg": "here"}
    )
    await bob.request("PUT", f"/presence/{bob.user_id}/status", {"presence": "unavailable"})
    # The EDUs are queued by a task the change starts: settle until they crossed.
    for _ in range(50):
        await settle(a, b)
        seen_by_bob = await bob.request("GET", f"/presence/{alice.user_id}/status")
        seen_by_alice = await alice.request("GET", f"/presence/{bob.user_id}/status")
        if seen_by_bob["presence"] == "online" and seen_by_alice["presence"] == "unavailable":
            break
        await asyncio.sleep(0.02)
    seen_by_bob = await bob.request("GET", f"/presence/{alice.user_id}/status")
    assert seen_by_bob["presence"] == "online" and seen_by_bob["status_msg"] == "here"
    seen_by_alice = await alice.request("GET", f"/presence/{bob.user_id}/status")
    assert seen_by_alice["presence"] == "unavailable"
    # and it arrives in /sync's presence section
    sync = await bob.sync()
    senders = {e["sender"] for e in sync.get("presence", {}).get("events", [])}
    assert alice.user_id in senders
    assert room_id


async def test_a_join_makes_presence_known_across_the_new_link(
    federation_servers: ServerFactory,
) -> None:
    """alice (on a) and bob (on b) set their presence while sharing no room: nothing
    crosses. When bob joins alice's room, each server tells the other of its members'
    presence (as Synapse does), so neither waits for the next change to see it."""
    from tests.federation.rooms import bootstrap_room, remote_join
    from tests.rooms.helpers import make_user

    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    carol = await make_user(a.harness, "carol")  # offline: not sent
    await alice.request("PUT", f"/presence/{alice.user_id}/status", {"presence": "online"})
    await bob.request("PUT", f"/presence/{bob.user_id}/status", {"presence": "unavailable"})
    await settle(a, b)
    [before] = await b.server.client.presence.states_of([alice.user_id])
    assert before.state == "offline"
    room_id = await alice.create_room(preset="public_chat")
    await carol.join(room_id)
    await bootstrap_room(a, b, room_id)
    await remote_join(b, bob.user_id, room_id)
    await settle(a, b)
    await settle(a, b)
    assert (await bob.request("GET", f"/presence/{alice.user_id}/status"))["presence"] == ("online")
    assert (await alice.request("GET", f"/presence/{bob.user_id}/status"))["presence"] == (
        "unavailable"
    )
    known_on_b = await b.server.client.presence.states_of([carol.user_id])
    assert [p.state for p in known_on_b] == ["offline"]
