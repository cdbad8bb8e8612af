"""What this server answers a joining server that asks for a partial state
(``send_join`` with ``omit_members``, as Synapse always asks), and the reads that
server's resync makes afterwards (s2s "Joining Rooms", ``/state_ids``, ``/event``).

While its join is partial, Synapse sends its events only to ``servers_in_room``, so
the answer names every server with joined members now, also one that joined after the
template the joiner built on.
"""

from __future__ import annotations

from urllib.parse import quote

from tests.federation.membership_helpers import join_via
from tests.federation.rooms import build_pdu, settle
from tests.federation.servers import ServerFactory
from tests.rooms.helpers import make_user

V1 = "/_matrix/federation/v1"
V2 = "/_matrix/federation/v2"


async def test_partial_join_answer_names_every_server_and_resync_reads_the_rest(
    federation_servers: ServerFactory,
) -> None:
    a, b, c = await federation_servers(3)
    alice = await make_user(a.harness, "alice")
    carol = await make_user(c.harness, "carol")
    room_id = await alice.create_room(preset="public_chat")
    bob_id = f"@bob:{b.server_name}"
    # b's join, built on a's room before carol joins
    join = await build_pdu(
        a.server, room_id, "m.room.member", bob_id, {"membership": "join"}, state_key=bob_id,
        sign_as=(b.server_name, b.server.signing_key),
    )  # fmt: skip
    before = dict(await a.server.stores.state.get_current_state(room_id))
    await join_via(carol, room_id, a)
    await settle(a, c)
    path = f"{V2}/send_join/{quote(room_id, safe='')}/{quote(join.event_id, safe='')}"
    answer = await b.fed.client.put_json(
        a.server_name, path, dict(join.pdu), {"omit_members": "true"}
    )
    assert answer["members_omitted"] is True
    assert set(answer["servers_in_room"]) == {a.server_name, c.server_name}
    assert all(e["type"] != "m.room.member" for e in answer["state"])
    # the resync: the full state before the join (built before carol joined), every
    # event of it readable
    ids = await b.fed.client.get_json(
        a.server_name, f"{V1}/state_ids/{quote(room_id, safe='')}", {"event_id": join.event_id}
    )
    assert set(ids["pdu_ids"]) == set(before.values())
    for event_id in ids["pdu_ids"] + ids["auth_chain_ids"]:
        got = await b.fed.client.get_json(a.server_name, f"{V1}/event/{quote(event_id)}")
        assert len(got["pdus"]) == 1  # (a v12 create event has no room_id)
    full = await b.fed.client.get_json(
        a.server_name, f"{V1}/state/{quote(room_id, safe='')}", {"event_id": join.event_id}
    )
    members = {e["state_key"] for e in full["pdus"] if e["type"] == "m.room.member"}
    assert members == {alice.user_id}
    chain = await b.fed.client.get_json(
        a.server_name, f"{V1}/event_auth/{quote(room_id, safe='')}/{quote(join.event_id)}"
    )
    assert {e["type"] for e in chain["auth_chain"]} >= {"m.room.create", "m.room.power_levels"}


async def test_full_join_answer_does_not_repeat_the_state_in_the_auth_chain(
    federation_servers: ServerFactory,
) -> None:
    """Without ``omit_members``: the whole state, and the auth chains of the join and
    of the state, i.e. their auth events recursively, not the state events themselves
    (as Synapse answers). What is cited is in one or the other; b joins with it."""
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    room_id = await alice.create_room(preset="public_chat")
    for n in range(3):
        await alice.request("PUT", f"/rooms/{room_id}/state/m.bench/key{n}", {"n": n})
    bob_id = f"@bob:{b.server_name}"
    join = await build_pdu(
        a.server, room_id, "m.room.member", bob_id, {"membership": "join"}, state_key=bob_id,
        sign_as=(b.server_name, b.server.signing_key),
    )  # fmt: skip
    before = dict(await a.server.stores.state.get_current_state(room_id))
    path = f"{V2}/send_join/{quote(room_id, safe='')}/{quote(join.event_id, safe='')}"
    answer = await b.fed.client.put_json(a.server_name, path, dict(join.pdu))
    assert answer["members_omitted"] is False
    assert sorted((e["type"], e["state_key"]) for e in answer["state"]) == sorted(before)
    chain_types = [e["type"] for e in answer["auth_chain"]]
    assert {"m.room.create", "m.room.power_levels", "m.room.join_rules"} <= set(chain_types)
    # the m.bench events are no one's auth events: in the state only
    assert "m.bench" not in chain_types
    # the chain is what the state and the join cite, recursively (and the create
    # event, which v12 events no longer cite)
    held = await a.server.stores.events.get_events(list(before.values()))
    cited = {i for s in held.values() for i in s.event.auth_event_ids}
    cited |= set(join.auth_event_ids)
    assert cited <= set(before.values())  # (this room has no auth event outside its state)
    keys = {k for k, e in before.items() if e in cited} | {("m.room.create", "")}
    assert sorted((e["type"], e["state_key"]) for e in answer["auth_chain"]) == sorted(keys)
    # b, taking such an answer, joins
    await join_via(await make_user(b.harness, "bob"), room_id, a)
