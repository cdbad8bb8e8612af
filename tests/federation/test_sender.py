"""The outbound sender: batching, order, backoff while a destination is down, a
restart keeping the queue, EDU coalescing, and the admin view of destinations."""

from __future__ import annotations

from typing import Any

import pytest

from federation.errors import FederationError
from federation.sender import INITIAL_BACKOFF_MS, MAX_PDUS_PER_TXN, FederationSender
from tests.federation.rooms import fed_events, settle, share_room
from tests.federation.servers import FederatingServer, ServerFactory
from tests.rooms.helpers import make_user


class Recorder:
    """Wraps a server's put_json: counts transactions, can pretend the peer is down."""

    def __init__(self, server: FederatingServer) -> None:
        self.real = server.fed.client.put_json
        self.down = False
        self.bodies: list[dict[str, Any]] = []

    async def put_json(self, destination: str, path: str, body: Any, *a: Any, **kw: Any) -> Any:
        if self.down:
            raise FederationError(destination, "connection refused")
        self.bodies.append(body)
        return await self.real(destination, path, body, *a, **kw)


async def timeline_on(server: FederatingServer, room_id: str) -> list[str]:
    stores = server.server.stores
    upto = await stores.events.max_stream_ordering()
    events = await stores.events.room_events_between([room_id], 0, upto, 1000)
    return [e.event_id for e in events]


