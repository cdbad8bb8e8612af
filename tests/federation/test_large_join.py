"""Joining a room with hundreds of state events through the bulk paths (issue 20): the
resident answers ``send_join`` with its stored JSON spliced in, the joining server
verifies the answer's signatures in parallel threads, orders and checks the events
in bulk and stores them in a few big transactions. Each check still holds: an event
whose signature fails is left out, one whose content hash fails is kept redacted,
and a join whose auth events cannot be verified fails."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

import federation.event_pipeline
import federation.keyring
from homeserver.events import KNOWN_ROOM_VERSIONS, Event, RoomVersion
from tests.federation.servers import FederatingServer, ServerFactory
from tests.rooms.helpers import User, make_user

V2_SEND_JOIN = "/_matrix/federation/v2/send_join/"
MEMBERS = 120
STATES = 200


def bulk_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bulk paths for batches of this test's size: parallel verification and
    several outlier transactions."""
    monkeypatch.setattr(federation.keyring, "PARALLEL_VERIFY_ABOVE", 50)
    monkeypatch.setattr(federation.keyring, "VERIFY_THREADS", 3)
    monkeypatch.setattr(federation.event_pipeline, "OUTLIER_BATCH", 100)


def tamper_send_join(
    server: FederatingServer, monkeypatch: pytest.MonkeyPatch, change: Any
) -> list[dict[str, Any]]:
    """Let ``change(answer)`` rewrite the send_join answers ``server`` receives;
    returns the list the answers are recorded in."""
    real = server.fed.client.put_json
    answers: list[dict[str, Any]] = []

    async def put_json(destination: str, path: str, body: Any, *a: Any, **kw: Any) -> Any:
        answer = await real(destination, path, body, *a, **kw)
        if path.startswith(V2_SEND_JOIN):
            change(answer)
            answers.append(answer)
        return answer

    monkeypatch.setattr(server.fed.client, "put_json", put_json)
    return answers


async def big_room(resident: FederatingServer, alice: User) -> str:
    """A public room of ``alice`` with ``MEMBERS`` joined members and ``STATES`` other
    state events."""
    room_id = await alice.create_room(preset="public_chat", name="Big")
    creator = resident.server.client.creator
    for i in range(MEMBERS):
        user = f"@member{i}:{resident.server_name}"
        await creator.send(room_id, "m.room.member", user, {"membership": "join"}, state_key=user)
    for i in range(STATES):
        await creator.send(room_id, "org.example.big", alice.user_id, {"n": i}, state_key=str(i))
    return room_id


def state_pdu(answer: dict[str, Any], event_type: str, state_key: str) -> dict[str, Any]:
    found = [
        p for p in answer["state"] if (p["type"], p.get("state_key")) == (event_type, state_key)
    ]
    assert len(found) == 1
    return dict(found[0])


async def test_a_big_room_is_joined_whole_and_every_check_still_holds(
    federation_servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk_everywhere(monkeypatch)
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room_id = await big_room(a, alice)

    def change(answer: dict[str, Any]) -> None:
        for pdu in answer["state"]:
            if pdu["type"] != "org.example.big":
                continue
            if pdu["state_key"] == "7":
                pdu["origin_server_ts"] += 1  # signed otherwise: the signature fails
            elif pdu["state_key"] == "8":
                pdu["content"] = {"n": "changed"}  # the content hash fails

    answers = tamper_send_join(b, monkeypatch, change)
    path = f"/join/{quote(room_id)}?server_name={quote(a.server_name)}"
    assert (await bob.request("POST", path, {}))["room_id"] == room_id
    [answer] = answers
    state_a = await a.server.stores.state.get_current_state(room_id)
    assert len(answer["state"]) == len(state_a) - 1  # not bob's join
    assert len(state_a) > MEMBERS + STATES

    state_b = await b.server.stores.state.get_current_state(room_id)
    # every state event but the one whose signature failed, and bob's join
    assert set(state_b) == set(state_a) - {("org.example.big", "7")}
    assert all(state_b[k] == state_a[k] for k in state_b)
    held = await bob.request("GET", f"/rooms/{quote(room_id)}/state")
    assert len(held) == len(state_a) - 1
    assert (await bob.state(room_id, "org.example.big", "6"))["n"] == 6
    await bob.request("GET", f"/rooms/{quote(room_id)}/state/org.example.big/7", expect=404)
    # the copy whose content hash failed is kept, redacted
    assert await bob.state(room_id, "org.example.big", "8") == {}
    members = await b.server.stores.state.current_members(room_id)
    assert members == await a.server.stores.state.current_members(room_id)
    assert sum(1 for m in members.values() if m == "join") == MEMBERS + 2
    # the events are stored as they were signed: a signature and hash check passes
    stored = await b.server.stores.events.get_events(list(state_b.values()))
    pl = stored[state_b[("m.room.power_levels", "")]].event
    assert pl.pdu == state_pdu(answer, "m.room.power_levels", "")


async def test_a_join_whose_auth_events_fail_their_signatures_is_refused(
    federation_servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk_everywhere(monkeypatch)
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room_id = await big_room(a, alice)

    def change(answer: dict[str, Any]) -> None:
        for pdu in answer["state"]:
            if pdu["type"] == "m.room.join_rules":
                pdu["origin_server_ts"] += 1  # without join rules the room is invite-only

    tamper_send_join(b, monkeypatch, change)
    path = f"/join/{quote(room_id)}?server_name={quote(a.server_name)}"
    answer = await bob.request("POST", path, {}, expect=None)
    assert "room_id" not in answer and answer["errcode"]
    rooms = await bob.request("GET", "/joined_rooms")
    assert rooms["joined_rooms"] == []
    assert await b.server.stores.state.get_current_state(room_id) == {}


async def test_the_send_join_answer_is_the_stored_json(
    federation_servers: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The resident splices its stored events into the answer: each is the event as
    held, the state the one before the join, the auth chain sorted by depth and
    holding every auth event the state cites."""
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room_id = await big_room(a, alice)
    answers = tamper_send_join(b, monkeypatch, lambda answer: None)
    path = f"/join/{quote(room_id)}?server_name={quote(a.server_name)}"
    await bob.request("POST", path, {})
    [answer] = answers
    rv = room_version_of(answer)
    state_ids = [Event.from_pdu(p, rv).event_id for p in answer["state"]]
    held = await a.server.stores.events.get_events(state_ids)
    assert len(held) == len(state_ids) == len(set(state_ids))
    assert all(
        dict(held[i].event.pdu) == p for i, p in zip(state_ids, answer["state"], strict=True)
    )
    before_join = await a.server.stores.state.get_current_state(room_id)
    del before_join[("m.room.member", bob.user_id)]
    assert set(state_ids) == set(before_join.values())
    chain = answer["auth_chain"]
    assert chain and [p["depth"] for p in chain] == sorted(p["depth"] for p in chain)
    chain_ids = {Event.from_pdu(p, rv).event_id for p in chain}
    assert {i for s in held.values() for i in s.event.auth_event_ids} <= chain_ids


def room_version_of(answer: dict[str, Any]) -> RoomVersion:
    create = state_pdu(answer, "m.room.create", "")
    return KNOWN_ROOM_VERSIONS[create["content"].get("room_version", "1")]
