"""/sync timelines of rooms a user joins: the events before the join that history
visibility lets them see (client-server API: "Syncing", "Room History Visibility").

Where the user may see the room's whole history the expected timeline is the latest
events of the room as its creator sees them; elsewhere it is what the user reads
through /messages, so sync and pagination are checked against each other.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user

HV = "m.room.history_visibility"


def _limit(limit: int, include_leave: bool = False) -> str:
    room: dict[str, Any] = {"timeline": {"limit": limit}}
    if include_leave:
        room["include_leave"] = True
    return json.dumps({"room": room})


def _ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_id"] for e in events]


async def _room(user: User, visibility: str, preset: str = "public_chat") -> str:
    return await user.create_room(
        preset=preset,
        initial_state=[
            {"type": HV, "state_key": "", "content": {"history_visibility": visibility}}
        ],
    )


async def _history(user: User, room_id: str) -> list[str]:
    """Every event of the room ``user`` may read through /messages, oldest first."""
    page = await user.request(
        "GET", f"/rooms/{room_id}/messages", params={"dir": "b", "limit": "1000"}
    )
    return list(reversed(_ids(page["chunk"])))


async def _latest(user: User, room_id: str) -> str:
    """The latest event of the room ``user`` may read (after a membership change)."""
    page = await user.request(
        "GET", f"/rooms/{room_id}/messages", params={"dir": "b", "limit": "1"}
    )
    return str(page["chunk"][0]["event_id"])


async def _paginate_back(user: User, room_id: str, token: str, page_size: int = 3) -> list[str]:
    """The events before ``token`` read page by page through /messages, oldest first."""
    seen: list[str] = []
    while True:
        page = await user.request(
            "GET",
            f"/rooms/{room_id}/messages",
            params={"from": token, "dir": "b", "limit": str(page_size)},
        )
        seen += _ids(page["chunk"])
        if "end" not in page or not page["chunk"]:
            return list(reversed(seen))
        token = page["end"]


async def _joined(user: User, creator: User, room_id: str) -> str:
    """``user`` joins; the ID of their join event."""
    await user.join(room_id)
    return await _latest(creator, room_id)


def _timeline(body: dict[str, Any], room_id: str, section: str = "join") -> dict[str, Any]:
    return dict(body["rooms"][section][room_id]["timeline"])


@pytest.mark.parametrize("visibility", ["world_readable", "shared"])
async def test_joiner_sees_earlier_history(hs: HomeserverHarness, visibility: str) -> None:
    alice = await make_user(hs, "alice")
    carol = await make_user(hs, "carol")
    room_id = await _room(alice, visibility)
    sent = [await alice.send(room_id, f"m{i}") for i in range(3)]
    before_join = (await carol.sync())["next_batch"]
    join = await _joined(carol, alice, room_id)
    everything = await _history(alice, room_id)
    assert everything[-4:] == [*sent, join]

    for since in (None, before_join):
        params = {} if since is None else {"since": since}
        whole = _timeline(await carol.sync(filter=_limit(50), **params), room_id)
        assert _ids(whole["events"]) == everything
        # a room joined since the last sync is always limited (as Synapse marks it)
        assert whole["limited"] is (since is not None)
        short = _timeline(await carol.sync(filter=_limit(4), **params), room_id)
        assert _ids(short["events"]) == [*sent, join]
        assert short["limited"] is True
        # the rest of the history follows from prev_batch, without a gap or a repeat
        rest = await _paginate_back(carol, room_id, short["prev_batch"])
        assert rest + _ids(short["events"]) == everything

    # the next incremental sync carries only what is new
    since = (await carol.sync())["next_batch"]
    later = await alice.send(room_id, "later")
    incremental = _timeline(await carol.sync(since=since), room_id)
    assert _ids(incremental["events"]) == [later]
    assert incremental["limited"] is False


async def test_joined_visibility_starts_at_the_join(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    carol = await make_user(hs, "carol")
    room_id = await _room(alice, "joined")
    for i in range(3):
        await alice.send(room_id, f"m{i}")
    before_join = (await carol.sync())["next_batch"]
    join = await _joined(carol, alice, room_id)
    after = await alice.send(room_id, "after")
    for params in ({}, {"since": before_join}):
        timeline = _timeline(await carol.sync(filter=_limit(50), **params), room_id)
        assert _ids(timeline["events"]) == [join, after]
        assert timeline["limited"] is ("since" in params)  # newly joined: limited
        short = _timeline(await carol.sync(filter=_limit(1), **params), room_id)
        assert _ids(short["events"]) == [after]
        assert short["limited"] is True


async def test_invited_visibility_starts_at_the_invite(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    carol = await make_user(hs, "carol")
    room_id = await _room(alice, "invited", preset="private_chat")
    await alice.send(room_id, "before the invite")
    before_invite = (await carol.sync())["next_batch"]
    await alice.invite(room_id, carol.user_id)
    between = await alice.send(room_id, "between invite and join")
    join = await _joined(carol, alice, room_id)
    everything = await _history(alice, room_id)
    invite = everything[everything.index(between) - 1]
    for params in ({}, {"since": before_invite}):
        timeline = _timeline(await carol.sync(filter=_limit(50), **params), room_id)
        assert _ids(timeline["events"]) == [invite, between, join]
        assert timeline["events"][0]["content"]["membership"] == "invite"
        assert timeline["limited"] is ("since" in params)  # newly joined: limited
        short = _timeline(await carol.sync(filter=_limit(2), **params), room_id)
        assert _ids(short["events"]) == [between, join]
        assert short["limited"] is True


@pytest.mark.parametrize("hidden_count", [3, 150])
async def test_visibility_changed_before_the_join(hs: HomeserverHarness, hidden_count: int) -> None:
    """Readable history up to a change to ``joined``: the readable part (and the change
    itself) stays visible to a later joiner, the rest does not (150: more hidden events
    than one read looks at)."""
    alice = await make_user(hs, "alice")
    carol = await make_user(hs, "carol")
    room_id = await _room(alice, "shared")
    readable = [await alice.send(room_id, f"r{i}") for i in range(4)]
    change = (
        await alice.request(
            "PUT", f"/rooms/{room_id}/state/{HV}/", {"history_visibility": "joined"}
        )
    )["event_id"]
    hidden = [await alice.send(room_id, f"h{i}") for i in range(hidden_count)]
    join = await _joined(carol, alice, room_id)
    everything = await _history(alice, room_id)
    visible = [e for e in everything if e not in hidden]
    assert visible[-6:] == [*readable, change, join]

    whole = _timeline(await carol.sync(filter=_limit(50)), room_id)
    assert _ids(whole["events"]) == visible
    assert whole["limited"] is False
    short = _timeline(await carol.sync(filter=_limit(3)), room_id)
    assert _ids(short["events"]) == [readable[-1], change, join]
    assert short["limited"] is True
    rest = await _paginate_back(carol, room_id, short["prev_batch"], page_size=2)
    assert rest + _ids(short["events"]) == visible


async def test_rejoin_shows_the_gap_in_a_shared_room(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    carol = await make_user(hs, "carol")
    room_id = await _room(alice, "shared")
    await carol.join(room_id)
    await alice.send(room_id, "while carol is in")
    since = (await carol.sync())["next_batch"]
    await carol.leave(room_id)
    gap = [await alice.send(room_id, f"gap{i}") for i in range(2)]
    rejoin = await _joined(carol, alice, room_id)
    everything = await _history(alice, room_id)
    leave = everything[everything.index(gap[0]) - 1]

    body = await carol.sync(since=since, filter=_limit(50))
    timeline = _timeline(body, room_id)
    assert _ids(timeline["events"]) == everything
    assert _ids(timeline["events"])[-4:] == [leave, *gap, rejoin]
    assert timeline["limited"] is True  # rejoined since the last sync
    short = _timeline(await carol.sync(since=since, filter=_limit(3)), room_id)
    assert _ids(short["events"]) == [*gap, rejoin]
    assert short["limited"] is True
    initial = _timeline(await carol.sync(filter=_limit(50)), room_id)
    assert _ids(initial["events"]) == everything


async def test_rejoin_in_a_joined_room_skips_the_gap(hs: HomeserverHarness) -> None:
    """``joined``: the events of the earlier membership stay visible, the gap does not."""
    alice = await make_user(hs, "alice")
    carol = await make_user(hs, "carol")
    room_id = await _room(alice, "joined")
    await alice.send(room_id, "before carol")
    first_join = await _joined(carol, alice, room_id)
    inside = await alice.send(room_id, "while carol is in")
    await carol.leave(room_id)
    gap = await alice.send(room_id, "gap")
    rejoin = await _joined(carol, alice, room_id)
    everything = await _history(alice, room_id)
    leave = everything[everything.index(gap) - 1]

    timeline = _timeline(await carol.sync(filter=_limit(50)), room_id)
    ids = _ids(timeline["events"])
    assert ids[-4:] == [first_join, inside, leave, rejoin]
    assert gap not in ids
    assert ids == await _history(carol, room_id)


async def test_left_room_timeline_stops_at_the_leave(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    carol = await make_user(hs, "carol")
    room_id = await _room(alice, "shared")
    earlier = [await alice.send(room_id, f"m{i}") for i in range(2)]
    since = (await carol.sync())["next_batch"]
    join = await _joined(carol, alice, room_id)
    inside = await alice.send(room_id, "while carol is in")
    await carol.leave(room_id)
    after = await alice.send(room_id, "after carol left")
    everything = await _history(alice, room_id)
    leave = everything[everything.index(after) - 1]
    up_to_leave = everything[: everything.index(after)]

    for params in ({}, {"since": since}):
        body = await carol.sync(filter=_limit(50, include_leave=True), **params)
        timeline = _timeline(body, room_id, "leave")
        assert _ids(timeline["events"]) == up_to_leave
        assert timeline["limited"] is False
        short = _timeline(
            await carol.sync(filter=_limit(5, include_leave=True), **params), room_id, "leave"
        )
        assert _ids(short["events"]) == [*earlier, join, inside, leave]
        assert short["limited"] is True
        assert after not in _ids(short["events"])


async def test_selective_filter_reaches_before_the_join(hs: HomeserverHarness) -> None:
    """A types filter on the timeline: the earlier messages still fill it."""
    alice = await make_user(hs, "alice")
    carol = await make_user(hs, "carol")
    room_id = await _room(alice, "shared")
    sent = [await alice.send(room_id, f"m{i}") for i in range(3)]
    await carol.join(room_id)
    flt = json.dumps({"room": {"timeline": {"limit": 2, "types": ["m.room.message"]}}})
    timeline = _timeline(await carol.sync(filter=flt), room_id)
    assert _ids(timeline["events"]) == sent[-2:]
    assert timeline["limited"] is True
    flt = json.dumps({"room": {"timeline": {"limit": 10, "types": ["m.room.message"]}}})
    timeline = _timeline(await carol.sync(filter=flt), room_id)
    assert _ids(timeline["events"]) == sent
    assert timeline["limited"] is False


@pytest.mark.parametrize("messages_after", [0, 50])
async def test_current_state_from_the_gap_appears_in_the_rejoin_timeline(
    hs: HomeserverHarness, messages_after: int
) -> None:
    """``joined``: a member who joined while carol was away is hidden history, but
    their join is the room's current state and shows in carol's timeline (as in
    Synapse), even behind many hidden messages; the messages stay hidden."""
    alice = await make_user(hs, "alice")
    carol = await make_user(hs, "carol")
    dave = await make_user(hs, "dave")
    room_id = await _room(alice, "joined")
    await carol.join(room_id)
    since = (await carol.sync())["next_batch"]
    await carol.leave(room_id)
    dave_join = await _joined(dave, alice, room_id)
    hidden = [await alice.send(room_id, f"h{i}") for i in range(messages_after)]
    rejoin = await _joined(carol, alice, room_id)
    for params in ({"since": since}, {}):
        timeline = _timeline(await carol.sync(**params), room_id)
        ids = _ids(timeline["events"])
        assert dave_join in ids and ids[-1] == rejoin
        assert not set(hidden) & set(ids)
        assert timeline["limited"] is ("since" in params)  # rejoined since: limited
    # a state event replaced since is no longer current: it stays hidden
    await dave.leave(room_id)
    await carol.leave(room_id)
    await _joined(carol, alice, room_id)
    ids = _ids(_timeline(await carol.sync(since=since), room_id)["events"])
    assert dave_join not in ids
