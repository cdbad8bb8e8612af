"""Erased users (``POST /account/deactivate`` with ``erase: true``): what they sent is
served pruned to users who were not in the room when it was sent, whole to those who
were (as Synapse does), through /sync, /messages, /event and /context."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import HomeserverHarness
from tests.rooms.helpers import User, make_user


async def _deactivate(hs: HomeserverHarness, user: User, body: dict[str, Any]) -> None:
    first = await user.request("POST", "/account/deactivate", body, expect=401)
    auth = {
        "type": "m.login.password",
        "session": first["session"],
        "identifier": {"type": "m.id.user", "user": user.user_id},
        "password": "correct horse",
    }
    await user.request("POST", "/account/deactivate", {**body, "auth": auth})


def _timeline_event(sync: dict[str, Any], room: str, event_id: str) -> Any:
    events = sync["rooms"]["join"][room]["timeline"]["events"]
    return next(e for e in events if e["event_id"] == event_id)


async def _seen(user: User, room: str, event_id: str) -> list[Any]:
    """The event's content as /sync, /messages, /event and /context give it."""
    sync = await user.sync()
    messages = await user.request("GET", f"/rooms/{room}/messages?dir=b&limit=20")
    paged = next(e for e in messages["chunk"] if e["event_id"] == event_id)
    single = await user.request("GET", f"/rooms/{room}/event/{event_id}")
    context = await user.request("GET", f"/rooms/{room}/context/{event_id}")
    return [
        _timeline_event(sync, room, event_id)["content"],
        paged["content"],
        single["content"],
        context["event"]["content"],
    ]


@pytest.mark.parametrize("erase", [True, False])
async def test_erased_senders_events_are_pruned_for_later_joiners(
    hs: HomeserverHarness, erase: bool
) -> None:
    alice = await make_user(hs, "alice")
    member = await make_user(hs, "member")
    joiner = await make_user(hs, "joiner")
    room = await alice.create_room(preset="public_chat", room_version="10")
    await member.join(room)
    event_id = await alice.send(room, "body1")
    await joiner.join(room)
    original = {"msgtype": "m.text", "body": "body1"}
    assert await _seen(joiner, room, event_id) == [original] * 4

    await _deactivate(hs, alice, {"erase": erase} if erase else {})
    assert await _seen(member, room, event_id) == [original] * 4
    assert await _seen(joiner, room, event_id) == [{} if erase else original] * 4
    erased = await hs.server.stores.accounts.erased_among([alice.user_id, member.user_id])
    assert erased == ({alice.user_id} if erase else set())


async def test_erase_must_be_a_boolean(hs: HomeserverHarness) -> None:
    alice = await make_user(hs, "alice")
    err = await alice.request("POST", "/account/deactivate", {"erase": "yes"}, expect=400)
    assert err["errcode"] == "M_BAD_JSON"
    assert (await alice.request("GET", "/account/whoami"))["user_id"] == alice.user_id
    assert await hs.server.stores.accounts.erased_among([alice.user_id]) == set()
