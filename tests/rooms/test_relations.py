"""Relations: /relations, /threads, and bundled aggregations (m.replace, m.thread, m.reference)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user

V1 = "/_matrix/client/v1"


async def v1(user: User, path: str, expect: int = 200, **params: str) -> Any:
    resp = await user.hs.client.get(V1 + path, params=params, headers=user.auth)
    body = await resp.json()
    assert resp.status == expect, body
    return body


async def relate(
    user: User, room_id: str, parent: str, rel_type: str, body: str = "child", **content: Any
) -> str:
    return await user.send(
        room_id, body, **{"m.relates_to": {"rel_type": rel_type, "event_id": parent}}, **content
    )


async def edit(user: User, room_id: str, parent: str, text: str) -> str:
    return await relate(
        user,
        room_id,
        parent,
        "m.replace",
        f"* {text}",
        **{"m.new_content": {"msgtype": "m.text", "body": text}},
    )


async def served(user: User, room_id: str, event_id: str) -> Any:
    """The event as /context serves it (with bundled aggregations)."""
    ctx = await user.request("GET", f"/rooms/{room_id}/context/{event_id}", params={"limit": "0"})
    return ctx["event"]


async def two_users(hs: HomeserverHarness) -> tuple[User, User, str]:
    alice, bob = await make_user(hs, "alice"), await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await bob.join(room_id)
    return alice, bob, room_id


# -- m.replace -----------------------------------------------------------------------------


async def test_latest_valid_edit_is_bundled(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await two_users(hs)
    original = await alice.send(room_id, "first")
    hs.clock.advance(1)
    await edit(alice, room_id, original, "second")
    hs.clock.advance(1)
    latest = await edit(alice, room_id, original, "third")
    hs.clock.advance(1)
    await edit(bob, room_id, original, "not yours")  # another sender: invalid
    hs.clock.advance(1)
    await relate(alice, room_id, original, "m.replace", "no new content")  # invalid
    event = await served(bob, room_id, original)
    assert event["content"]["body"] == "first"
    replacement = event["unsigned"]["m.relations"]["m.replace"]
    assert replacement["event_id"] == latest
    assert replacement["content"]["m.new_content"]["body"] == "third"
    assert replacement["sender"] == alice.user_id


async def test_sync_bundles_aggregations_in_limited_timelines_only(
    hs: HomeserverHarness,
) -> None:
    alice, bob, room_id = await two_users(hs)
    since = (await bob.sync(timeout=0))["next_batch"]
    original = await alice.send(room_id, "first")
    await edit(alice, room_id, original, "second")

    def timeline_event(sync: Any, event_id: str) -> Any:
        room = sync["rooms"]["join"][room_id]["timeline"]
        return room["limited"], next(e for e in room["events"] if e["event_id"] == event_id)

    # Incremental and not limited: the client sees the edit arrive itself.
    limited, event = timeline_event(await bob.sync(since=since, timeout=0), original)
    assert not limited and "m.relations" not in event.get("unsigned", {})
    # An initial sync's limited timeline bundles it (spec: "Aggregations of child events").
    flt = '{"room": {"timeline": {"limit": 2}}}'
    limited, event = timeline_event(await bob.sync(filter=flt, timeout=0), original)
    assert limited
    assert event["unsigned"]["m.relations"]["m.replace"]["content"]["m.new_content"] == {
        "msgtype": "m.text",
        "body": "second",
    }


async def test_edit_ties_broken_by_event_id(hs: HomeserverHarness) -> None:
    alice, _, room_id = await two_users(hs)
    original = await alice.send(room_id, "first")
    edits = [await edit(alice, room_id, original, f"e{i}") for i in range(3)]
    event = await served(alice, room_id, original)
    assert event["unsigned"]["m.relations"]["m.replace"]["event_id"] == max(edits)


async def test_redacted_edit_and_redacted_original(hs: HomeserverHarness) -> None:
    alice, _, room_id = await two_users(hs)
    original = await alice.send(room_id, "first")
    hs.clock.advance(1)
    first = await edit(alice, room_id, original, "second")
    hs.clock.advance(1)
    second = await edit(alice, room_id, original, "third")
    await alice.request("PUT", f"/rooms/{room_id}/redact/{second}/r1", {})
    event = await served(alice, room_id, original)
    assert event["unsigned"]["m.relations"]["m.replace"]["event_id"] == first
    await alice.request("PUT", f"/rooms/{room_id}/redact/{original}/r2", {})
    event = await served(alice, room_id, original)
    assert "m.relations" not in event["unsigned"]
    assert event["content"] == {}


# -- m.thread ------------------------------------------------------------------------------


async def test_thread_summary(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await two_users(hs)
    carol = await make_user(hs, "carol")
    await carol.join(room_id)
    root = await alice.send(room_id, "root")
    await relate(bob, room_id, root, "m.thread", "reply 1")
    last = await relate(alice, room_id, root, "m.thread", "reply 2")
    hs.clock.advance(1)
    last_edit = await edit(alice, room_id, last, "reply 2 edited")
    for user, participated in ((alice, True), (bob, True), (carol, False)):
        thread = (await served(user, room_id, root))["unsigned"]["m.relations"]["m.thread"]
        assert thread["count"] == 2
        assert thread["current_user_participated"] is participated
        latest = thread["latest_event"]
        assert latest["event_id"] == last
        # The latest event carries its own aggregations.
        assert latest["unsigned"]["m.relations"]["m.replace"]["event_id"] == last_edit


async def test_thread_summary_on_messages(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await two_users(hs)
    root = await alice.send(room_id, "root")
    reply = await relate(bob, room_id, root, "m.thread", "reply")
    page = await alice.request(
        "GET", f"/rooms/{room_id}/messages", params={"dir": "b", "limit": "5"}
    )
    by_id = {e["event_id"]: e for e in page["chunk"]}
    assert by_id[root]["unsigned"]["m.relations"]["m.thread"]["latest_event"]["event_id"] == reply
    assert "m.relations" not in by_id[reply]["unsigned"]


async def test_threads_listing(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await two_users(hs)
    roots = [await alice.send(room_id, f"root {i}") for i in range(3)]
    bob_root = await bob.send(room_id, "bob's root")
    await relate(bob, room_id, roots[0], "m.thread", "r")
    await relate(alice, room_id, roots[2], "m.thread", "r")
    await relate(alice, room_id, bob_root, "m.thread", "r")
    await relate(alice, room_id, roots[1], "m.thread", "r")
    await relate(alice, room_id, roots[0], "m.thread", "r")  # roots[0] is latest again
    await alice.send(room_id, "not a thread")
    page = await v1(alice, f"/rooms/{room_id}/threads")
    expected = [roots[0], roots[1], bob_root, roots[2]]
    assert [e["event_id"] for e in page["chunk"]] == expected
    assert "next_batch" not in page
    assert page["chunk"][0]["unsigned"]["m.relations"]["m.thread"]["count"] == 2
    participated = await v1(bob, f"/rooms/{room_id}/threads", include="participated")
    assert [e["event_id"] for e in participated["chunk"]] == [roots[0], bob_root]
    # Paging one at a time visits every thread once.
    seen: list[str] = []
    params: dict[str, str] = {"limit": "1"}
    for _ in range(10):
        page = await v1(alice, f"/rooms/{room_id}/threads", **params)
        seen += [e["event_id"] for e in page["chunk"]]
        if "next_batch" not in page:
            break
        params["from"] = page["next_batch"]
    assert seen == expected


@pytest.mark.parametrize(
    ("params", "errcode"),
    [
        ({"include": "some"}, "M_INVALID_PARAM"),
        ({"limit": "0"}, "M_INVALID_PARAM"),
        ({"limit": "many"}, "M_INVALID_PARAM"),
        ({"from": "garbage"}, "M_INVALID_PARAM"),
    ],
)
async def test_threads_bad_input(
    hs: HomeserverHarness, params: dict[str, str], errcode: str
) -> None:
    alice, _, room_id = await two_users(hs)
    err = await v1(alice, f"/rooms/{room_id}/threads", expect=400, **params)
    assert err["errcode"] == errcode


async def test_threads_forbidden(hs: HomeserverHarness) -> None:
    _alice, _, room_id = await two_users(hs)
    eve = await make_user(hs, "eve")
    err = await v1(eve, f"/rooms/{room_id}/threads", expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    err = await v1(eve, "/rooms/!nowhere:test.local/threads", expect=403)
    assert err["errcode"] == "M_FORBIDDEN"


# -- m.reference ---------------------------------------------------------------------------


async def test_references_are_bundled(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await two_users(hs)
    parent = await alice.send(room_id, "parent")
    refs = [await relate(bob, room_id, parent, "m.reference", f"ref {i}") for i in range(2)]
    await relate(bob, room_id, parent, "m.annotation", "👍", key="👍")  # not aggregated
    relations = (await served(alice, room_id, parent))["unsigned"]["m.relations"]
    assert relations == {"m.reference": {"chunk": [{"event_id": r} for r in refs]}}


async def test_state_events_get_no_aggregations(hs: HomeserverHarness) -> None:
    alice, _, room_id = await two_users(hs)
    topic = await alice.request("PUT", f"/rooms/{room_id}/state/m.room.topic", {"topic": "t"})
    await relate(alice, room_id, topic["event_id"], "m.reference")
    event = await served(alice, room_id, topic["event_id"])
    assert "m.relations" not in event["unsigned"]


# -- GET /relations ------------------------------------------------------------------------


async def test_relations_endpoint(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await two_users(hs)
    parent = await alice.send(room_id, "parent")
    thread = [await relate(bob, room_id, parent, "m.thread", f"t{i}") for i in range(3)]
    ref = await relate(alice, room_id, parent, "m.reference", "ref")
    react = await bob.send(
        room_id,
        event_type="m.reaction",
        **{"m.relates_to": {"rel_type": "m.annotation", "event_id": parent, "key": "x"}},
    )
    await alice.send(room_id, "unrelated")
    everything = await v1(bob, f"/rooms/{room_id}/relations/{parent}")
    assert [e["event_id"] for e in everything["chunk"]] == [react, ref, *reversed(thread)]
    assert "next_batch" not in everything and "recursion_depth" not in everything
    by_type = await v1(bob, f"/rooms/{room_id}/relations/{parent}/m.thread")
    assert [e["event_id"] for e in by_type["chunk"]] == list(reversed(thread))
    by_event_type = await v1(bob, f"/rooms/{room_id}/relations/{parent}/m.annotation/m.reaction")
    assert [e["event_id"] for e in by_event_type["chunk"]] == [react]
    none = await v1(bob, f"/rooms/{room_id}/relations/{parent}/m.annotation/m.room.message")
    assert none["chunk"] == []
    forwards = await v1(bob, f"/rooms/{room_id}/relations/{parent}/m.thread", dir="f")
    assert [e["event_id"] for e in forwards["chunk"]] == thread


async def test_relations_pagination(hs: HomeserverHarness) -> None:
    alice, _, room_id = await two_users(hs)
    parent = await alice.send(room_id, "parent")
    children = [await relate(alice, room_id, parent, "m.reference", f"c{i}") for i in range(5)]
    seen: list[str] = []
    params: dict[str, str] = {"limit": "2"}
    for _ in range(5):
        page = await v1(alice, f"/rooms/{room_id}/relations/{parent}", **params)
        seen += [e["event_id"] for e in page["chunk"]]
        if "from" in params:
            assert page["prev_batch"] == params["from"]
        if "next_batch" not in page:
            break
        params["from"] = page["next_batch"]
    assert seen == list(reversed(children))
    # from page 1 to page 2 covers page 1 only... and forwards pages the other way.
    first = await v1(alice, f"/rooms/{room_id}/relations/{parent}", limit="2")
    fwd = await v1(alice, f"/rooms/{room_id}/relations/{parent}", dir="f", limit="3")
    assert [e["event_id"] for e in fwd["chunk"]] == children[:3]
    rest = await v1(
        alice, f"/rooms/{room_id}/relations/{parent}", dir="f", **{"from": fwd["next_batch"]}
    )
    assert [e["event_id"] for e in rest["chunk"]] == children[3:]
    bounded = await v1(alice, f"/rooms/{room_id}/relations/{parent}", to=first["next_batch"])
    assert [e["event_id"] for e in bounded["chunk"]] == [children[4], children[3]]


async def test_relations_recurse(hs: HomeserverHarness) -> None:
    alice, _, room_id = await two_users(hs)
    root = await alice.send(room_id, "root")
    reply = await relate(alice, room_id, root, "m.thread", "reply")
    reply_edit = await edit(alice, room_id, reply, "reply edited")
    ref_of_edit = await relate(alice, room_id, reply_edit, "m.reference", "deep")
    deeper = await relate(alice, room_id, ref_of_edit, "m.reference", "too deep")
    flat = await v1(alice, f"/rooms/{room_id}/relations/{root}", recurse="false")
    assert [e["event_id"] for e in flat["chunk"]] == [reply]
    assert flat["recursion_depth"] == 1
    deep = await v1(alice, f"/rooms/{room_id}/relations/{root}", recurse="true")
    assert [e["event_id"] for e in deep["chunk"]] == [ref_of_edit, reply_edit, reply]
    assert deeper not in [e["event_id"] for e in deep["chunk"]]
    assert deep["recursion_depth"] == 3
    # A rel_type filter applies at every level.
    threads_only = await v1(alice, f"/rooms/{room_id}/relations/{root}/m.thread", recurse="true")
    assert [e["event_id"] for e in threads_only["chunk"]] == [reply]


async def test_relations_errors(hs: HomeserverHarness) -> None:
    alice, _, room_id = await two_users(hs)
    parent = await alice.send(room_id, "parent")
    err = await v1(alice, f"/rooms/{room_id}/relations/$missing", expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    err = await v1(alice, f"/rooms/{room_id}/relations/{parent}", expect=400, dir="up")
    assert err["errcode"] == "M_INVALID_PARAM"
    err = await v1(alice, f"/rooms/{room_id}/relations/{parent}", expect=400, limit="-3")
    assert err["errcode"] == "M_INVALID_PARAM"
    err = await v1(alice, f"/rooms/{room_id}/relations/{parent}", expect=400, recurse="maybe")
    assert err["errcode"] == "M_INVALID_PARAM"
    err = await v1(alice, f"/rooms/{room_id}/relations/{parent}", expect=400, **{"from": "zz"})
    assert err["errcode"] == "M_INVALID_PARAM"
    eve = await make_user(hs, "eve")
    err = await v1(eve, f"/rooms/{room_id}/relations/{parent}", expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    # A parent the user may not see is not found.
    await alice.request(
        "PUT",
        f"/rooms/{room_id}/state/m.room.history_visibility",
        {"history_visibility": "joined"},
    )
    hidden = await alice.send(room_id, "hidden")
    await eve.join(room_id)
    err = await v1(eve, f"/rooms/{room_id}/relations/{hidden}", expect=404)
    assert err["errcode"] == "M_NOT_FOUND"


async def test_invisible_children_are_left_out(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await two_users(hs)
    parent = await alice.send(room_id, "parent")
    await alice.request(
        "PUT",
        f"/rooms/{room_id}/state/m.room.history_visibility",
        {"history_visibility": "joined"},
    )
    await bob.leave(room_id)
    await relate(alice, room_id, parent, "m.reference", "after bob left")
    page = await v1(bob, f"/rooms/{room_id}/relations/{parent}")
    assert page["chunk"] == []
    event = await served(bob, room_id, parent)
    assert "m.relations" not in event["unsigned"]


# -- who may see what ----------------------------------------------------------------------


async def set_visibility(user: User, room_id: str, value: str) -> None:
    await user.request(
        "PUT", f"/rooms/{room_id}/state/m.room.history_visibility", {"history_visibility": value}
    )


async def test_banned_users_may_list_neither_threads_nor_relations(
    hs: HomeserverHarness,
) -> None:
    alice, bob, room_id = await two_users(hs)
    root = await alice.send(room_id, "root")
    await relate(bob, room_id, root, "m.thread", "reply")
    assert len((await v1(bob, f"/rooms/{room_id}/threads"))["chunk"]) == 1
    await alice.request("POST", f"/rooms/{room_id}/ban", {"user_id": bob.user_id})
    err = await v1(bob, f"/rooms/{room_id}/threads", expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    err = await v1(bob, f"/rooms/{room_id}/relations/{root}", expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    # Not even when anyone else may read the room.
    await set_visibility(alice, room_id, "world_readable")
    err = await v1(bob, f"/rooms/{room_id}/threads", expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    err = await v1(bob, f"/rooms/{room_id}/relations/{root}", expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    eve = await make_user(hs, "eve")  # never a member: may list (the root predates it)
    assert (await v1(eve, f"/rooms/{room_id}/threads"))["chunk"] == []


async def test_threads_follow_history_visibility(hs: HomeserverHarness) -> None:
    alice, bob = await make_user(hs, "alice"), await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    await set_visibility(alice, room_id, "joined")
    hidden = await alice.send(room_id, "before bob joined")
    await relate(alice, room_id, hidden, "m.thread", "reply")
    await bob.join(room_id)
    seen = await alice.send(room_id, "while bob is here")
    await relate(alice, room_id, seen, "m.thread", "reply")
    await bob.leave(room_id)
    gone = await alice.send(room_id, "after bob left")
    await relate(alice, room_id, gone, "m.thread", "reply")
    listed = await v1(bob, f"/rooms/{room_id}/threads")
    assert [e["event_id"] for e in listed["chunk"]] == [seen]
    listed = await v1(alice, f"/rooms/{room_id}/threads")
    assert [e["event_id"] for e in listed["chunk"]] == [gone, seen, hidden]
    # world_readable: a non-member lists the threads whose roots are world readable.
    await set_visibility(alice, room_id, "world_readable")
    public = await alice.send(room_id, "world readable")
    await relate(alice, room_id, public, "m.thread", "reply")
    eve = await make_user(hs, "eve")
    listed = await v1(eve, f"/rooms/{room_id}/threads")
    assert [e["event_id"] for e in listed["chunk"]] == [public]


async def test_relations_follow_history_visibility(hs: HomeserverHarness) -> None:
    alice, bob = await make_user(hs, "alice"), await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    parent = await alice.send(room_id, "parent, shared era")
    early = await relate(alice, room_id, parent, "m.reference", "shared era child")
    await set_visibility(alice, room_id, "joined")
    hidden = await relate(alice, room_id, parent, "m.reference", "before bob joined")
    await bob.join(room_id)
    late = await relate(alice, room_id, parent, "m.reference", "after bob joined")
    page = await v1(bob, f"/rooms/{room_id}/relations/{parent}")
    assert [e["event_id"] for e in page["chunk"]] == [late, early]
    page = await v1(alice, f"/rooms/{room_id}/relations/{parent}")
    assert [e["event_id"] for e in page["chunk"]] == [late, hidden, early]
    # A parent from the hidden stretch is not found for bob, existing or not.
    err = await v1(bob, f"/rooms/{room_id}/relations/{hidden}", expect=404)
    assert err["errcode"] == "M_NOT_FOUND"
    # world_readable: non-members read the world-readable children only.
    await set_visibility(alice, room_id, "world_readable")
    public = await relate(alice, room_id, parent, "m.reference", "world readable")
    eve = await make_user(hs, "eve")
    err = await v1(eve, f"/rooms/{room_id}/relations/{parent}", expect=404)
    assert err["errcode"] == "M_NOT_FOUND"  # the parent itself is not world readable
    public_parent = await alice.send(room_id, "world readable parent")
    child = await relate(alice, room_id, public_parent, "m.reference", "world readable child")
    page = await v1(eve, f"/rooms/{room_id}/relations/{public_parent}")
    assert [e["event_id"] for e in page["chunk"]] == [child]
    assert public not in [e["event_id"] for e in page["chunk"]]


async def test_bundled_aggregations_follow_history_visibility(hs: HomeserverHarness) -> None:
    alice, bob = await make_user(hs, "alice"), await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat")
    edited = await alice.send(room_id, "original")
    first_edit = await edit(alice, room_id, edited, "first edit")
    root = await alice.send(room_id, "thread root")
    visible_reply = await relate(alice, room_id, root, "m.thread", "shared era reply")
    referenced = await alice.send(room_id, "referenced")
    visible_ref = await relate(alice, room_id, referenced, "m.reference", "shared era ref")
    await set_visibility(alice, room_id, "joined")
    hs.clock.advance(1000)
    second_edit = await edit(alice, room_id, edited, "second edit")
    hidden_reply = await relate(alice, room_id, root, "m.thread", "joined era reply")
    hidden_ref = await relate(alice, room_id, referenced, "m.reference", "joined era ref")
    await bob.join(room_id)

    def relations(event: Any) -> Any:
        return event["unsigned"]["m.relations"]

    # Bob joined after the second edit, reply and reference: he gets the latest he may see.
    assert relations(await served(bob, room_id, edited))["m.replace"]["event_id"] == first_edit
    thread = relations(await served(bob, room_id, root))["m.thread"]
    assert thread["latest_event"]["event_id"] == visible_reply
    refs = relations(await served(bob, room_id, referenced))["m.reference"]["chunk"]
    assert refs == [{"event_id": visible_ref}]
    # Alice sees everything.
    assert relations(await served(alice, room_id, edited))["m.replace"]["event_id"] == second_edit
    thread = relations(await served(alice, room_id, root))["m.thread"]
    assert thread["latest_event"]["event_id"] == hidden_reply
    refs = relations(await served(alice, room_id, referenced))["m.reference"]["chunk"]
    assert refs == [{"event_id": visible_ref}, {"event_id": hidden_ref}]
    # The same through /messages (the bundles are built for the reader there too).
    page = await bob.request("GET", f"/rooms/{room_id}/messages", params={"dir": "b"})
    by_id = {e["event_id"]: e for e in page["chunk"]}
    assert by_id[edited]["unsigned"]["m.relations"]["m.replace"]["event_id"] == first_edit
