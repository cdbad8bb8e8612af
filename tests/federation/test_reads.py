"""Room reads over federation (event, state, state_ids, event_auth, backfill,
get_missing_events) with server-side history visibility and server ACLs, and the
queries (profile, directory, publicRooms) served and asked."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from federation.errors import FederationError
from tests.federation.rooms import build_pdu, fed_events, send_txn, settle, share_room
from tests.federation.servers import FederatingServer, ServerFactory
from tests.rooms.helpers import make_user

V1 = "/_matrix/federation/v1"


def q(value: str) -> str:
    return quote(value, safe="")


async def get(origin: FederatingServer, target: FederatingServer, path: str, **query: Any) -> Any:
    return await origin.fed.client.get_json(target.server_name, path, query or None)


async def status_of(coro: Any) -> tuple[int | None, str | None]:
    with pytest.raises(FederationError) as caught:
        await coro
    return caught.value.status, caught.value.errcode


async def test_event_state_and_auth_reads(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    room_id, alice, _bob = await share_room(a, b)
    hello = await alice.send(room_id, "hello")
    answer = await get(b, a, f"{V1}/event/{q(hello)}")
    assert answer["origin"] == a.server_name
    [pdu] = answer["pdus"]
    assert pdu["content"]["body"] == "hello"

    state_now = await a.server.stores.state.get_current_state(room_id)
    ids = await get(b, a, f"{V1}/state_ids/{q(room_id)}", event_id=hello)
    assert sorted(ids["pdu_ids"]) == sorted(state_now.values())
    assert set(ids["auth_chain_ids"]) <= set(state_now.values())
    full = await get(b, a, f"{V1}/state/{q(room_id)}", event_id=hello)
    assert len(full["pdus"]) == len(state_now) and full["auth_chain"]

    # The state *before* a state event does not contain it.
    topic_id = (await alice.request("PUT", f"/rooms/{room_id}/state/m.room.topic", {"topic": "t"}))[
        "event_id"
    ]
    before = await get(b, a, f"{V1}/state_ids/{q(room_id)}", event_id=topic_id)
    assert topic_id not in before["pdu_ids"]

    auth = await get(b, a, f"{V1}/event_auth/{q(room_id)}/{q(hello)}")
    types = {p["type"] for p in auth["auth_chain"]}
    assert {"m.room.create", "m.room.member", "m.room.power_levels"} <= types

    # Bad input and unknown things.
    path = f"{V1}/state_ids/{q(room_id)}"
    assert await status_of(get(b, a, path)) == (400, "M_MISSING_PARAM")
    assert await status_of(get(b, a, path, event_id="$nope")) == (404, "M_NOT_FOUND")
    assert await status_of(get(b, a, f"{V1}/event/{q('$nope')}")) == (404, "M_NOT_FOUND")
    unknown_room = f"{V1}/state_ids/{q('!nope:' + a.server_name)}"
    assert await status_of(get(b, a, unknown_room, event_id=hello)) == (404, "M_NOT_FOUND")


async def test_backfill_and_missing_events(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    room_id, alice, _bob = await share_room(a, b)
    ids = [await alice.send(room_id, f"m{i}") for i in range(6)]
    answer = await get(b, a, f"{V1}/backfill/{q(room_id)}", v=ids[-1], limit="3")
    got = [p for p in answer["pdus"]]
    # newest first (the v event leads), as Synapse answers
    assert [p["content"].get("body") for p in got] == ["m5", "m4", "m3"]

    body = {"earliest_events": [ids[1]], "latest_events": [ids[-1]], "limit": 10}
    missing = await b.fed.client.post_json(
        a.server_name, f"{V1}/get_missing_events/{q(room_id)}", body
    )
    assert [p["content"]["body"] for p in missing["events"]] == ["m2", "m3", "m4"]
    body = {"earliest_events": [], "latest_events": [ids[-1]], "limit": 2}
    missing = await b.fed.client.post_json(
        a.server_name, f"{V1}/get_missing_events/{q(room_id)}", body
    )
    assert [p["content"]["body"] for p in missing["events"]] == ["m3", "m4"]
    # no events named: nothing missing (the lists default to empty, as Synapse)
    missing = await b.fed.client.post_json(
        a.server_name, f"{V1}/get_missing_events/{q(room_id)}", {}
    )
    assert missing == {"events": []}

    path = f"{V1}/backfill/{q(room_id)}"
    assert await status_of(get(b, a, path, limit="3")) == (400, "M_MISSING_PARAM")
    assert await status_of(get(b, a, path, v=ids[0], limit="x")) == (400, "M_INVALID_PARAM")
    post = b.fed.client.post_json(
        a.server_name, f"{V1}/get_missing_events/{q(room_id)}", {"latest_events": "x"}
    )
    assert (await status_of(post))[0] == 400


async def test_reads_respect_history_visibility(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room_id = await alice.create_room(
        preset="public_chat",
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "state_key": "",
                "content": {"history_visibility": "joined"},
            }
        ],
    )
    secret = await alice.send(room_id, "before b joined")
    from tests.federation.rooms import bootstrap_room, remote_join

    await bootstrap_room(a, b, room_id)
    await remote_join(b, bob.user_id, room_id)
    await settle(a, b)
    after = await alice.send(room_id, "after b joined")
    await settle(a, b)
    assert (await get(b, a, f"{V1}/event/{q(after)}"))["pdus"][0]["content"]["body"]
    assert await status_of(get(b, a, f"{V1}/event/{q(secret)}")) == (403, "M_FORBIDDEN")
    # Backfill serves what b may not see redacted (the DAG stays walkable).
    answer = await get(b, a, f"{V1}/backfill/{q(room_id)}", v=after, limit="20")
    by_id = {p.get("event_id") or p["hashes"]["sha256"]: p for p in answer["pdus"]}
    bodies = [p["content"].get("body") for p in answer["pdus"] if p["type"] == "m.room.message"]
    assert "after b joined" in bodies and "before b joined" not in bodies
    assert by_id


async def test_servers_outside_the_room_and_acl_denied_servers_are_refused(
    federation_servers: ServerFactory,
) -> None:
    a, b, c = await federation_servers(3)
    room_id, alice, bob = await share_room(a, b)
    hello = await alice.send(room_id, "hello")
    await settle(a, b)
    # c was never in the room.
    for path, query in (
        (f"{V1}/state_ids/{q(room_id)}", {"event_id": hello}),
        (f"{V1}/backfill/{q(room_id)}", {"v": hello, "limit": "5"}),
        (f"{V1}/event_auth/{q(room_id)}/{q(hello)}", {}),
    ):
        assert await status_of(get(c, a, path, **query)) == (403, "M_FORBIDDEN"), path

    # alice denies b by a server ACL.
    acl = {"allow": ["*"], "deny": [b.server_name.split(":")[0]], "allow_ip_literals": True}
    await alice.request("PUT", f"/rooms/{room_id}/state/m.room.server_acl", acl)
    await settle(a, b)
    path = f"{V1}/state_ids/{q(room_id)}"
    assert await status_of(get(b, a, path, event_id=hello)) == (403, "M_FORBIDDEN")
    assert await status_of(get(b, a, f"{V1}/event/{q(hello)}")) == (403, "M_FORBIDDEN")
    # PDUs from b for that room are refused per PDU; typing EDUs ignored.
    event = await build_pdu(b.server, room_id, "m.room.message", bob.user_id, {"body": "hi"})
    seen: list[Any] = []

    async def on_typing(origin: str, content: dict[str, Any]) -> None:
        seen.append(content)

    transactions = fed_events(a).transactions
    transactions.edu_handlers["m.typing"] = on_typing
    typing = {"edu_type": "m.typing", "content": {"room_id": room_id, "user_id": bob.user_id}}
    answer = await send_txn(b, a, [event.pdu], [typing])
    assert "ACL" in answer["pdus"][event.event_id]["error"]
    assert await a.server.stores.events.get_event(event.event_id) is None
    assert seen == []


async def test_profile_and_directory_queries(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    await alice.request("PUT", f"/profile/{alice.user_id}/displayname", {"displayname": "Alice"})
    profile = await get(b, a, f"{V1}/query/profile", user_id=alice.user_id)
    assert profile["displayname"] == "Alice"
    only = await get(b, a, f"{V1}/query/profile", user_id=alice.user_id, field="displayname")
    assert only == {"displayname": "Alice"}
    path = f"{V1}/query/profile"
    assert await status_of(get(b, a, path)) == (400, "M_MISSING_PARAM")
    assert await status_of(get(b, a, path, user_id="@nobody:" + a.server_name)) == (
        404,
        "M_NOT_FOUND",
    )
    assert (await status_of(get(b, a, path, user_id=bob.user_id)))[0] == 400
    assert await status_of(get(b, a, path, user_id=alice.user_id, field="avatar_url")) == (
        404,
        "M_NOT_FOUND",
    )
    # bob's client reads alice's profile through b.
    seen = await bob.request("GET", f"/profile/{quote(alice.user_id)}")
    assert seen["displayname"] == "Alice"
    await bob.request("GET", f"/profile/{quote('@nobody:' + a.server_name)}", expect=404)

    room_id = await alice.create_room(preset="public_chat")
    alias = f"#room:{a.server_name}"
    await alice.request("PUT", f"/directory/room/{quote(alias)}", {"room_id": room_id})
    answer = await get(b, a, f"{V1}/query/directory", room_alias=alias)
    assert answer["room_id"] == room_id and a.server_name in answer["servers"]
    resolved = await bob.request("GET", f"/directory/room/{quote(alias)}")
    assert resolved["room_id"] == room_id
    path = f"{V1}/query/directory"
    assert await status_of(get(b, a, path, room_alias=f"#no:{a.server_name}")) == (
        404,
        "M_NOT_FOUND",
    )
    assert await status_of(get(b, a, path)) == (400, "M_MISSING_PARAM")
    assert await status_of(get(b, a, path, room_alias="nonsense")) == (400, "M_INVALID_PARAM")


async def test_public_rooms_over_federation(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(
        2, per_server=[{"allow_public_rooms_over_federation": True}, {}]
    )
    alice = await make_user(a.harness, "alice")
    room_id = await alice.create_room(preset="public_chat", visibility="public", name="Lobby")
    listed = await get(b, a, f"{V1}/publicRooms")
    assert [r["room_id"] for r in listed["chunk"]] == [room_id]
    found = await b.fed.client.post_json(
        a.server_name, f"{V1}/publicRooms", {"filter": {"generic_search_term": "lob"}}
    )
    assert [r["name"] for r in found["chunk"]] == ["Lobby"]
    none = await b.fed.client.post_json(
        a.server_name, f"{V1}/publicRooms", {"filter": {"generic_search_term": "zzz"}}
    )
    assert none["chunk"] == []
    bad = b.fed.client.post_json(a.server_name, f"{V1}/publicRooms", {"limit": -1})
    assert await status_of(bad) == (400, "M_INVALID_PARAM")
    # b does not publish its directory over federation.
    assert await status_of(get(a, b, f"{V1}/publicRooms")) == (403, "M_FORBIDDEN")


async def test_events_of_erased_senders_are_served_redacted(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    room_id, alice, _bob = await share_room(a, b)
    carol = await make_user(a.harness, "carol")
    await carol.join(room_id)
    said = await carol.send(room_id, "body1")
    await settle(a, b)
    [pdu] = (await get(b, a, f"{V1}/event/{q(said)}"))["pdus"]
    assert pdu["content"]["body"] == "body1"

    first = await carol.request("POST", "/account/deactivate", {"erase": True}, expect=401)
    auth = {
        "type": "m.login.password",
        "session": first["session"],
        "identifier": {"type": "m.id.user", "user": carol.user_id},
        "password": "correct horse",
    }
    await carol.request("POST", "/account/deactivate", {"erase": True, "auth": auth})
    await settle(a, b)

    # /event, /backfill and /get_missing_events serve it redacted (as Synapse)
    [pdu] = (await get(b, a, f"{V1}/event/{q(said)}"))["pdus"]
    assert pdu["content"] == {} and pdu["sender"] == carol.user_id
    later = await alice.send(room_id, "still here")
    answer = await get(b, a, f"{V1}/backfill/{q(room_id)}", v=later, limit="10")
    by_sender = {p["sender"]: p for p in answer["pdus"] if p["type"] == "m.room.message"}
    assert by_sender[carol.user_id]["content"] == {}
    assert by_sender[alice.user_id]["content"]["body"] == "still here"
    body = {"earliest_events": [], "latest_events": [later], "limit": 10}
    missing = await b.fed.client.post_json(
        a.server_name, f"{V1}/get_missing_events/{q(room_id)}", body
    )
    [again] = [p for p in missing["events"] if p["type"] == "m.room.message"]
    assert again["sender"] == carol.user_id and again["content"] == {}
    # the stored event is intact: carol's own server still holds the words
    held = await a.server.stores.events.get_event(said)
    assert held is not None and held.event.content["body"] == "body1"
