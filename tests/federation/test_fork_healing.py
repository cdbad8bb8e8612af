"""Healing a room's DAG (homeserver/rooms/healing.py): an event sent by a server that
had not yet seen a join reaches every server within moments.

Three of our servers: a hosts the room, b and c join it. b sends an event built on
its view before c's join (as Synapse does while c's join is on its way to it, or
while its partial-state join still lists only the servers of its send_join answer),
to a only. Nothing cites it, so c would never see it: a notices that a server joined
now had no member in the state the event was sent in, and, once the healing delay has
passed without a later event citing it, a local member sends a dummy event citing
every forward extremity; c fetches what it lacks with /get_missing_events. The
shared FakeClock drives the delay (each server's timer is stopped).
"""

from __future__ import annotations

from typing import Any

from homeserver.rooms.healing import DUMMY_EVENT, HEAL_DELAY_MS, MAX_EXTREMITIES, ForkHealer
from tests.federation.membership_helpers import join_via
from tests.federation.rooms import build_pdu, send_txn, settle
from tests.federation.servers import FederatingServer, ServerFactory
from tests.rooms.helpers import User, make_user


def healer(server: FederatingServer) -> ForkHealer:
    found = server.server.fork_healer
    assert found is not None
    return found


async def three_servers(
    federation_servers: ServerFactory,
) -> tuple[list[FederatingServer], str, list[User], list[str]]:
    """a's room, joined by bob (b) then carol (c); b's extremities before c's join."""
    a, b, c = await federation_servers(3)
    for server in (a, b, c):
        await healer(server).stop()  # the tests drive the delay
    alice, bob, carol = [
        await make_user(s.harness, n) for s, n in ((a, "alice"), (b, "bob"), (c, "carol"))
    ]
    room_id = await alice.create_room(preset="public_chat")
    await join_via(bob, room_id, a)
    await settle(a, b)
    before_c = await b.server.stores.events.get_forward_extremities(room_id)
    await join_via(carol, room_id, a)
    await settle(a, b, c)
    return [a, b, c], room_id, [alice, bob, carol], before_c


async def unread(user: User, room_id: str) -> int:
    sync = await user.sync(timeout=0)
    room = sync["rooms"]["join"][room_id]
    return int(room.get("unread_notifications", {}).get("notification_count", 0))


async def typing(user: User, room_id: str) -> list[str]:
    sync = await user.sync(timeout=0)
    room = sync["rooms"]["join"][room_id]
    for edu in room.get("ephemeral", {}).get("events", []):
        if edu["type"] == "m.typing":
            return list(edu["content"]["user_ids"])
    return []


async def room_events(server: FederatingServer, room_id: str) -> list[dict[str, Any]]:
    upto = await server.server.stores.events.max_stream_ordering()
    events = await server.server.stores.events.room_events_between([room_id], 0, upto, 1000)
    return [dict(e.event.pdu) for e in events]


async def test_an_event_a_server_missed_reaches_it(federation_servers: ServerFactory) -> None:
    (a, b, c), room_id, (alice, bob, carol), before_c = await three_servers(federation_servers)
    missed = await build_pdu(
        b.server,
        room_id,
        "m.room.message",
        bob.user_id,
        {"msgtype": "m.text", "body": "sent before b saw carol"},
        prev_event_ids=before_c,
    )
    answer = await send_txn(b, a, [missed.pdu])
    assert answer["pdus"] == {missed.event_id: {}}
    assert await c.server.stores.events.get_event(missed.event_id) is None
    alice_unread = await unread(alice, room_id)
    assert alice_unread >= 1  # bob's message notifies alice
    await alice.request(
        "PUT", f"/rooms/{room_id}/typing/{alice.user_id}", {"typing": True, "timeout": 30000}
    )
    # not before the delay (a later event could still cite it)
    assert await healer(a).heal_due() == []
    a.clock.advance(HEAL_DELAY_MS / 1000)
    assert await healer(a).heal_due() == [room_id]
    await settle(a, b, c)
    got = await c.server.stores.events.get_event(missed.event_id)
    assert got is not None and not got.outlier and got.rejected_reason is None
    page = await carol.request(
        "GET", f"/rooms/{room_id}/messages", params={"dir": "b", "limit": "20"}
    )
    assert "sent before b saw carol" in [e["content"].get("body") for e in page["chunk"]]
    # shared history: a member now sees it, though it arrived after carol's join
    event = await carol.request("GET", f"/rooms/{room_id}/event/{missed.event_id}")
    assert event["content"]["body"] == "sent before b saw carol"
    # the dummy merged the fork everywhere: one forward extremity, the dummy itself
    for server in (a, b, c):
        extremities = await server.server.stores.events.get_forward_extremities(room_id)
        assert len(extremities) == 1
        top = await server.server.stores.events.get_event(extremities[0])
        assert top is not None and top.event.type == DUMMY_EVENT
    assert healer(a).dummies_sent == 1
    # sent in alice's name by the server: it reads none of her notifications, and she
    # is still typing
    assert await unread(alice, room_id) == alice_unread
    assert alice.user_id in await typing(alice, room_id)
    # c had nothing to heal: what it fetched is cited already
    c.clock.advance(HEAL_DELAY_MS / 1000)
    assert await healer(c).heal_due() == []


