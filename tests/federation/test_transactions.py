"""Inbound transactions and the PDU pipeline between real federating servers:
shared rooms, idempotency, limits, signature/hash/auth failures, gaps, EDUs, ACLs."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from federation.errors import FederationError
from tests.federation.rooms import (
    build_pdu,
    fed_events,
    send_txn,
    settle,
    share_room,
)
from tests.federation.servers import ServerFactory


async def test_events_flow_both_ways_in_a_shared_room(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b)
    hello = await alice.send(room_id, "hello from a")
    await settle(a, b)
    stored = await b.server.stores.events.get_event(hello)
    assert stored is not None and not stored.outlier and stored.rejected_reason is None
    reply = await bob.send(room_id, "hello from b")
    await settle(a, b)
    stored = await a.server.stores.events.get_event(reply)
    assert stored is not None and stored.event.content["body"] == "hello from b"
    # Both servers agree on the current state.
    assert await a.server.stores.state.get_current_state(
        room_id
    ) == await b.server.stores.state.get_current_state(room_id)
    # And bob's client sees alice's message.
    messages = await bob.request("GET", f"/rooms/{room_id}/messages?dir=b&limit=10")
    assert "hello from a" in [e["content"].get("body") for e in messages["chunk"]]


async def test_transactions_are_idempotent(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    room_id, alice, _bob = await share_room(a, b)
    event = await build_pdu(a.server, room_id, "m.room.message", alice.user_id, {"body": "x"})
    first = await send_txn(a, b, [event.pdu], txn_id="same")
    assert first == {"pdus": {event.event_id: {}}}
    other = await build_pdu(a.server, room_id, "m.room.message", alice.user_id, {"body": "y"})
    again = await send_txn(a, b, [other.pdu], txn_id="same")
    assert again == first  # the remembered answer; the new PDU is not processed
    assert await b.server.stores.events.get_event(other.event_id) is None
    # A replayed event in a new transaction is a no-op success.
    assert await send_txn(a, b, [event.pdu]) == {"pdus": {event.event_id: {}}}


async def test_too_many_pdus_or_edus_store_nothing(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    room_id, alice, _bob = await share_room(a, b)
    event = await build_pdu(a.server, room_id, "m.room.message", alice.user_id, {"body": "x"})
    typing = {"edu_type": "m.typing", "content": {"room_id": room_id, "user_id": alice.user_id}}
    for pdus, edus in (([event.pdu] * 51, []), ([event.pdu], [typing] * 101)):
        with pytest.raises(FederationError) as caught:
            await send_txn(a, b, pdus, edus)
        assert (caught.value.status, caught.value.errcode) == (400, "M_BAD_JSON")
    assert await b.server.stores.events.get_event(event.event_id) is None
    for body in ({"pdus": "nope"}, {"pdus": [], "edus": {}}):
        with pytest.raises(FederationError) as caught:
            await a.fed.client.put_json(b.server_name, "/_matrix/federation/v1/send/bad", body)
        assert (caught.value.status, caught.value.errcode) == (400, "M_BAD_JSON")


async def test_bad_signatures_and_forged_senders_are_dropped(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b)
    # A signature that does not verify.
    event = await build_pdu(a.server, room_id, "m.room.message", alice.user_id, {"body": "x"})
    pdu = copy.deepcopy(dict(event.pdu))
    key_id = next(iter(pdu["signatures"][a.server_name]))
    pdu["signatures"][a.server_name][key_id] = "A" * 86
    # a claims an event of bob (b's user) signed only by a: b's signature is missing.
    forged = await build_pdu(a.server, room_id, "m.room.message", bob.user_id, {"body": "forged"})
    answer = await send_txn(a, b, [pdu, forged.pdu])
    results = answer["pdus"]
    assert "Signature" in results[event.event_id]["error"]
    assert "Signature" in results[forged.event_id]["error"]
    for event_id in (event.event_id, forged.event_id):
        assert await b.server.stores.events.get_event(event_id) is None


async def test_hash_mismatch_stores_the_redacted_copy(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    room_id, alice, _bob = await share_room(a, b)
    event = await build_pdu(a.server, room_id, "m.room.message", alice.user_id, {"body": "real"})
    pdu = copy.deepcopy(dict(event.pdu))
    pdu["content"]["body"] = "tampered"  # outside the signed (redacted) form
    answer = await send_txn(a, b, [pdu])
    assert answer == {"pdus": {event.event_id: {}}}
    stored = await b.server.stores.events.get_event(event.event_id)
    assert stored is not None and stored.rejected_reason is None
    assert dict(stored.event.content) == {}


async def test_events_not_allowed_by_auth_are_rejected(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    room_id, _alice, _bob = await share_room(a, b)
    # eve (on a, correctly signed) was never in the room.
    eve = f"@eve:{a.server_name}"
    event = await build_pdu(a.server, room_id, "m.room.message", eve, {"body": "let me in"})
    answer = await send_txn(a, b, [event.pdu])
    # handled (stored as rejected): no error in the answer, as Synapse
    assert answer["pdus"][event.event_id] == {}
    stored = await b.server.stores.events.get_event(event.event_id)
    assert stored is not None and stored.rejected_reason is not None
    # Not shown to clients, not an extremity.
    assert event.event_id not in await b.server.stores.events.get_forward_extremities(room_id)
    # A state change by a user without power: rejected, state unchanged.
    before = dict(await b.server.stores.state.get_current_state(room_id))
    power = await build_pdu(
        a.server, room_id, "m.room.power_levels", eve, {"users": {eve: 100}}, state_key=""
    )
    answer = await send_txn(a, b, [power.pdu])
    assert answer["pdus"][power.event_id] == {}
    assert await b.server.stores.state.get_current_state(room_id) == before


async def test_unknown_room_and_garbage_pdus_do_not_fail_the_transaction(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    room_id, alice, _bob = await share_room(a, b)
    good = await build_pdu(a.server, room_id, "m.room.message", alice.user_id, {"body": "ok"})
    other_room = await alice.create_room()
    unknown = await build_pdu(a.server, other_room, "m.room.message", alice.user_id, {"body": "?"})
    garbage: list[Any] = [{"room_id": room_id, "type": 5}, "not an object", {"room_id": 7}]
    answer = await send_txn(a, b, [good.pdu, unknown.pdu, *garbage])
    assert answer["pdus"][good.event_id] == {}
    assert await b.server.stores.events.get_event(unknown.event_id) is None
    assert await b.server.stores.events.get_event(good.event_id) is not None


async def test_missing_prev_events_are_fetched(
    federation_servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await federation_servers(2)
    room_id, alice, _bob = await share_room(a, b)
    # b is unreachable for a's sender while alice sends three messages.
    real_put = a.fed.client.put_json

    async def down(*_args: Any, **_kwargs: Any) -> Any:
        raise FederationError(b.server_name, "connection refused")

    monkeypatch.setattr(a.fed.client, "put_json", down)
    ids = [await alice.send(room_id, f"m{i}") for i in range(3)]
    await settle(a)
    monkeypatch.setattr(a.fed.client, "put_json", real_put)
    last = await a.server.stores.events.get_event(ids[-1])
    assert last is not None
    answer = await send_txn(a, b, [last.event.pdu])
    assert answer == {"pdus": {ids[-1]: {}}}
    for event_id in ids:
        stored = await b.server.stores.events.get_event(event_id)
        assert stored is not None and not stored.outlier, event_id
    assert await b.server.stores.events.get_forward_extremities(room_id) == [ids[-1]]


async def test_gap_too_large_uses_remote_state(
    federation_servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await federation_servers(2)
    room_id, alice, _bob = await share_room(a, b)

    async def down(*_args: Any, **_kwargs: Any) -> Any:
        raise FederationError(b.server_name, "connection refused")

    real_put = a.fed.client.put_json
    monkeypatch.setattr(a.fed.client, "put_json", down)
    ids = [await alice.send(room_id, f"m{i}") for i in range(14)]
    await alice.request("PUT", f"/rooms/{room_id}/state/m.room.topic", {"topic": "new"})
    last_id = await alice.send(room_id, "after the topic")
    await settle(a)
    monkeypatch.setattr(a.fed.client, "put_json", real_put)
    last = await a.server.stores.events.get_event(last_id)
    assert last is not None
    answer = await send_txn(a, b, [last.event.pdu])
    assert answer == {"pdus": {last_id: {}}}
    stored = await b.server.stores.events.get_event(last_id)
    assert stored is not None and not stored.outlier
    # The state came from a: b knows the new topic at the event. (The current state
    # is resolved across b's extremities, the old one being behind the gap.)
    assert stored.state_group is not None
    state = await b.server.stores.state.get_state(stored.state_group)
    topic = await b.server.stores.events.get_event(state[("m.room.topic", "")])
    assert topic is not None and topic.event.content["topic"] == "new"
    assert ids  # the older messages are behind the gap (backfill fills it later)


async def test_edus_are_dispatched_only_for_the_origins_users(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b)
    seen: list[tuple[str, str, dict[str, Any]]] = []

    def recorder(edu_type: str) -> Any:
        async def handler(origin: str, content: dict[str, Any]) -> None:
            seen.append((edu_type, origin, content))

        return handler

    transactions = fed_events(b).transactions
    for edu_type in ("m.typing", "m.presence", "m.receipt", "x.custom"):
        transactions.edu_handlers[edu_type] = recorder(edu_type)
    edus = [
        {"edu_type": "m.typing", "content": {"room_id": room_id, "user_id": alice.user_id}},
        {"edu_type": "m.typing", "content": {"room_id": room_id, "user_id": bob.user_id}},
        {
            "edu_type": "m.presence",
            "content": {
                "push": [
                    {"user_id": alice.user_id, "presence": "online"},
                    {"user_id": bob.user_id, "presence": "online"},
                ]
            },
        },
        {
            "edu_type": "m.receipt",
            "content": {room_id: {"m.read": {bob.user_id: {"event_ids": ["$x"], "data": {}}}}},
        },
        {"edu_type": "x.custom", "content": {"a": 1}},
        {"edu_type": "x.unhandled", "content": {}},
        "garbage",
    ]
    assert await send_txn(a, b, [], edus) == {"pdus": {}}
    assert [(t, o) for t, o, _ in seen] == [
        ("m.typing", a.server_name),
        ("m.presence", a.server_name),
        ("x.custom", a.server_name),
    ]
    assert seen[0][2]["user_id"] == alice.user_id
    assert [p["user_id"] for p in seen[1][2]["push"]] == [alice.user_id]


async def test_persist_with_state_as_after_send_join(federation_servers: ServerFactory) -> None:
    """The API the join handshake uses: the resident's state and auth chain are
    checked and stored as outliers, the join goes into the timeline with that state."""
    from homeserver.events import KNOWN_ROOM_VERSIONS
    from tests.rooms.helpers import make_user

    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await alice.send(room_id, "history")
    stores = a.server.stores
    state = await stores.state.get_current_state(room_id)
    state_events = await stores.events.get_events(list(state.values()))
    state_pdus = [dict(s.event.pdu) for s in state_events.values()]
    reads = fed_events(a).reads
    chain = await reads.auth_chain(list(state.values()), room_id)
    join = await build_pdu(
        a.server,
        room_id,
        "m.room.member",
        bob.user_id,
        {"membership": "join"},
        state_key=bob.user_id,
        sign_as=(b.server_name, b.server.signing_key),
    )
    version = await stores.events.room_version_id(room_id)
    assert version is not None
    pipeline = fed_events(b).pipeline
    await pipeline.ensure_room(room_id, KNOWN_ROOM_VERSIONS[version], alice.user_id)
    stored, error = await pipeline.persist_with_state(
        a.server_name, room_id, join.pdu, state_pdus, [dict(s.event.pdu) for s in chain]
    )
    assert error is None and stored is not None and not stored.outlier
    members = await b.server.stores.state.current_members(room_id)
    assert members == {alice.user_id: "join", bob.user_id: "join"}
    assert await b.server.stores.events.get_forward_extremities(room_id) == [join.event_id]
    # A forged state (an event not signed by its sender's server) is left out.
    assert (await pipeline.persist_outliers(a.server_name, room_id, [{"type": 1}])) == {}
