"""Outliers becoming timeline events: an event first fetched as an auth or state
event (stored as an outlier) and later received through ``/send`` joins the
timeline and the state (s2s "Checks performed on receipt of a PDU")."""

from __future__ import annotations

from typing import Any

import pytest

from federation.errors import FederationError
from tests.federation.rooms import build_pdu, fed_events, send_txn, settle, share_room
from tests.federation.servers import ServerFactory


async def test_an_outlier_received_as_a_new_event_joins_the_timeline(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b)
    rename = await build_pdu(
        a.server,
        room_id,
        "m.room.member",
        alice.user_id,
        {"membership": "join", "displayname": "Alice A."},
        state_key=alice.user_id,
    )
    # b first learns of it as part of an auth chain or a state: an outlier.
    held = await fed_events(b).pipeline.persist_outliers(a.server_name, room_id, [rename.pdu])
    assert held[rename.event_id].outlier
    top = await b.server.stores.events.max_stream_ordering()
    # Then a sends it as a new event.
    assert await send_txn(a, b, [rename.pdu]) == {"pdus": {rename.event_id: {}}}
    stored = await b.server.stores.events.get_event(rename.event_id)
    assert stored is not None and not stored.outlier and stored.rejected_reason is None
    assert stored.stream_ordering is not None and stored.stream_ordering > top
    assert stored.state_group is not None
    state = await b.server.stores.state.get_current_state(room_id)
    assert state[("m.room.member", alice.user_id)] == rename.event_id
    assert await b.server.stores.events.get_forward_extremities(room_id) == [rename.event_id]
    member = await bob.state(room_id, "m.room.member", alice.user_id)
    assert member["displayname"] == "Alice A."
    messages = await bob.request("GET", f"/rooms/{room_id}/messages?dir=b&limit=5")
    assert rename.event_id in [e["event_id"] for e in messages["chunk"]]
    # The next event of b builds on it; a replay now is a no-op.
    reply = await bob.send(room_id, "hi Alice A.")
    stored_reply = await b.server.stores.events.get_event(reply)
    assert stored_reply is not None and list(stored_reply.event.prev_event_ids) == [rename.event_id]
    assert await send_txn(a, b, [rename.pdu]) == {"pdus": {rename.event_id: {}}}
    again = await b.server.stores.events.get_event(rename.event_id)
    assert again is not None and again.stream_ordering == stored.stream_ordering


async def test_state_fetched_for_a_gap_joins_the_timeline_when_it_arrives(
    federation_servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b)
    # b is unreachable for a's sender while alice renames herself and speaks.
    real_put = a.fed.client.put_json

    async def down(*_args: Any, **_kwargs: Any) -> Any:
        raise FederationError(b.server_name, "connection refused")

    monkeypatch.setattr(a.fed.client, "put_json", down)
    await alice.request(
        "PUT",
        f"/rooms/{room_id}/state/m.room.member/{alice.user_id}",
        {"membership": "join", "displayname": "Renamed"},
    )
    between_id = await alice.send(room_id, "between")
    after_id = await alice.send(room_id, "after")
    await settle(a)
    monkeypatch.setattr(a.fed.client, "put_json", real_put)
    state = await a.server.stores.state.get_current_state(room_id)
    rename_id = state[("m.room.member", alice.user_id)]
    after = await a.server.stores.events.get_event(after_id)
    between = await a.server.stores.events.get_event(between_id)
    rename = await a.server.stores.events.get_event(rename_id)
    assert after is not None and between is not None and rename is not None
    # b walks the gap back to "between" only (a pulled event whose prev, the rename,
    # stays unknown): it takes the state after the rename from /state_ids at it,
    # fetching the rename as an outlier.
    pipeline: Any = fed_events(b).pipeline

    async def only_between(*_args: Any, **_kwargs: Any) -> list[Any]:
        return [dict(between.event.pdu)]

    monkeypatch.setattr(pipeline._fetcher, "missing_events", only_between)
    assert await send_txn(a, b, [after.event.pdu]) == {"pdus": {after_id: {}}}
    outlier = await b.server.stores.events.get_event(rename_id)
    assert outlier is not None and outlier.outlier
    member = await bob.state(room_id, "m.room.member", alice.user_id)
    assert member["displayname"] == "Renamed"  # the state after the rename
    # Now the rename itself arrives as a new event: it joins the timeline.
    assert await send_txn(a, b, [rename.event.pdu]) == {"pdus": {rename_id: {}}}
    stored = await b.server.stores.events.get_event(rename_id)
    assert stored is not None and not stored.outlier and stored.stream_ordering is not None
    messages = await bob.request("GET", f"/rooms/{room_id}/messages?dir=b&limit=10")
    ids = [e["event_id"] for e in messages["chunk"]]
    assert rename_id in ids and after_id in ids
    member = await bob.state(room_id, "m.room.member", alice.user_id)
    assert member["displayname"] == "Renamed"


async def test_a_rejected_outlier_stays_out_of_the_timeline(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    room_id, _alice, bob = await share_room(a, b)
    eve = f"@eve:{a.server_name}"  # never joined
    topic = await build_pdu(a.server, room_id, "m.room.topic", eve, {"topic": "t"}, state_key="")
    held = await fed_events(b).pipeline.persist_outliers(a.server_name, room_id, [topic.pdu])
    assert held[topic.event_id].rejected_reason is not None
    assert await send_txn(a, b, [topic.pdu]) == {"pdus": {topic.event_id: {}}}
    stored = await b.server.stores.events.get_event(topic.event_id)
    assert stored is not None and stored.outlier and stored.stream_ordering is None
    assert ("m.room.topic", "") not in await b.server.stores.state.get_current_state(room_id)
    await bob.request("GET", f"/rooms/{room_id}/state/m.room.topic", expect=404)


async def test_a_pushed_event_whose_gap_stays_open_is_dropped(
    federation_servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that sends an event but gives none of the events it builds on gets an
    error for it, and the event is not stored (as Synapse: its claimed state is not
    trusted, and /state_ids is not asked)."""
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b)
    real_put = a.fed.client.put_json

    async def down(*_args: Any, **_kwargs: Any) -> Any:
        raise FederationError(b.server_name, "connection refused")

    monkeypatch.setattr(a.fed.client, "put_json", down)
    await alice.send(room_id, "hidden")
    after_id = await alice.send(room_id, "after")
    await settle(a)
    monkeypatch.setattr(a.fed.client, "put_json", real_put)
    after = await a.server.stores.events.get_event(after_id)
    assert after is not None
    pipeline: Any = fed_events(b).pipeline
    asked: list[str] = []

    async def no_missing(*_args: Any, **_kwargs: Any) -> list[Any]:
        return []

    async def state_ids(*args: Any, **_kwargs: Any) -> Any:
        asked.append(args[2])
        return None

    monkeypatch.setattr(pipeline._fetcher, "missing_events", no_missing)
    monkeypatch.setattr(pipeline._fetcher, "state_ids", state_ids)
    answer = await send_txn(a, b, [after.event.pdu])
    assert "error" in answer["pdus"][after_id]
    assert asked == []
    assert await b.server.stores.events.get_event(after_id) is None
    assert "after" not in [
        e["content"].get("body")
        for e in (await bob.request("GET", f"/rooms/{room_id}/messages?dir=b&limit=10"))["chunk"]
    ]
