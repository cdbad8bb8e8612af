"""A joined room's state and auth chain stored as outliers in batches (the
pipeline's outlier path, ``EventPersister.persist_outliers``): every event is still
checked (signatures, hashes, its auth events), rejected ones are stored rejected,
ones citing unknown auth events are left out (and so are the events citing them),
and redactions between the batch's events take effect, across several batches."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

import federation.event_pipeline
from homeserver.events import KNOWN_ROOM_VERSIONS, Event, EventBuilder
from homeserver.server import Homeserver
from tests.federation.membership_helpers import join_via
from tests.federation.rooms import build_pdu, fed_events
from tests.federation.servers import ServerFactory
from tests.rooms.helpers import make_user


async def _built_with_auth(
    server: Homeserver,
    room_id: str,
    event_type: str,
    sender: str,
    content: Mapping[str, Any],
    auth_event_ids: list[str],
    state_key: str | None = None,
) -> Event:
    """A signed event citing exactly ``auth_event_ids`` (not stored)."""
    stores = server.stores
    version = await stores.events.room_version_id(room_id)
    assert version is not None
    builder = EventBuilder(
        KNOWN_ROOM_VERSIONS[version], event_type, sender, content, room_id=room_id,
        state_key=state_key,
    )  # fmt: skip
    prevs = await stores.events.get_forward_extremities(room_id)
    depth = max(s.depth for s in (await stores.events.get_events(prevs)).values()) + 1
    return builder.build(
        prev_event_ids=prevs,
        auth_event_ids=auth_event_ids,
        depth=depth,
        server_name=server.config.server_name,
        signing_key=server.signing_key,
        origin_server_ts=server.clock.time_ms(),
    )


async def test_a_state_with_rejected_and_unknown_auth_events_in_small_batches(
    federation_servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(federation.event_pipeline, "OUTLIER_BATCH", 2)
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room_id = await alice.create_room(preset="public_chat", name="Batches")
    await alice.send(room_id, "history")
    stores = a.server.stores
    state = await stores.state.get_current_state(room_id)
    held_on_a = await stores.events.get_events(list(state.values()))
    state_pdus = [dict(s.event.pdu) for s in held_on_a.values()]
    chain = await fed_events(a).reads.auth_chain(list(state.values()), room_id)
    mallory = f"@mallory:{a.server_name}"
    # Not a member: rejected against its auth events.
    rejected = await build_pdu(
        a.server, room_id, "m.room.topic", mallory, {"topic": "mine"}, state_key=""
    )
    create_id = state[("m.room.create", "")]
    pl_id = state[("m.room.power_levels", "")]
    alice_member = state[("m.room.member", alice.user_id)]
    auth = [pl_id, alice_member] + ([] if create_id == "$" + room_id[1:] else [create_id])
    unknown = await _built_with_auth(
        a.server, room_id, "m.room.topic", alice.user_id, {"topic": "?"},
        [*auth, "$unknownauthevent"], state_key="",
    )  # fmt: skip
    citing_unknown = await _built_with_auth(
        a.server, room_id, "bench.state", alice.user_id, {}, [*auth, unknown.event_id],
        state_key="x",
    )  # fmt: skip
    # A redaction and its target, both outliers of the same batch.
    message = await build_pdu(a.server, room_id, "m.room.message", alice.user_id, {"body": "x"})
    redaction = await build_pdu(
        a.server, room_id, "m.room.redaction", alice.user_id, {"redacts": message.event_id}
    )
    version = await stores.events.room_version_id(room_id)
    assert version is not None
    rv = KNOWN_ROOM_VERSIONS[version]
    if not rv.redacts_in_content:
        pytest.skip("the default room version has redacts in content")
    join = await build_pdu(
        a.server, room_id, "m.room.member", bob.user_id, {"membership": "join"},
        state_key=bob.user_id, sign_as=(b.server_name, b.server.signing_key),
    )  # fmt: skip
    pipeline = fed_events(b).pipeline
    await pipeline.ensure_room(room_id, rv, alice.user_id)
    extra_state = [dict(e.pdu) for e in (rejected, unknown, citing_unknown)]
    chain_pdus = [dict(s.event.pdu) for s in chain] + [dict(redaction.pdu), dict(message.pdu)]
    stored, error = await pipeline.persist_with_state(
        a.server_name, room_id, join.pdu, state_pdus + extra_state, chain_pdus
    )
    assert error is None and stored is not None and not stored.outlier

    events = b.server.stores.events
    held = await events.get_events(
        [rejected.event_id, unknown.event_id, citing_unknown.event_id, *state.values()]
    )
    assert held[rejected.event_id].outlier and held[rejected.event_id].rejected_reason
    assert unknown.event_id not in held and citing_unknown.event_id not in held
    assert all(held[e].outlier and held[e].rejected_reason is None for e in state.values())
    # The state is the resident's, without the rejected event.
    current = await b.server.stores.state.get_current_state(room_id)
    assert current == {**state, ("m.room.member", bob.user_id): join.event_id}
    members = await b.server.stores.state.current_members(room_id)
    assert members == {alice.user_id: "join", bob.user_id: "join"}
    target = await events.get_event(message.event_id)
    assert target is not None and target.outlier
    assert target.redacted_by == redaction.event_id
    # A second delivery of the same batch stores nothing new and answers the same.
    again = await pipeline.persist_outliers(a.server_name, room_id, extra_state + chain_pdus)
    assert set(again) == {rejected.event_id, redaction.event_id, message.event_id} | {
        s.event_id for s in chain
    }


async def test_a_join_over_the_wire_stores_the_state_in_batches(
    federation_servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(federation.event_pipeline, "OUTLIER_BATCH", 7)
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room_id = await alice.create_room(preset="public_chat")
    creator = a.server.client.creator
    for i in range(15):
        user = f"@member{i}:{a.server_name}"
        await creator.send(room_id, "m.room.member", user, {"membership": "join"}, state_key=user)
        await creator.send(room_id, "bench.state", alice.user_id, {"n": i}, state_key=f"k{i}")
    await join_via(bob, room_id, a)
    state_a = await a.server.stores.state.get_current_state(room_id)
    state_b = await b.server.stores.state.get_current_state(room_id)
    assert state_b == state_a
    assert await b.server.stores.state.current_members(room_id) == (
        await a.server.stores.state.current_members(room_id)
    )
    assert len(await bob.request("GET", f"/rooms/{room_id}/state")) == len(state_a)


async def test_joining_a_room_with_hundreds_of_state_events_checks_them_off_the_loop(
    federation_servers: ServerFactory,
) -> None:
    """Past a few hundred events the send_join answer is parsed and checked in a
    worker thread: the result is the same room, every state event held and accepted."""
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room_id = await alice.create_room(preset="public_chat")
    creator = a.server.client.creator
    for i in range(300):
        await creator.send(room_id, "org.example.big", alice.user_id, {"n": i}, state_key=str(i))
    await join_via(bob, room_id, a)
    state = await b.server.stores.state.get_current_state(room_id)
    assert state == await a.server.stores.state.get_current_state(room_id) | {
        ("m.room.member", bob.user_id): state[("m.room.member", bob.user_id)]
    }
    held = await b.server.stores.events.get_events(list(state.values()))
    assert len(held) == len(state) and all(s.rejected_reason is None for s in held.values())
    assert (await bob.state(room_id, "org.example.big", "299"))["n"] == 299