async def test_a_missed_event_cited_meanwhile_needs_no_dummy(
    federation_servers: ServerFactory,
) -> None:
    (a, b, c), room_id, (alice, bob, _carol), before_c = await three_servers(federation_servers)
    missed = await build_pdu(
        b.server,
        room_id,
        "m.room.message",
        bob.user_id,
        {"msgtype": "m.text", "body": "early"},
        prev_event_ids=before_c,
    )
    await send_txn(b, a, [missed.pdu])
    await alice.send(room_id, "cites it")  # a's next event cites every extremity
    await settle(a, b, c)
    a.clock.advance(HEAL_DELAY_MS / 1000)
    assert await healer(a).heal_due() == []
    assert healer(a).dummies_sent == 0
    got = await c.server.stores.events.get_event(missed.event_id)
    assert got is not None and not got.outlier


async def test_ordinary_concurrent_events_send_no_dummy(
    federation_servers: ServerFactory,
) -> None:
    """Two servers sending at once fork the DAG, but each sent to every server: the
    fork merges with the next event, no dummy is needed."""
    (a, b, c), room_id, (alice, bob, carol), _before_c = await three_servers(federation_servers)
    top = await a.server.stores.events.get_forward_extremities(room_id)
    concurrent = await build_pdu(
        b.server,
        room_id,
        "m.room.message",
        bob.user_id,
        {"msgtype": "m.text", "body": "from b"},
        prev_event_ids=top,
    )
    await alice.send(room_id, "from a")
    await carol.send(room_id, "from c")
    await send_txn(b, a, [concurrent.pdu])
    await send_txn(b, c, [concurrent.pdu])
    await settle(a, b, c)
    assert len(await a.server.stores.events.get_forward_extremities(room_id)) > 1
    a.clock.advance(HEAL_DELAY_MS / 1000)
    for server in (a, b, c):
        assert await healer(server).heal_due() == []
        assert healer(server).dummies_sent == 0
    events = await room_events(a, room_id)
    assert DUMMY_EVENT not in {e["type"] for e in events}


async def test_too_many_extremities_are_merged(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    for server in (a, b):
        await healer(server).stop()
    alice, bob = await make_user(a.harness, "alice"), await make_user(b.harness, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await join_via(bob, room_id, a)
    await settle(a, b)
    top = await b.server.stores.events.get_forward_extremities(room_id)
    forks = [
        await build_pdu(
            b.server,
            room_id,
            "m.room.message",
            bob.user_id,
            {"msgtype": "m.text", "body": f"fork {i}"},
            prev_event_ids=top,
        )
        for i in range(2 * MAX_EXTREMITIES + 1)
    ]
    await send_txn(b, a, [f.pdu for f in forks])
    assert len(await a.server.stores.events.get_forward_extremities(room_id)) > MAX_EXTREMITIES
    a.clock.advance(HEAL_DELAY_MS / 1000)
    assert await healer(a).heal_due() == [room_id]
    await settle(a, b)
    # a dummy cites ten (the deepest): 21 forks leave the dummy and eleven, still too
    # many, merged by another after the delay
    assert len(await a.server.stores.events.get_forward_extremities(room_id)) == 12
    assert await healer(a).heal_due() == []
    a.clock.advance(HEAL_DELAY_MS / 1000)
    assert await healer(a).heal_due() == [room_id]
    await settle(a, b)
    assert len(await a.server.stores.events.get_forward_extremities(room_id)) == 3
    a.clock.advance(HEAL_DELAY_MS / 1000)
    assert await healer(a).heal_due() == []  # few enough, nothing missed: left alone
