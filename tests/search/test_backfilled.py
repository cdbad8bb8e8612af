"""Backfilled history is indexed too: a server that joined late finds, once a client
has paged back, the messages sent before its join, in recent order across the
backfilled (negative) stream positions."""

from __future__ import annotations

from tests.federation.membership_helpers import join_via, settled
from tests.federation.servers import ServerFactory
from tests.federation.test_backfill import page_back
from tests.rooms.helpers import make_user


async def test_backfilled_messages_are_found(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room_id = await alice.create_room(preset="public_chat")
    sent = [f"walrus number {i}" for i in range(12)]
    for text in sent:
        a.clock.advance(1)  # (one clock for both servers)
        await alice.send(room_id, text)
    await join_via(bob, room_id, a)
    await settled(a, b)
    a.clock.advance(1)
    await alice.send(room_id, "walrus after the join")
    await page_back(bob, room_id)
    body = {
        "search_categories": {
            "room_events": {
                "search_term": "walrus",
                "order_by": "recent",
                "filter": {"limit": 5},
            }
        }
    }
    found: list[str] = []
    page = (await bob.request("POST", "/search", body))["search_categories"]["room_events"]
    found += [r["result"]["content"]["body"] for r in page["results"]]
    while "next_batch" in page:
        data = await bob.request("POST", f"/search?next_batch={page['next_batch']}", body)
        page = data["search_categories"]["room_events"]
        found += [r["result"]["content"]["body"] for r in page["results"]]
    assert found == ["walrus after the join", *reversed(sent)]
