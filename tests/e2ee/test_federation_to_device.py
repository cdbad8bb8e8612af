"""To-device messages across servers: m.direct_to_device EDUs out per destination,
delivered once per (origin, message_id), only from the sender's own server (s2s
"Send-to-device messaging")."""

from __future__ import annotations

from typing import Any

from tests.federation.rooms import send_txn, settle
from tests.federation.servers import ServerFactory
from tests.rooms.helpers import User, make_user


def to_device_events(synced: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    events = synced.get("to_device", {}).get("events", [])
    return [(e["sender"], e["type"], e["content"]) for e in events]


async def test_to_device_messages_cross_servers_once(federation_servers: ServerFactory) -> None:
    a, b, c = await federation_servers(3)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    carol = await make_user(c.harness, "carol")
    bob_since = (await bob.sync(timeout=0))["next_batch"]
    carol_since = (await carol.sync(timeout=0))["next_batch"]

    # one request for users of two servers: one EDU per destination
    queued: list[tuple[str, str, dict[str, Any]]] = []
    sender = a.server.federation_events
    assert sender is not None
    real_send_edu = sender.sender.send_edu

    async def spy(
        destination: str, edu_type: str, content: dict[str, Any], key: Any = None
    ) -> None:
        queued.append((destination, edu_type, content))
        await real_send_edu(destination, edu_type, content, key)

    sender.sender.send_edu = spy  # type: ignore[method-assign]
    messages = {
        bob.user_id: {bob.device_id: {"n": 1}},
        carol.user_id: {"*": {"n": 2}},
    }
    await alice.request("PUT", "/sendToDevice/m.test/txn1", {"messages": messages})
    await settle(a, b, c)
    edus = [(d, content) for d, t, content in queued if t == "m.direct_to_device"]
    assert sorted(d for d, _ in edus) == sorted([b.server_name, c.server_name])
    for destination, content in edus:
        assert content["sender"] == alice.user_id
        assert content["type"] == "m.test"
        assert isinstance(content["message_id"], str)
        (user,) = content["messages"]
        assert user.endswith(":" + destination)

    bob_sync = await bob.sync(since=bob_since, timeout=0)
    assert to_device_events(bob_sync) == [(alice.user_id, "m.test", {"n": 1})]
    carol_sync = await carol.sync(since=carol_since, timeout=0)
    assert to_device_events(carol_sync) == [(alice.user_id, "m.test", {"n": 2})]

    # the same EDU again in another transaction (a retry after a lost answer): not
    # delivered twice
    (bob_edu,) = [content for d, content in edus if d == b.server_name]
    again = {"edu_type": "m.direct_to_device", "content": bob_edu}
    assert await send_txn(a, b, [], [again]) == {"pdus": {}}
    later = await bob.sync(since=bob_sync["next_batch"], timeout=0)
    assert to_device_events(later) == []

    # the same message ID from another origin is another message
    other = {**bob_edu, "sender": f"@mallory:{c.server_name}"}
    assert await send_txn(c, b, [], [{"edu_type": "m.direct_to_device", "content": other}]) == {
        "pdus": {}
    }
    latest = await bob.sync(since=later["next_batch"], timeout=0)
    assert to_device_events(latest) == [(f"@mallory:{c.server_name}", "m.test", {"n": 1})]


async def test_to_device_edus_only_from_the_senders_server(
    federation_servers: ServerFactory,
) -> None:
    a, b, c = await federation_servers(3)
    bob = await make_user(b.harness, "bob")
    since = (await bob.sync(timeout=0))["next_batch"]
    forged = {
        "sender": f"@alice:{a.server_name}",  # not of c
        "type": "m.test",
        "message_id": "m1",
        "messages": {bob.user_id: {bob.device_id: {"forged": True}}},
    }
    malformed: list[dict[str, Any]] = [
        {"sender": f"@c:{c.server_name}", "type": 5, "message_id": "m2", "messages": {}},
        {"sender": f"@c:{c.server_name}", "type": "m.test", "message_id": "m3", "messages": []},
    ]
    edus = [{"edu_type": "m.direct_to_device", "content": e} for e in [forged, *malformed]]
    assert await send_txn(c, b, [], edus) == {"pdus": {}}
    assert to_device_events(await bob.sync(since=since, timeout=0)) == []
    assert isinstance(bob, User)
