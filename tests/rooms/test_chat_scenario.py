"""Two people chat the way a client drives a server: a direct chat and a group, each
side following along with incremental /sync, scrolling back with /messages, an edit,
a redaction, a leave and a rejoin. Everything goes through the client-server API."""

from __future__ import annotations

from typing import Any

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user


class Follower:
    """A client's view: it keeps its sync token and collects timeline events per room."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.since: str | None = None
        self.timeline: dict[str, list[dict[str, Any]]] = {}
        self.invites: set[str] = set()
        self.left: set[str] = set()

    async def sync(self) -> dict[str, Any]:
        params: dict[str, Any] = {"timeout": 0, "filter": '{"room":{"timeline":{"limit":50}}}'}
        if self.since is not None:
            params["since"] = self.since
        body: dict[str, Any] = await self.user.sync(**params)
        self.since = body["next_batch"]
        rooms = body.get("rooms", {})
        for room_id, room in rooms.get("join", {}).items():
            self.timeline.setdefault(room_id, []).extend(room["timeline"]["events"])
        self.invites |= set(rooms.get("invite", {}))
        for room_id, room in rooms.get("leave", {}).items():
            self.left.add(room_id)
            self.timeline.setdefault(room_id, []).extend(room["timeline"]["events"])
        return body

    def bodies(self, room_id: str) -> list[str]:
        return [
            e["content"]["body"]
            for e in self.timeline.get(room_id, [])
            if e["type"] == "m.room.message" and "body" in e["content"]
        ]


async def scroll_back(user: User, room_id: str, page: int = 4) -> list[dict[str, Any]]:
    """Every message event of the room that /messages gives backwards from the end."""
    events: list[dict[str, Any]] = []
    start = (await user.sync(filter='{"room":{"timeline":{"limit":1}}}'))["rooms"]["join"][room_id][
        "timeline"
    ]
    events.extend(start["events"])
    token = start["prev_batch"]
    while token:
        body = await user.request(
            "GET", f"/rooms/{room_id}/messages", params={"dir": "b", "from": token, "limit": page}
        )
        events.extend(body["chunk"])
        token = body.get("end")
        if not body["chunk"]:
            break
    return events


async def test_two_people_chat_in_a_dm_and_a_group(hs: HomeserverHarness) -> None:
    alice_user = await make_user(hs, "alice")
    bob_user = await make_user(hs, "bob")
    carol_user = await make_user(hs, "carol")
    alice, bob = Follower(alice_user), Follower(bob_user)
    await alice.sync()
    await bob.sync()

    # A direct chat: Alice invites Bob, Bob sees the invite and joins.
    dm = await alice_user.create_room(
        preset="trusted_private_chat", is_direct=True, invite=[bob_user.user_id]
    )
    await bob.sync()
    assert dm in bob.invites
    await bob_user.join(dm)
    for n in range(12):
        sender = alice_user if n % 2 == 0 else bob_user
        await sender.send(dm, f"dm {n}")
    await alice.sync()
    await bob.sync()
    expected = [f"dm {n}" for n in range(12)]
    assert alice.bodies(dm) == expected
    assert bob.bodies(dm) == expected

    # Scrolling back gives the whole conversation, newest first, in the same order.
    history = [
        e["content"]["body"]
        for e in await scroll_back(bob_user, dm)
        if e["type"] == "m.room.message"
    ]
    assert history == list(reversed(expected))

    # A group: Alice makes a public room, Bob and Carol join by alias.
    group = await alice_user.create_room(
        preset="public_chat", room_alias_name="family", name="Family"
    )
    alias = "#family:test.local"
    await bob_user.join(alias)
    await carol_user.join(alias)
    hello = await carol_user.send(group, "hello all")
    typo = await bob_user.send(group, "see you at 8")
    await alice.sync()
    await bob.sync()
    assert alice.bodies(group) == ["hello all", "see you at 8"]

    # Bob edits his message: the edit arrives, and the original shows the edit.
    await bob_user.send(
        group,
        "* see you at 9",
        **{
            "m.new_content": {"msgtype": "m.text", "body": "see you at 9"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": typo},
        },
    )
    await alice.sync()
    edit = alice.timeline[group][-1]
    assert edit["content"]["m.relates_to"] == {"rel_type": "m.replace", "event_id": typo}
    original = await alice_user.request("GET", f"/rooms/{group}/event/{typo}")
    replaced = original["unsigned"]["m.relations"]["m.replace"]
    assert replaced["event_id"] == edit["event_id"]

    # Carol redacts her message: Alice's next sync has the redaction, and the message
    # is served redacted from then on.
    await carol_user.request("PUT", f"/rooms/{group}/redact/{hello}/r1", {"reason": "oops"})
    await alice.sync()
    redaction = alice.timeline[group][-1]
    assert redaction["type"] == "m.room.redaction"
    assert redaction.get("redacts", redaction["content"].get("redacts")) == hello
    served = await alice_user.request("GET", f"/rooms/{group}/event/{hello}")
    assert served["content"] == {}
    assert served["unsigned"]["redacted_because"]["event_id"] == redaction["event_id"]
    scrolled = {e["event_id"]: e for e in await scroll_back(alice_user, group)}
    assert scrolled[hello]["content"] == {}

    # Bob leaves: the room moves to his leave section and he no longer gets its messages.
    await bob_user.leave(group)
    await bob.sync()
    assert group in bob.left
    await alice_user.send(group, "bob has gone")
    await bob.sync()
    assert "bob has gone" not in bob.bodies(group)
    joined = await bob_user.request("GET", "/joined_rooms")
    assert group not in joined["joined_rooms"] and dm in joined["joined_rooms"]

    # ... and rejoins: the room is back, and what is said after reaches him.
    await bob_user.join(group)
    await alice_user.send(group, "welcome back")
    body = await bob.sync()
    assert group in body["rooms"]["join"]
    assert "welcome back" in bob.bodies(group)
    members = await alice_user.request("GET", f"/rooms/{group}/joined_members")
    assert set(members["joined"]) == {alice_user.user_id, bob_user.user_id, carol_user.user_id}

    # The direct chat was untouched by all of it.
    await alice_user.send(dm, "still here")
    await bob.sync()
    assert bob.bodies(dm)[-1] == "still here"
