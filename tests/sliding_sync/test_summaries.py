"""Per-room summaries for sliding sync: the pure rules (which events bump, what the
state makes of a summary), and the rows kept on write on both engines: messages
bump, other events do not, the fields follow the current state (redactions, forks
resolved, remote joins, backfill), and rooms held from before are filled at start-up.

Every room-level test also checks the invariant: the row kept on write equals the
summary made afresh from the database."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from homeserver.server import Homeserver
from homeserver.sliding_sync.summaries import (
    BUMP_EVENT_TYPES,
    RoomSummaries,
    bumps,
    fields_from_state,
    member_deltas,
    served_content,
    summary_from_state,
)
from storage.room_summaries import RoomSummary
from tests.conftest import HarnessFactory, HomeserverHarness
from tests.rooms.helpers import User, make_user

# -- pure -------------------------------------------------------------------------


def test_the_bump_event_types_are_synapses() -> None:
    for event_type in ("m.room.message", "m.room.encrypted", "m.room.create", "m.sticker"):
        assert bumps(event_type)
    for event_type in ("m.call.invite", "m.poll.start", "m.beacon_info"):
        assert bumps(event_type)
    for event_type in (
        "m.room.name",
        "m.room.topic",
        "m.room.member",
        "m.reaction",
        "m.room.redaction",
        "m.room.power_levels",
        "m.room.message.feedback",
        "",
    ):
        assert not bumps(event_type)
    assert len(BUMP_EVENT_TYPES) == 7


def test_fields_follow_the_state_contents() -> None:
    fields = fields_from_state(
        {
            "m.room.create": {"type": "m.space", "room_version": "11"},
            "m.room.encryption": {"algorithm": "m.megolm.v1.aes-sha2"},
            "m.room.name": {"name": "Lounge"},
            "m.room.avatar": {"url": "mxc://a/b"},
            "m.room.canonical_alias": {"alias": "#l:a"},
            "m.room.tombstone": {"replacement_room": "!new:a", "body": "moved"},
            "m.room.topic": {"topic": "ignored"},
        }
    )
    assert fields == {
        "room_type": "m.space",
        "is_encrypted": True,
        "name": "Lounge",
        "avatar": "mxc://a/b",
        "canonical_alias": "#l:a",
        "tombstone_successor": "!new:a",
    }


@pytest.mark.parametrize(
    "contents",
    [
        # not strings, NUL bytes (PostgreSQL text cannot hold them), missing keys
        {"m.room.name": {"name": 5}, "m.room.avatar": {"url": ["x"]}},
        {"m.room.name": {"name": "a\0b"}, "m.room.avatar": {"url": "mxc://a\0"}},
        {"m.room.name": {}, "m.room.avatar": {}},
        # the state event is gone (state resolution dropped it)
        {"m.room.name": None, "m.room.avatar": None},
    ],
)
def test_bad_or_missing_values_give_none(contents: dict[str, Any]) -> None:
    assert fields_from_state(contents) == {"name": None, "avatar": None}


def test_encryption_needs_an_algorithm_and_the_type_a_string() -> None:
    assert fields_from_state({"m.room.encryption": {}}) == {"is_encrypted": False}
    assert fields_from_state({"m.room.encryption": None}) == {"is_encrypted": False}
    assert fields_from_state({"m.room.encryption": {"algorithm": "x"}}) == {"is_encrypted": True}
    assert fields_from_state({"m.room.create": {"type": {"a": 1}}}) == {"room_type": None}
    assert fields_from_state({"m.room.create": {}}) == {"room_type": None}


def test_a_whole_summary_and_member_deltas() -> None:
    summary = summary_from_state(
        "!r:a", {"m.room.name": {"name": "N"}}, {"join": 3, "invite": 1, "leave": 7}, 42
    )
    assert summary == RoomSummary(
        room_id="!r:a",
        bump_stamp=42,
        room_type=None,
        is_encrypted=False,
        name="N",
        avatar=None,
        canonical_alias=None,
        joined_count=3,
        invited_count=1,
        tombstone_successor=None,
    )
    assert member_deltas([(None, "join"), ("invite", "join"), ("join", "leave")]) == (1, -1)
    assert member_deltas([(None, "invite"), ("ban", None), ("join", "join")]) == (0, 1)


def test_redacted_content_is_what_clients_see() -> None:
    pdu = {"type": "m.room.name", "content": {"name": "secret"}, "room_id": "!r:a"}
    assert served_content(pdu, False, "10") == {"name": "secret"}
    assert served_content(pdu, True, "10") == {}
    create = {"type": "m.room.create", "content": {"type": "m.space", "creator": "@a:a"}}
    assert served_content(create, True, "11") == {"type": "m.space", "creator": "@a:a"}
    assert served_content(create, True, "10") == {"creator": "@a:a"}
    assert served_content({"content": "junk"}, False, "10") == {}


# -- kept on write -------------------------------------------------------------------


async def summary_of(server: Homeserver, room_id: str) -> RoomSummary:
    """The row kept on write, checked against one made afresh from the database."""
    assert server.room_summaries is not None
    kept = await server.stores.room_summaries.get(room_id)
    fresh = (await server.room_summaries.compute([room_id])).get(room_id)
    assert kept is not None, f"no summary of {room_id}"
    assert kept == fresh
    return kept


async def position(server: Homeserver, event_id: str) -> int:
    stored = await server.stores.events.get_event(event_id)
    assert stored is not None and stored.stream_ordering is not None
    return stored.stream_ordering


async def put_state(user: User, room_id: str, event_type: str, content: Any, key: str = "") -> str:
    path = f"/rooms/{quote(room_id)}/state/{event_type}/{quote(key)}"
    return str((await user.request("PUT", path, content))["event_id"])


async def create_event_id(server: Homeserver, room_id: str) -> str:
    state = await server.stores.state.get_current_state(room_id)
    return state[("m.room.create", "")]


async def test_a_new_room_is_summarised_and_bumped_by_its_creation(
    hs: HomeserverHarness,
) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room(name="Lounge", creation_content={"type": "m.space"})
    summary = await summary_of(hs.server, room_id)
    create_at = await position(hs.server, await create_event_id(hs.server, room_id))
    assert summary.bump_stamp == create_at
    assert summary.name == "Lounge"
    assert summary.room_type == "m.space"
    assert summary.joined_count == 1 and summary.invited_count == 0
    assert not summary.is_encrypted
    assert summary.avatar is None and summary.canonical_alias is None


async def test_messages_bump_and_other_events_do_not(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    message = await alice.send(room_id, "hi")
    bumped = await position(hs.server, message)
    assert (await summary_of(hs.server, room_id)).bump_stamp == bumped
    # state, reactions, redactions, non-bump types: no bump
    await put_state(alice, room_id, "m.room.topic", {"topic": "t"})
    await put_state(alice, room_id, "m.room.name", {"name": "N"})
    await alice.send(
        room_id,
        event_type="m.reaction",
        **{"m.relates_to": {"rel_type": "m.annotation", "event_id": message, "key": "x"}},
    )
    await alice.send(room_id, event_type="com.example.custom")
    other = await alice.send(room_id, "to redact")
    after_other = await position(hs.server, other)
    await alice.request("PUT", f"/rooms/{quote(room_id)}/redact/{quote(other)}/r1", {})
    summary = await summary_of(hs.server, room_id)
    assert summary.bump_stamp == after_other
    # encrypted messages and stickers bump
    encrypted = await alice.send(room_id, event_type="m.room.encrypted", ciphertext="x")
    assert (await summary_of(hs.server, room_id)).bump_stamp == await position(hs.server, encrypted)
    sticker = await alice.send(room_id, event_type="m.sticker", url="mxc://a/b")
    assert (await summary_of(hs.server, room_id)).bump_stamp == await position(hs.server, sticker)


async def test_fields_follow_the_current_state(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    assert (await summary_of(hs.server, room_id)).name is None
    await put_state(alice, room_id, "m.room.name", {"name": "One"})
    assert (await summary_of(hs.server, room_id)).name == "One"
    await put_state(alice, room_id, "m.room.name", {"name": "Two"})
    await put_state(alice, room_id, "m.room.avatar", {"url": "mxc://test.local/pic"})
    alias = "#lounge:test.local"
    await alice.request("PUT", f"/directory/room/{quote(alias)}", {"room_id": room_id})
    await put_state(alice, room_id, "m.room.canonical_alias", {"alias": alias})
    await put_state(alice, room_id, "m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"})
    summary = await summary_of(hs.server, room_id)
    assert (summary.name, summary.avatar, summary.canonical_alias) == (
        "Two",
        "mxc://test.local/pic",
        alias,
    )
    assert summary.is_encrypted
    # an empty name clears it; a non-string avatar URL does too
    await put_state(alice, room_id, "m.room.name", {})
    await put_state(alice, room_id, "m.room.avatar", {"url": 7})
    summary = await summary_of(hs.server, room_id)
    assert summary.name is None and summary.avatar is None
    assert summary.is_encrypted  # encryption cannot be turned off


async def test_a_redacted_name_is_no_name(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room(name="Secret")
    name_id = (await hs.server.stores.state.get_current_state(room_id))[("m.room.name", "")]
    await alice.request("PUT", f"/rooms/{quote(room_id)}/redact/{quote(name_id)}/r1", {})
    assert (await summary_of(hs.server, room_id)).name is None


async def test_counts_follow_memberships(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    carol = await make_user(hs, "carol")
    room_id = await alice.create_room(preset="public_chat")

    async def counts() -> tuple[int, int]:
        summary = await summary_of(hs.server, room_id)
        return summary.joined_count, summary.invited_count

    await alice.invite(room_id, bob.user_id)
    await alice.invite(room_id, carol.user_id)
    assert await counts() == (1, 2)
    await bob.join(room_id)
    assert await counts() == (2, 1)
    await carol.leave(room_id)  # rejects the invite
    assert await counts() == (2, 0)
    await carol.join(room_id)
    await bob.leave(room_id)
    assert await counts() == (2, 0)
    await alice.request(
        "POST", f"/rooms/{quote(room_id)}/ban", {"user_id": carol.user_id, "reason": "x"}
    )
    assert await counts() == (1, 0)
    # membership changes do not bump
    create_at = await position(hs.server, await create_event_id(hs.server, room_id))
    assert (await summary_of(hs.server, room_id)).bump_stamp == create_at


async def test_many_rooms_in_one_read(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    rooms = [await alice.create_room(name=f"room {i}") for i in range(12)]
    got = await hs.server.stores.room_summaries.get_many([*rooms, "!unknown:test.local"])
    assert set(got) == set(rooms)
    assert [got[r].name for r in rooms] == [f"room {i}" for i in range(12)]
    # a later message moves one room to the front
    await alice.send(rooms[3])
    got = await hs.server.stores.room_summaries.get_many(rooms)
    assert max(rooms, key=lambda r: got[r].bump_stamp) == rooms[3]
    assert await hs.server.stores.room_summaries.get_many([]) == {}


async def drop_summaries(server: Homeserver, room_ids: list[str] | None = None) -> None:
    """Make rooms look as if held from before the summaries existed."""
    if room_ids is None:
        await server.db.execute("drop_summaries", "DELETE FROM room_summaries")
    else:
        for room_id in room_ids:
            await server.db.execute(
                "drop_summary", "DELETE FROM room_summaries WHERE room_id = $1", room_id
            )
    server.stores.room_summaries.forget_cache()


async def test_rooms_held_from_before_are_filled_at_start_up(
    make_homeserver: HarnessFactory,
) -> None:
    first = await make_homeserver()
    alice = await make_user(first, "alice")
    bob = await make_user(first, "bob")
    rooms = [await alice.create_room(name=f"old {i}", preset="public_chat") for i in range(30)]
    await bob.join(rooms[0])
    await alice.invite(rooms[1], bob.user_id)
    last = await alice.send(rooms[2], "latest")
    await put_state(alice, rooms[3], "m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"})
    expected = await first.server.stores.room_summaries.get_many(rooms)
    await drop_summaries(first.server)

    # A restart (a new process over the same database) writes them all again.
    second = await make_homeserver()
    assert second.server.room_summaries is not None
    got = await second.server.stores.room_summaries.get_many(rooms)
    assert got == expected
    assert got[rooms[0]].joined_count == 2
    assert got[rooms[1]].invited_count == 1
    assert got[rooms[2]].bump_stamp == await position(second.server, last)
    assert got[rooms[3]].is_encrypted
    assert await second.server.room_summaries.fill_missing() == 0


async def test_a_missing_row_is_made_by_the_next_write(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    rooms = [await alice.create_room(name="kept", preset="public_chat") for _ in range(3)]
    await drop_summaries(hs.server, rooms)
    # a message, a state change, a membership: each writes the whole row again
    message = await alice.send(rooms[0], "hi")
    await put_state(alice, rooms[1], "m.room.name", {"name": "renamed"})
    await bob.join(rooms[2])
    assert (await summary_of(hs.server, rooms[0])).bump_stamp == await position(hs.server, message)
    assert (await summary_of(hs.server, rooms[1])).name == "renamed"
    assert (await summary_of(hs.server, rooms[2])).joined_count == 2


async def test_a_row_read_before_a_write_is_not_served_after_it(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room()
    before = await hs.server.stores.room_summaries.get(room_id)
    assert before is not None
    await put_state(alice, room_id, "m.room.name", {"name": "after"})
    message = await alice.send(room_id)
    after = await hs.server.stores.room_summaries.get(room_id)
    assert after is not None and after.name == "after"
    assert after.bump_stamp == await position(hs.server, message) > before.bump_stamp


async def test_the_store_refuses_unknown_fields(hs: HomeserverHarness) -> None:
    async def write(txn: Any) -> bool:
        return await hs.server.stores.room_summaries.update_txn(
            txn, "!r:test.local", {"bump_stamp; DROP TABLE rooms": 1}
        )

    with pytest.raises(ValueError, match="not updatable"):
        await hs.server.db.run_transaction("bad_update", write)


async def test_no_summary_without_current_state(hs: HomeserverHarness) -> None:
    """A room known only through an out-of-band invite (or not at all) has none."""
    summaries = hs.server.room_summaries
    assert isinstance(summaries, RoomSummaries)
    assert await summaries.compute(["!nowhere:test.local"]) == {}
    assert await hs.server.stores.room_summaries.get_many(["!nowhere:test.local"]) == {}
