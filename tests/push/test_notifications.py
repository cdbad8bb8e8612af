"""Evaluation on new events, unread counts (per room and per thread), read receipts,
/sync's unread_notifications and GET /notifications."""

from __future__ import annotations

from typing import Any

from homeserver.push.notifications import PushEvaluator
from tests.conftest import HarnessFactory, HomeserverHarness
from tests.rooms.helpers import User, make_user


def evaluator(hs: HomeserverHarness) -> PushEvaluator:
    return hs.server.client.push.evaluator


async def pair(hs: HomeserverHarness, *, extra: int = 0) -> tuple[User, User, str]:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room(preset="public_chat", name="Lobby")
    await bob.join(room_id)
    for n in range(extra):
        other = await make_user(hs, f"user{n}")
        await other.join(room_id)
    return alice, bob, room_id


async def counts(hs: HomeserverHarness, user: User, room_id: str) -> Any:
    return (await evaluator(hs).unread_counts(user.user_id, [room_id]))[room_id]


async def test_counts_rise_and_reset_with_receipts(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await pair(hs)
    assert (await counts(hs, alice, room_id)).notification == 0
    first = await bob.send(room_id, "one")
    await bob.send(room_id, "two")
    mention = await bob.send(
        room_id, "hey", "m.room.message", **{"m.mentions": {"user_ids": [alice.user_id]}}
    )
    c = await counts(hs, alice, room_id)
    assert (c.notification, c.highlight) == (3, 1)
    assert c.main == (3, 1) and c.per_thread == {}
    # the sender is never notified of their own events
    assert (await counts(hs, bob, room_id)).notification == 0
    await evaluator(hs).on_read_receipt(alice.user_id, room_id, first, None)
    c = await counts(hs, alice, room_id)
    assert (c.notification, c.highlight) == (2, 1)
    # an older receipt does not make things unread again
    await evaluator(hs).on_read_receipt(alice.user_id, room_id, first, None)
    await evaluator(hs).on_read_receipt(alice.user_id, room_id, mention, None)
    c = await counts(hs, alice, room_id)
    assert (c.notification, c.highlight) == (0, 0)
    # unknown events and events of other rooms are ignored
    await evaluator(hs).on_read_receipt(alice.user_id, room_id, "$nope", None)


async def test_notices_edits_and_reactions_do_not_count(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await pair(hs, extra=1)
    target = await bob.send(room_id, "base")
    await bob.send(room_id, "bot", msgtype="m.notice")
    await bob.send(
        room_id,
        "* edit",
        "m.room.message",
        **{"m.new_content": {"msgtype": "m.text", "body": "edit"}},
        **{"m.relates_to": {"rel_type": "m.replace", "event_id": target}},
    )
    await bob.request(
        "PUT",
        f"/rooms/{room_id}/send/m.reaction/r1",
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": "x"}},
    )
    c = await counts(hs, alice, room_id)
    assert c.notification == 1


async def test_room_mention_needs_power(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await pair(hs, extra=1)
    await bob.send(room_id, "@room", "m.room.message", **{"m.mentions": {"room": True}})
    assert (await counts(hs, alice, room_id)).highlight == 0
    await alice.send(room_id, "@room", "m.room.message", **{"m.mentions": {"room": True}})
    assert (await counts(hs, bob, room_id)).highlight == 1


async def test_per_thread_counts_and_threaded_receipts(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await pair(hs)
    root = await bob.send(room_id, "root")
    relates: dict[str, Any] = {"m.relates_to": {"rel_type": "m.thread", "event_id": root}}
    in_thread = await bob.send(room_id, "reply 1", "m.room.message", **relates)
    await bob.send(room_id, "reply 2", "m.room.message", **relates)
    await bob.send(room_id, "main again")
    c = await counts(hs, alice, room_id)
    assert c.notification == 4
    assert c.main == (2, 0)
    assert c.per_thread == {root: (2, 0)}
    # a reaction to a threaded event belongs to the thread (relations are followed)
    await evaluator(hs).on_read_receipt(alice.user_id, room_id, in_thread, root)
    c = await counts(hs, alice, room_id)
    assert c.per_thread == {root: (1, 0)} and c.main == (2, 0)
    await evaluator(hs).on_read_receipt(alice.user_id, room_id, root, "main")
    c = await counts(hs, alice, room_id)
    assert c.main == (1, 0) and c.per_thread == {root: (1, 0)}
    # an unthreaded receipt reads every thread up to it
    last = await bob.send(room_id, "latest")
    await evaluator(hs).on_read_receipt(alice.user_id, room_id, last, None)
    c = await counts(hs, alice, room_id)
    assert (c.notification, c.main, c.per_thread) == (0, (0, 0), {})
    assert evaluator(hs)
    thread_of = await evaluator(hs).thread_of(
        (await hs.server.stores.events.get_event(in_thread)).event  # type: ignore[union-attr]
    )
    assert thread_of == root


async def test_invite_notifies_the_invitee(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    bob = await make_user(hs, "bob")
    room_id = await alice.create_room()
    await alice.invite(room_id, bob.user_id)
    page, _ = await evaluator(hs).notifications(bob.user_id, None, 10, False)
    assert len(page) == 1
    assert page[0][0].action.room_id == room_id
    assert page[0][0].action.actions == ["notify", {"set_tweak": "sound", "value": "default"}]


async def test_display_name_condition_uses_room_member_names(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await pair(hs, extra=1)
    await alice.request(
        "PUT",
        "/pushrules/global/override/name",
        {
            "conditions": [{"kind": "contains_display_name"}],
            "actions": ["notify", {"set_tweak": "highlight"}],
        },
    )
    await alice.request(
        "PUT",
        f"/rooms/{room_id}/state/m.room.member/{alice.user_id}",
        {"membership": "join", "displayname": "Queen Alice"},
    )
    await bob.send(room_id, "hello queen alice!")
    await bob.send(room_id, "hello queen")
    c = await counts(hs, alice, room_id)
    assert (c.notification, c.highlight) == (2, 1)


async def test_sync_carries_unread_notifications(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await pair(hs)
    await bob.send(room_id, "one")
    await bob.send(
        room_id, "two", "m.room.message", **{"m.mentions": {"user_ids": [alice.user_id]}}
    )
    body = await alice.sync()
    room = body["rooms"]["join"][room_id]
    assert room["unread_notifications"] == {"notification_count": 2, "highlight_count": 1}


async def test_get_notifications(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await pair(hs)
    ids = [await bob.send(room_id, f"m{n}") for n in range(3)]
    mention = await bob.send(
        room_id, "hi", "m.room.message", **{"m.mentions": {"user_ids": [alice.user_id]}}
    )
    await evaluator(hs).on_read_receipt(alice.user_id, room_id, ids[0], None)
    body = await alice.request("GET", "/notifications")
    notes = body["notifications"]
    assert [n["event"]["event_id"] for n in notes] == [mention, ids[2], ids[1], ids[0]]
    assert [n["read"] for n in notes] == [False, False, False, True]
    assert notes[0]["room_id"] == room_id
    assert notes[0]["event"]["content"]["body"] == "hi"
    assert "room_id" not in notes[0]["event"]
    assert {"set_tweak": "highlight"} in notes[0]["actions"]
    assert isinstance(notes[0]["ts"], int)
    assert notes[0]["profile_tag"] is None
    assert "next_token" not in body
    page = await alice.request("GET", "/notifications?limit=2")
    assert len(page["notifications"]) == 2
    rest = await alice.request("GET", f"/notifications?limit=2&from={page['next_token']}")
    assert [n["event"]["event_id"] for n in rest["notifications"]] == [ids[1], ids[0]]
    highlights = await alice.request("GET", "/notifications?only=highlight")
    assert [n["event"]["event_id"] for n in highlights["notifications"]] == [mention]
    for query in ("limit=abc", "limit=0", "from=xyz"):
        data = await alice.request("GET", f"/notifications?{query}", expect=400)
        assert data["errcode"] == "M_INVALID_PARAM"
    resp = await hs.client.get("/_matrix/client/v3/notifications")
    assert resp.status == 401


async def test_push_actions_commit_with_their_event_and_survive_restart(
    make_homeserver: HarnessFactory,
) -> None:
    first = await make_homeserver()
    alice, bob, room_id = await pair(first)
    event_id = await bob.send(room_id, "hello alice")
    # Evaluated inside the event's transaction: the row exists as soon as the send returns.
    rows = await first.server.db.fetchall(
        "t", "SELECT user_id FROM event_push_actions WHERE event_id = $1", event_id
    )
    assert rows == [(alice.user_id,)]
    await first.client.close()
    second = await make_homeserver()
    alice.hs = second
    notes = (await alice.request("GET", "/notifications"))["notifications"]
    assert [n["event"]["event_id"] for n in notes] == [event_id]


async def test_read_receipt_through_the_api_resets_sync_counts(hs: HomeserverHarness) -> None:
    alice, bob, room_id = await pair(hs)
    await bob.send(room_id, "one")
    last = await bob.send(room_id, "two")
    body = await alice.sync()
    assert body["rooms"]["join"][room_id]["unread_notifications"]["notification_count"] == 2
    await alice.request("POST", f"/rooms/{room_id}/receipt/m.read/{last}", {})
    body = await alice.sync()
    assert body["rooms"]["join"][room_id]["unread_notifications"] == {
        "notification_count": 0,
        "highlight_count": 0,
    }


async def test_room_state_derived_from_changes_equals_the_room_loaded_whole(
    hs: HomeserverHarness,
) -> None:
    """Push evaluation derives a room's members and levels from the state it changed
    from; after joins, leaves, renames, bans and power changes, that is exactly what
    loading the room's state whole gives."""
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room(preset="public_chat")
    others = [await make_user(hs, f"user{i}") for i in range(4)]
    for user in others:
        await user.join(room_id)
    await others[0].request(
        "PUT",
        f"/rooms/{room_id}/state/m.room.member/{others[0].user_id}",
        {"membership": "join", "displayname": "Zero"},
    )
    await others[1].leave(room_id)
    await alice.request("POST", f"/rooms/{room_id}/ban", {"user_id": others[2].user_id})
    levels = await alice.state(room_id, "m.room.power_levels")
    levels["users"] = {**levels.get("users", {}), others[3].user_id: 50}
    levels["notifications"] = {"room": 40}
    await alice.request("PUT", f"/rooms/{room_id}/state/m.room.power_levels", levels)
    await alice.send(room_id, "hello")

    stores = hs.server.stores
    latest = await stores.events.get_event(
        (await stores.events.get_forward_extremities(room_id))[0]
    )
    assert latest is not None and latest.state_group is not None
    push = evaluator(hs)
    derived = await push.room_state(room_id, latest.state_group)
    push._room_states.clear()
    loaded = await push.room_state(room_id, latest.state_group)
    assert derived is not loaded
    assert derived.local_joined == loaded.local_joined
    assert set(derived.local_joined) == {alice.user_id, others[0].user_id, others[3].user_id}
    assert derived.member_count == loaded.member_count == 3
    assert derived.display_names == loaded.display_names
    assert derived.display_names[others[0].user_id] == "Zero"
    assert derived.notification_levels == loaded.notification_levels == {"room": 40}
    assert derived.power_levels is not None and loaded.power_levels is not None
    for user in (alice, *others):
        assert derived.power_levels.user_level(user.user_id) == loaded.power_levels.user_level(
            user.user_id
        )
