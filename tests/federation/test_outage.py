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


async def test_any_request_of_a_server_that_is_back_starts_its_backlog(
    federation_servers: ServerFactory,
) -> None:
    """The first sign of life of a destination in backoff — any request of it that
    authenticates here, not only a transaction — ends the backoff and starts its
    backlog at once: the clock does not move, no retry tick runs."""
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b)
    await stop_listening(b)
    sent = [await alice.send(room_id, f"missed {i}") for i in range(3)]
    await settle(a)
    sender = fed_events(a).sender
    assert sender.in_backoff(b.server_name)
    await b.server.start_listeners()
    # b asks a for alice's profile: an authenticated GET, no transaction
    profile = await bob.request("GET", f"/profile/{alice.user_id}")
    assert "displayname" in profile or profile == {}
    assert not sender.in_backoff(b.server_name)
    await settle(a, b)
    for event_id in sent:
        stored = await b.server.stores.events.get_event(event_id)
        assert stored is not None and not stored.outlier
    health = await a.server.stores.federation_queue.get_health(b.server_name)
    assert health is not None and health.retry_interval == 0


async def test_an_unauthenticated_request_is_no_sign_of_life(
    federation_servers: ServerFactory,
) -> None:
    """A request whose signature does not verify (anyone can claim to be b) leaves
    b's backoff alone."""
    a, b = await federation_servers(2)
    room_id, alice, _bob = await share_room(a, b)
    await stop_listening(b)
    await alice.send(room_id, "missed")
    await settle(a)
    sender = fed_events(a).sender
    assert sender.in_backoff(b.server_name)
    header = (
        f'X-Matrix origin="{b.server_name}",destination="{a.server_name}",'
        'key="ed25519:nope",sig="AAAA"'
    )
    async with a.fed.client.session().get(
        f"{a.base_url}/_matrix/federation/v1/query/profile?user_id={alice.user_id}",
        headers={"Authorization": header},
        ssl=False,
    ) as response:
        assert response.status == 401
    assert sender.in_backoff(b.server_name)
