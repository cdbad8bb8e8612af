"""POST /search: the full-text index kept on write and queried through the client API,
on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from storage.database import Transaction
from storage.migrations import load_migrations
from storage.sqlite import split_statements
from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user


def room_events(term: str, **extra: Any) -> dict[str, Any]:
    return {"search_categories": {"room_events": {"search_term": term, **extra}}}


async def search(user: User, term: str, expect: int = 200, **extra: Any) -> Any:
    body = await user.request("POST", "/search", room_events(term, **extra), expect=expect)
    return body["search_categories"]["room_events"] if expect == 200 else body


async def search_page(user: User, body: dict[str, Any], next_batch: str) -> Any:
    data = await user.request("POST", f"/search?next_batch={next_batch}", body)
    return data["search_categories"]["room_events"]


def bodies(result: Any) -> list[str]:
    return [r["result"]["content"].get("body") for r in result["results"]]


async def index_rows(hs: HomeserverHarness) -> int:
    return int(await hs.server.db.fetchval("t", "SELECT COUNT(*) FROM event_search"))


async def test_finds_messages_by_word_and_prefix_in_joined_rooms(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(preset="public_chat", name="Garden club")
    await bob.join(room)
    await alice.send(room, "The tomatoes are ripening nicely")
    await bob.send(room, "I planted tomato seedlings")
    await bob.send(room, "Nothing about vegetables here")
    found = await search(alice, "tomato")
    assert sorted(bodies(found)) == [
        "I planted tomato seedlings",
        "The tomatoes are ripening nicely",
    ]
    assert found["count"] == 2
    assert "next_batch" not in found
    first = found["results"][0]
    assert first["result"]["room_id"] == room and isinstance(first["rank"], float)
    assert set(found["highlights"]) == {"tomato", "tomatoes"}
    # every word must match
    assert bodies(await search(bob, "tomato seedlings")) == ["I planted tomato seedlings"]
    assert (await search(bob, "tomato spaceship"))["results"] == []
    # the room's name is found with the content.name key, not with content.body
    names = await search(alice, "garden", keys=["content.name"])
    assert [r["result"]["type"] for r in names["results"]] == ["m.room.name"]
    assert (await search(alice, "garden", keys=["content.body"]))["results"] == []


async def test_rooms_the_searcher_is_not_in_are_not_searched(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    eve = await make_user(hs, "eve")
    private = await alice.create_room(preset="private_chat")
    await alice.send(room_id=private, body="secret launch codes")
    assert (await search(eve, "launch"))["results"] == []
    assert (await search(eve, "launch"))["count"] == 0
    public = await alice.create_room(preset="public_chat")
    await alice.send(public, "public launch party")
    await eve.join(public)
    assert bodies(await search(eve, "launch")) == ["public launch party"]
    await eve.leave(public)
    assert (await search(eve, "launch"))["results"] == []


async def test_history_visibility_hides_what_came_before_joining(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room = await alice.create_room(
        preset="public_chat",
        initial_state=[
            {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}}
        ],
    )
    await alice.send(room, "pineapple before bob")
    await bob.join(room)
    await alice.send(room, "pineapple after bob")
    assert bodies(await search(bob, "pineapple")) == ["pineapple after bob"]
    assert len((await search(alice, "pineapple"))["results"]) == 2


async def test_redacted_events_leave_the_index(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room = await alice.create_room(preset="public_chat")
    before = await index_rows(hs)
    event_id = await alice.send(room, "embarrassing typo")
    assert await index_rows(hs) == before + 1
    await alice.request("PUT", f"/rooms/{room}/redact/{event_id}/r1", {"reason": "oops"})
    assert await index_rows(hs) == before
    assert (await search(alice, "embarrassing"))["results"] == []


async def test_encrypted_and_state_free_events_are_not_indexed(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room = await alice.create_room(preset="public_chat")
    before = await index_rows(hs)
    await alice.request(
        "PUT",
        f"/rooms/{room}/send/m.room.encrypted/e1",
        {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "zebra", "sender_key": "k"},
    )
    await alice.request("PUT", f"/rooms/{room}/send/m.reaction/e2", {"body": "zebra"})
    assert await index_rows(hs) == before
    assert (await search(alice, "zebra"))["results"] == []


async def test_recent_order_pages_through_every_match(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room = await alice.create_room(preset="public_chat")
    for n in range(7):
        await alice.send(room, f"apple number {n}")
    body = room_events("apple", order_by="recent", filter={"limit": 3})
    page = (await alice.request("POST", "/search", body))["search_categories"]["room_events"]
    seen = bodies(page)
    assert seen == ["apple number 6", "apple number 5", "apple number 4"]
    assert page["count"] == 7
    while "next_batch" in page:
        page = await search_page(alice, body, page["next_batch"])
        seen += bodies(page)
    assert seen == [f"apple number {n}" for n in reversed(range(7))]


async def test_rank_order_pages_without_repeats(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room = await alice.create_room(preset="public_chat")
    await alice.send(room, "pear")
    await alice.send(room, "pear pear pear tart")
    for n in range(4):
        await alice.send(room, f"a long sentence that mentions a pear only once, number {n}")
    body = room_events("pear", filter={"limit": 2})
    page = (await alice.request("POST", "/search", body))["search_categories"]["room_events"]
    seen = bodies(page)
    ranks = [r["rank"] for r in page["results"]]
    while "next_batch" in page:
        page = await search_page(alice, body, page["next_batch"])
        seen += bodies(page)
        ranks += [r["rank"] for r in page["results"]]
    assert len(seen) == 6 and len(set(seen)) == 6
    assert ranks == sorted(ranks, reverse=True)
    assert seen[-1].startswith("a long sentence")


async def test_filter_senders_rooms_and_types(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    one = await alice.create_room(preset="public_chat", topic="kiwi topic")
    two = await alice.create_room(preset="public_chat")
    await bob.join(one)
    await bob.join(two)
    await alice.send(one, "kiwi from alice in one")
    await bob.send(one, "kiwi from bob in one")
    await bob.send(two, "kiwi from bob in two")
    only_bob = await search(alice, "kiwi", filter={"senders": [bob.user_id]})
    assert sorted(bodies(only_bob)) == ["kiwi from bob in one", "kiwi from bob in two"]
    not_two = await search(alice, "kiwi", filter={"not_rooms": [two], "types": ["m.room.message"]})
    assert sorted(bodies(not_two)) == ["kiwi from alice in one", "kiwi from bob in one"]
    in_two = await search(alice, "kiwi", filter={"rooms": [two]})
    assert bodies(in_two) == ["kiwi from bob in two"]
    topics = await search(alice, "kiwi", filter={"types": ["m.room.topic"]})
    assert [r["result"]["type"] for r in topics["results"]] == ["m.room.topic"]


async def test_event_context_groupings_and_state(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    await bob.request("PUT", f"/profile/{bob.user_id}/displayname", {"displayname": "Bobby"})
    room = await alice.create_room(preset="public_chat", name="Fruit")
    await bob.join(room)
    await alice.send(room, "before one")
    await alice.send(room, "before two")
    hit = await bob.send(room, "mango season")
    await alice.send(room, "after one")
    found = await search(
        alice,
        "mango",
        event_context={"before_limit": 2, "after_limit": 1, "include_profile": True},
        groupings={"group_by": [{"key": "room_id"}, {"key": "sender"}]},
        include_state=True,
    )
    [result] = found["results"]
    assert result["result"]["event_id"] == hit
    context = result["context"]
    assert [e["content"]["body"] for e in context["events_before"]] == ["before two", "before one"]
    assert [e["content"]["body"] for e in context["events_after"]] == ["after one"]
    assert isinstance(context["start"], str) and isinstance(context["end"], str)
    assert context["profile_info"][bob.user_id]["displayname"] == "Bobby"
    assert found["groups"]["room_id"][room]["results"] == [hit]
    assert found["groups"]["sender"][bob.user_id]["results"] == [hit]
    state_types = {e["type"] for e in found["state"][room]}
    assert {"m.room.create", "m.room.name", "m.room.member"} <= state_types


async def test_bad_requests_are_refused_and_change_nothing(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room = await alice.create_room(preset="public_chat")
    await alice.send(room, "durian")
    rows = await index_rows(hs)
    cases: list[tuple[Any, int, str]] = [
        ({}, 400, "M_MISSING_PARAM"),
        ({"search_categories": []}, 400, "M_BAD_JSON"),
        ({"search_categories": {"room_events": {}}}, 400, "M_MISSING_PARAM"),
        (room_events(7), 400, "M_BAD_JSON"),
        (room_events("durian", order_by="alphabetical"), 400, "M_INVALID_PARAM"),
        (room_events("durian", keys=["content.secret"]), 400, "M_INVALID_PARAM"),
        (room_events("durian", keys="content.body"), 400, "M_BAD_JSON"),
        (room_events("durian", event_context={"before_limit": -1}), 400, "M_BAD_JSON"),
        (room_events("durian", groupings={"group_by": [{"key": "type"}]}), 400, "M_INVALID_PARAM"),
        (room_events("durian", filter={"limit": "ten"}), 400, "M_BAD_JSON"),
        (room_events("durian", include_state="yes"), 400, "M_BAD_JSON"),
    ]
    for body, status, errcode in cases:
        data = await alice.request("POST", "/search", body, expect=status)
        assert data["errcode"] == errcode, (body, data)
    bad_batch = await alice.request(
        "POST", "/search?next_batch=s12", room_events("durian"), expect=400
    )
    assert bad_batch["errcode"] == "M_INVALID_PARAM"
    resp = await hs.client.post("/_matrix/client/v3/search", json=room_events("durian"))
    assert resp.status == 401 and (await resp.json())["errcode"] == "M_MISSING_TOKEN"
    resp = await hs.client.post("/_matrix/client/v3/search", data=b"nope", headers=alice.auth)
    assert resp.status == 400 and (await resp.json())["errcode"] == "M_NOT_JSON"
    # other categories only: nothing to search, no error
    empty = await alice.request("POST", "/search", {"search_categories": {}})
    assert empty == {"search_categories": {}}
    assert await index_rows(hs) == rows
    assert bodies(await search(alice, "durian")) == ["durian"]
    # a term without words finds nothing
    assert (await search(alice, "!!! ???"))["results"] == []


async def test_migration_indexes_the_events_held_from_before(hs: HomeserverHarness) -> None:
    """Schema 0034 fills the index from the events already stored."""
    alice = await make_user(hs, "alice")
    room = await alice.create_room(preset="public_chat", name="Old orchard", topic="apples")
    await alice.send(room, "an old quince")
    gone = await alice.send(room, "a redacted quince")
    await alice.request("PUT", f"/rooms/{room}/redact/{gone}/r1", {})
    expected = await index_rows(hs)
    db = hs.server.db
    [migration] = [m for m in load_migrations(db.engine) if m.version == 34]
    fills = [s for s in split_statements(migration.sql) if s.lstrip().startswith("INSERT")]
    assert fills

    async def refill(txn: Transaction) -> None:
        if db.engine == "sqlite":
            await txn.execute("DELETE FROM event_search_fts")
        await txn.execute("DELETE FROM event_search")
        for statement in fills:
            await txn.execute(statement)

    await db.run_transaction("refill", refill)
    assert await index_rows(hs) == expected
    assert bodies(await search(alice, "quince")) == ["an old quince"]
    assert len((await search(alice, "orchard", keys=["content.name"]))["results"]) == 1
    assert len((await search(alice, "apples", keys=["content.topic"]))["results"]) == 1