async def test_destination_down_then_up_gets_everything_in_order(
    federation_servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await federation_servers(2)
    room_id, alice, _bob = await share_room(a, b)
    recorder = Recorder(a)
    monkeypatch.setattr(a.fed.client, "put_json", recorder.put_json)
    sender = fed_events(a).sender
    recorder.down = True
    ids = [await alice.send(room_id, f"m{i}") for i in range(60)]
    await settle(a)
    assert sender.in_backoff(b.server_name)
    health = await a.server.stores.federation_queue.get_health(b.server_name)
    assert health is not None and health.retry_interval == INITIAL_BACKOFF_MS
    assert health.failure_ts == a.clock.time_ms()
    # Still down at the next retry: the interval doubles.
    a.clock.advance(INITIAL_BACKOFF_MS * 1.3 / 1000)
    await sender.retry_due()
    await settle(a)
    health = await a.server.stores.federation_queue.get_health(b.server_name)
    assert health is not None and health.retry_interval == 2 * INITIAL_BACKOFF_MS
    # Back up: everything arrives, in order, in transactions of at most 50 PDUs.
    recorder.down = False
    a.clock.advance(2 * INITIAL_BACKOFF_MS * 1.3 / 1000)
    await sender.retry_due()
    await settle(a, b)
    # (presence EDUs of alice may travel in transactions of their own)
    pdu_batches = [len(body["pdus"]) for body in recorder.bodies if body["pdus"]]
    assert pdu_batches == [MAX_PDUS_PER_TXN, 10]
    on_b = await timeline_on(b, room_id)
    assert [e for e in on_b if e in ids] == ids
    health = await a.server.stores.federation_queue.get_health(b.server_name)
    assert health is not None and (health.retry_interval, health.failure_ts) == (0, None)
    last = await a.server.stores.events.get_event(ids[-1])
    assert last is not None and health.last_successful_stream_ordering == last.stream_ordering
    assert await a.server.stores.federation_queue.destinations_with_queue() == []


async def test_a_restarted_sender_keeps_the_queue(
    federation_servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await federation_servers(2)
    room_id, alice, _bob = await share_room(a, b)
    recorder = Recorder(a)
    monkeypatch.setattr(a.fed.client, "put_json", recorder.put_json)
    recorder.down = True
    ids = [await alice.send(room_id, f"m{i}") for i in range(3)]
    await settle(a)
    old = fed_events(a).sender
    await old.stop()
    assert await a.server.stores.federation_queue.destinations_with_queue() == [b.server_name]
    # A new sender over the same database, as after a restart; the peer is back.
    recorder.down = False
    a.clock.advance(INITIAL_BACKOFF_MS * 1.3 / 1000)
    fresh = FederationSender(a.server_name, a.server.stores, recorder, a.clock)
    await fresh.start(ticker=False)
    await fresh.wait_idle()
    assert [e for e in await timeline_on(b, room_id) if e in ids] == ids
    assert await a.server.stores.federation_queue.destinations_with_queue() == []


async def test_a_restarted_sender_waits_for_the_stored_backoff(
    federation_servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await federation_servers(2)
    room_id, alice, _bob = await share_room(a, b)
    recorder = Recorder(a)
    monkeypatch.setattr(a.fed.client, "put_json", recorder.put_json)
    recorder.down = True
    event_id = await alice.send(room_id, "queued")
    await settle(a)
    await fed_events(a).sender.stop()
    recorder.down = False
    fresh = FederationSender(a.server_name, a.server.stores, recorder, a.clock)
    await fresh.start(ticker=False)
    await fresh.wait_idle()
    assert recorder.bodies == []  # still in backoff
    a.clock.advance(INITIAL_BACKOFF_MS / 1000)
    await fresh.retry_due()
    await fresh.wait_idle()
    assert len([body for body in recorder.bodies if body["pdus"]]) == 1
    assert await b.server.stores.events.get_event(event_id) is not None


async def test_remote_activity_ends_backoff(
    federation_servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b)
    recorder = Recorder(a)
    monkeypatch.setattr(a.fed.client, "put_json", recorder.put_json)
    recorder.down = True
    event_id = await alice.send(room_id, "waiting")
    await settle(a)
    recorder.down = False
    # b sends a transaction to a: a retries b at once.
    await bob.send(room_id, "b is back")
    await settle(b)
    await settle(a)
    assert await b.server.stores.events.get_event(event_id) is not None


async def test_edus_are_queued_coalesced_and_batched(
    federation_servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await federation_servers(2)
    recorder = Recorder(a)
    monkeypatch.setattr(a.fed.client, "put_json", recorder.put_json)
    received: list[dict[str, Any]] = []

    async def on_custom(origin: str, content: dict[str, Any]) -> None:
        received.append(content)

    fed_events(b).transactions.edu_handlers["x.test"] = on_custom
    sender = fed_events(a).sender
    recorder.down = True
    for i in range(3):
        await sender.send_edu(b.server_name, "x.test", {"n": i}, key="room1")
    for i in range(120):
        await sender.send_edu(b.server_name, "x.test", {"i": i})
    await sender.send_edu(a.server_name, "x.test", {"to": "myself"})  # ignored
    await settle(a)
    recorder.down = False
    a.clock.advance(INITIAL_BACKOFF_MS * 1.3 / 1000)
    await sender.retry_due()
    await settle(a)
    assert [len(body.get("edus", [])) for body in recorder.bodies] == [100, 21]
    assert received[0] == {"n": 2}  # only the last of the coalesced ones
    assert [c["i"] for c in received[1:]] == list(range(120))


async def test_admin_lists_destinations(
    federation_servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await federation_servers(2)
    room_id, alice, _bob = await share_room(a, b)
    recorder = Recorder(a)
    monkeypatch.setattr(a.fed.client, "put_json", recorder.put_json)
    delivered = await alice.send(room_id, "delivered")
    await settle(a)
    recorder.down = True
    await alice.send(room_id, "x")
    await settle(a)
    path = "/_synapse/admin/v1/federation/destinations"
    resp = await a.harness.client.get(path, headers=alice.auth)
    assert resp.status == 403 and (await resp.json())["errcode"] == "M_FORBIDDEN"
    resp = await a.harness.client.get(path)
    assert resp.status == 401
    admin = await make_user(a.harness, "admin")
    await a.server.stores.accounts.set_admin(admin.user_id, True)
    resp = await a.harness.client.get(path, headers=admin.auth)
    assert resp.status == 200
    body = await resp.json()
    assert body["total"] == 1
    [row] = body["destinations"]
    assert row["destination"] == b.server_name
    assert row["retry_interval"] == INITIAL_BACKOFF_MS
    assert row["retry_last_ts"] == row["failure_ts"] == a.clock.time_ms()
    stored = await a.server.stores.events.get_event(delivered)
    assert stored is not None
    assert row["last_successful_stream_ordering"] == stored.stream_ordering
    one = await a.harness.client.get(f"{path}/{b.server_name}", headers=admin.auth)
    assert (await one.json()) == row
    missing = await a.harness.client.get(f"{path}/nowhere.test", headers=admin.auth)
    assert missing.status == 404
    bad = await a.harness.client.get(f"{path}?limit=abc", headers=admin.auth)
    assert bad.status == 400 and (await bad.json())["errcode"] == "M_INVALID_PARAM"


async def test_room_edus_go_to_the_joined_servers(federation_servers: ServerFactory) -> None:
    a, b, c = await federation_servers(3)
    room_id, _alice, _bob = await share_room(a, b)
    got: dict[str, list[dict[str, Any]]] = {b.server_name: [], c.server_name: []}
    for server in (b, c):

        async def handler(
            origin: str, content: dict[str, Any], name: str = server.server_name
        ) -> None:
            got[name].append(content)

        fed_events(server).transactions.edu_handlers["x.room"] = handler
    sender = fed_events(a).sender
    assert await sender.joined_servers(room_id) == {b.server_name}
    await sender.send_edu_to_room(room_id, "x.room", {"room_id": room_id}, key=room_id)
    await settle(a)
    assert got == {b.server_name: [{"room_id": room_id}], c.server_name: []}


async def test_an_invite_goes_by_invite_not_send_and_a_rescinded_one_is_sent(
    federation_servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server not in the room gets the invite of its user by /invite only (not the
    room's events by /send); when the invite is withdrawn, the leave is sent to it."""
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room_id = await alice.create_room()
    recorder = Recorder(a)
    monkeypatch.setattr(a.fed.client, "put_json", recorder.put_json)
    await alice.request("POST", f"/rooms/{room_id}/invite", {"user_id": bob.user_id})
    await settle(a, b)
    sent = [p for body in recorder.bodies if "pdus" in body for p in body["pdus"]]
    assert sent == []  # the /invite request carried it
    await alice.request("POST", f"/rooms/{room_id}/kick", {"user_id": bob.user_id})
    await settle(a, b)
    sent = [p for body in recorder.bodies if "pdus" in body for p in body["pdus"]]
    assert [(p["type"], p["content"]["membership"]) for p in sent] == [("m.room.member", "leave")]
    invites = (await bob.sync())["rooms"].get("invite", {})
    assert room_id not in invites


class MembershipRecorder:
    """Wraps a server's put_json: the membership PDUs each transaction carried."""

    def __init__(self, server: FederatingServer) -> None:
        self.real = server.fed.client.put_json
        self.sent: list[tuple[str, str, str]] = []  # (destination, state_key, membership)

    async def put_json(self, destination: str, path: str, body: Any, *a: Any, **kw: Any) -> Any:
        if path.startswith("/_matrix/federation/v1/send/"):
            self.sent.extend(
                (destination, pdu["state_key"], pdu["content"]["membership"])
                for pdu in body["pdus"]
                if pdu["type"] == "m.room.member"
            )
        return await self.real(destination, path, body, *a, **kw)


async def test_membership_events_go_to_the_servers_in_the_room_before_them(
    federation_servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As Synapse: an invite is not sent by /send to the invitee's server (it went
    by /invite, and that server is not in the room); a kick reaches the server of
    the member it removes, and a withdrawn invite the invitee's server."""
    a, b, c = await federation_servers(3)
    room_id, alice, bob = await share_room(a, b)
    carol = await make_user(c.harness, "carol")
    recorder = MembershipRecorder(a)
    monkeypatch.setattr(a.fed.client, "put_json", recorder.put_json)
    await alice.invite(room_id, carol.user_id)
    await settle(a)
    assert recorder.sent == [(b.server_name, carol.user_id, "invite")]
    recorder.sent.clear()
    await alice.request("POST", f"/rooms/{room_id}/kick", {"user_id": carol.user_id})
    await settle(a)
    assert sorted(recorder.sent) == sorted(
        [(b.server_name, carol.user_id, "leave"), (c.server_name, carol.user_id, "leave")]
    )
    recorder.sent.clear()
    await alice.request("POST", f"/rooms/{room_id}/kick", {"user_id": bob.user_id})
    await settle(a)
    assert recorder.sent == [(b.server_name, bob.user_id, "leave")]
