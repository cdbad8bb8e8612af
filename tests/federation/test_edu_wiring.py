"""EDUs reaching the ephemeral services over federation (typing, to-device)."""

from __future__ import annotations

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
