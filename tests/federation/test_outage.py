"""A federating server that goes down during traffic and comes back receives every
event it missed (s2s "Transactions": the sender's persisted queue and its backoff)."""

from __future__ import annotations

from tests.federation.rooms import fed_events, settle, share_room
from tests.federation.servers import ServerFactory, stop_listening


async def test_a_restarted_server_receives_every_missed_event(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b)
    await alice.send(room_id, "before")
    await settle(a, b)
    await stop_listening(b)
    sent = [await alice.send(room_id, f"missed {i}") for i in range(5)]
    await settle(a)
    sender = fed_events(a).sender
    assert sender.in_backoff(b.server_name)
    for event_id in sent:
        assert await b.server.stores.events.get_event(event_id) is None
    # More traffic while b is down and a backs off: queued, not lost.
    sent.append(await alice.send(room_id, "missed 5"))
    await b.server.start_listeners()
    # Still in backoff: nothing yet; after it passes, the retry delivers everything.
    await sender.retry_due()
    await settle(a)
    assert await b.server.stores.events.get_event(sent[0]) is None
    a.clock.advance(24 * 3600)
    await sender.retry_due()
    await settle(a, b)
    for event_id in sent:
        stored = await b.server.stores.events.get_event(event_id)
        assert stored is not None and not stored.outlier and stored.rejected_reason is None
    messages = await bob.request("GET", f"/rooms/{room_id}/messages?dir=b&limit=20")
    bodies = [e["content"].get("body") for e in messages["chunk"]]
    assert [f"missed {i}" for i in range(6)] == [b for b in reversed(bodies) if b and "missed" in b]
    assert not sender.in_backoff(b.server_name)
    # And traffic flows normally afterwards.
    last = await alice.send(room_id, "back to normal")
    await settle(a, b)
    assert await b.server.stores.events.get_event(last) is not None
