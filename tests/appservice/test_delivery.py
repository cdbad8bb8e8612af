"""Events pushed to application services: which events a service gets (its users,
its aliases, its rooms), in what order, in what shape."""

from __future__ import annotations

from pathlib import Path

from tests.appservice.conftest import FakeAppService, homeserver_with
from tests.appservice.delivery_support import (
    bridge,
    caught_up,
    make_ghost,
    queue,
    wait_for_events,
)
from tests.conftest import HarnessFactory, HomeserverHarness
from tests.rooms.helpers import make_user


async def test_room_with_a_ghost_is_pushed_and_other_rooms_are_not(
    as_hs: HomeserverHarness, appservice: tuple[FakeAppService, str]
) -> None:
    service, _ = appservice
    alice = await make_user(as_hs, "alice")
    ghost = await make_ghost(as_hs, "_bridge_bob")
    private = await alice.create_room(name="not bridged")
    quiet = await alice.send(private, "nobody bridged here")
    room_id = await alice.create_room(preset="public_chat")
    await alice.invite(room_id, ghost.user_id)
    await ghost.join(room_id)
    hello = await alice.send(room_id, "hello bridge")
    await wait_for_events(service, [hello])
    events = service.events()
    ids = [e["event_id"] for e in events]
    assert quiet not in ids
    assert all(e["room_id"] != private for e in events)
    # the invite and the join of the ghost (its membership) came first, in order
    kinds = [(e["type"], e.get("state_key"), e["content"].get("membership")) for e in events]
    assert kinds.index(("m.room.member", ghost.user_id, "invite")) < kinds.index(
        ("m.room.member", ghost.user_id, "join")
    )
    assert ids.index(hello) == len(ids) - 1
    message = events[-1]
    # client format, as /sync serves it
    assert message["sender"] == alice.user_id
    assert message["content"] == {"msgtype": "m.text", "body": "hello bridge"}
    assert message["type"] == "m.room.message"
    assert "origin_server_ts" in message and "unsigned" in message
    assert "hashes" not in message and "signatures" not in message
    # transaction IDs are numeric and increasing
    txn_ids = [int(txn_id) for txn_id, _ in service.transactions]
    assert txn_ids == sorted(txn_ids) and len(set(txn_ids)) == len(txn_ids)
    # the hs_token was used (the fake refuses anything else)
    assert all(not method.startswith("X") for method, _ in service.requests)


async def test_events_of_the_ghost_itself_are_pushed(
    as_hs: HomeserverHarness, appservice: tuple[FakeAppService, str]
) -> None:
    service, _ = appservice
    alice = await make_user(as_hs, "alice")
    ghost = await make_ghost(as_hs, "_bridge_carol")
    room_id = await alice.create_room(preset="public_chat")
    await ghost.join(room_id)
    sent = await ghost.send(room_id, "from the other network")
    await wait_for_events(service, [sent])


async def test_room_with_a_bridge_alias_is_pushed(
    make_homeserver: HarnessFactory, appservice: tuple[FakeAppService, str], tmp_path: Path
) -> None:
    service, url = appservice
    raw = bridge(url)
    raw["namespaces"]["aliases"].append({"regex": "#irc_.*:test.local", "exclusive": False})
    hs = await homeserver_with(make_homeserver, tmp_path, raw)
    alice = await make_user(hs, "alice")
    other = await alice.create_room(preset="public_chat", room_alias_name="elsewhere")
    quiet = await alice.send(other, "not for the bridge")
    room_id = await alice.create_room(preset="public_chat", room_alias_name="irc_matrix")
    sent = await alice.send(room_id, "aliased room")
    await wait_for_events(service, [sent])
    assert quiet not in {e["event_id"] for e in service.events()}


async def test_room_with_a_canonical_alias_of_the_bridge_is_pushed(
    make_homeserver: HarnessFactory, appservice: tuple[FakeAppService, str], tmp_path: Path
) -> None:
    service, url = appservice
    raw = bridge(url)
    raw["namespaces"]["aliases"].append({"regex": "#irc_.*:remote.example", "exclusive": False})
    hs = await homeserver_with(make_homeserver, tmp_path, raw)
    alice = await make_user(hs, "alice")
    room_id = await alice.create_room(preset="public_chat")
    quiet = await alice.send(room_id, "before the alias")
    await caught_up(hs)
    # a canonical alias can name any alias (here another server's)
    await alice.request(
        "PUT",
        f"/rooms/{room_id}/state/m.room.canonical_alias/",
        {"alt_aliases": ["#irc_x:remote.example"]},
        expect=None,
    )
    sent = await alice.send(room_id, "after the alias")
    await wait_for_events(service, [sent])
    assert quiet not in {e["event_id"] for e in service.events()}


async def test_room_namespace_is_pushed(
    make_homeserver: HarnessFactory, appservice: tuple[FakeAppService, str], tmp_path: Path
) -> None:
    service, url = appservice
    plain = await make_homeserver()
    alice = await make_user(plain, "alice")
    room_id = await alice.create_room(preset="public_chat")
    other = await alice.create_room(preset="public_chat")
    await plain.client.close()
    raw = bridge(url)
    raw["namespaces"]["rooms"] = [{"regex": room_id.replace(".", r"\."), "exclusive": False}]
    hs = await homeserver_with(make_homeserver, tmp_path, raw)
    alice.hs = hs
    quiet = await alice.send(other, "other room")
    sent = await alice.send(room_id, "namespaced room")
    await wait_for_events(service, [sent])
    assert quiet not in {e["event_id"] for e in service.events()}


async def test_a_new_service_starts_from_now(
    make_homeserver: HarnessFactory, appservice: tuple[FakeAppService, str], tmp_path: Path
) -> None:
    """History from before the service was registered is not pushed."""
    service, url = appservice
    plain = await make_homeserver()
    alice = await make_user(plain, "alice")
    room_id = await alice.create_room(preset="public_chat")
    old = await alice.send(room_id, "before the bridge")
    await plain.client.close()
    raw = bridge(url)
    raw["namespaces"]["rooms"] = [{"regex": "!.*", "exclusive": False}]
    hs = await homeserver_with(make_homeserver, tmp_path, raw)
    alice.hs = hs
    new = await alice.send(room_id, "after")
    await wait_for_events(service, [new])
    assert old not in {e["event_id"] for e in service.events()}


async def test_many_events_are_batched_in_order(
    as_hs: HomeserverHarness, appservice: tuple[FakeAppService, str]
) -> None:
    service, _ = appservice
    alice = await make_user(as_hs, "alice")
    ghost = await make_ghost(as_hs, "_bridge_dave")
    room_id = await alice.create_room(preset="public_chat")
    await ghost.join(room_id)
    await wait_for_events(service, [])
    service.down = True  # let a backlog build up
    sent = [await alice.send(room_id, f"message {i}") for i in range(130)]
    service.down = False
    as_hs.clock.advance(600)
    queue(as_hs).wake()
    await wait_for_events(service, sent)
    messages = [e["event_id"] for e in service.events() if e["type"] == "m.room.message"]
    assert messages == sent
    assert max(len(body["events"]) for _, body in service.transactions) <= 100
    assert len(service.transactions) < 130  # batched, not one per event
