"""A restart keeps every room: memberships, state, history and pagination tokens.

The "restart" is a second homeserver built over the same database (nothing is kept
in memory across), as in the other restart tests.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import HarnessFactory
from tests.rooms.helpers import User, make_user


async def history(user: User, room_id: str, start: str | None = None) -> list[dict[str, Any]]:
    """Every event of the room the user may see, newest first, read 5 at a time."""
    events: list[dict[str, Any]] = []
    params = {"dir": "b", "limit": "5"}
    if start is not None:
        params["from"] = start
    for _ in range(100):
        page = await user.request("GET", f"/rooms/{room_id}/messages", params=params)
        events += page["chunk"]
        if "end" not in page:
            return events
        params["from"] = page["end"]
    raise AssertionError("/messages did not come to an end")


async def snapshot(user: User, rooms: list[str]) -> dict[str, Any]:
    """What the user can read of each room, through the API."""
    result: dict[str, Any] = {
        "joined": sorted((await user.request("GET", "/joined_rooms"))["joined_rooms"])
    }
    for room_id in rooms:
        result[room_id] = {
            "history": await history(user, room_id),
            "state": sorted(
                (e["type"], e["state_key"], e["event_id"])
                for e in await user.request("GET", f"/rooms/{room_id}/state")
            ),
        }
    return result


async def test_rooms_and_history_survive_a_restart(make_homeserver: HarnessFactory) -> None:
    first = await make_homeserver()
    alice, bob = await make_user(first, "alice"), await make_user(first, "bob")
    group = await alice.create_room(preset="public_chat", name="Group", room_alias_name="group")
    await bob.join(group)
    dm = await alice.create_room(preset="trusted_private_chat", invite=[bob.user_id])
    await bob.join(dm)
    left = await alice.create_room(preset="public_chat", name="Left behind")
    await bob.join(left)
    for i in range(12):
        await (alice if i % 2 else bob).send(group, f"group {i}")
    edited = await alice.send(dm, "helo")
    await alice.send(
        dm,
        "* hello",
        **{
            "m.new_content": {"msgtype": "m.text", "body": "hello"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": edited},
        },
    )
    redacted = await bob.send(dm, "oops")
    await bob.request("PUT", f"/rooms/{dm}/redact/{redacted}/r1", {})
    await bob.send(left, "bye")
    await bob.leave(left)
    await alice.send(left, "after bob left")
    invited_only = await alice.create_room(invite=[bob.user_id])
    rooms = [group, dm, left]
    before = {u.user_id: await snapshot(u, rooms) for u in (alice, bob)}
    # A token from the middle of the group's history, handed out before the restart.
    middle = await alice.request(
        "GET", f"/rooms/{group}/messages", params={"dir": "b", "limit": "6"}
    )

    second = await make_homeserver()  # a fresh process over the same database
    alice.hs = bob.hs = second
    after = {u.user_id: await snapshot(u, rooms) for u in (alice, bob)}
    assert after == before
    assert before[alice.user_id]["joined"] == sorted([group, dm, left, invited_only])
    assert before[bob.user_id]["joined"] == sorted([group, dm])
    bodies = [
        e["content"].get("body")
        for e in after[bob.user_id][left]["history"]
        if e["sender"] == bob.user_id
    ]
    assert "bye" in bodies
    assert "after bob left" not in [
        e["content"].get("body") for e in after[bob.user_id][left]["history"]
    ]
    # The edit is still bundled, the redaction still applied.
    by_id = {e["event_id"]: e for e in after[alice.user_id][dm]["history"]}
    assert by_id[edited]["unsigned"]["m.relations"]["m.replace"]["content"]["body"] == "* hello"
    assert by_id[redacted]["content"] == {}
    # The pre-restart token goes on where it stopped.
    rest = await history(alice, group, start=middle["end"])
    full = after[alice.user_id][group]["history"]
    assert [e["event_id"] for e in middle["chunk"] + rest] == [e["event_id"] for e in full]
    # The invite is still there for bob, and still usable.
    assert invited_only in (await bob.sync())["rooms"]["invite"]
    await bob.join(invited_only)
    # New events follow the old ones, in the same rooms, under the same alias.
    resolved = await bob.request("GET", "/directory/room/%23group:test.local")
    assert resolved["room_id"] == group
    new = await bob.send(group, "after restart")
    latest = await history(alice, group)
    assert latest[0]["event_id"] == new
    assert [e["event_id"] for e in latest[1:]] == [e["event_id"] for e in full]
