"""Room summaries where the current state does not move one event at a time: a
remote join replacing it wholesale, backfilled history (never a bump), and a fork
resolved when a partition heals."""

from __future__ import annotations

from urllib.parse import quote

from tests.federation.membership_helpers import join_via
from tests.federation.rooms import settle
from tests.federation.servers import ServerFactory
from tests.federation.test_partition import cut_off, heal, put_state
from tests.rooms.helpers import make_user
from tests.sliding_sync.test_summaries import position, summary_of


async def test_a_remote_join_and_backfill(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room_id = await alice.create_room(preset="public_chat", name="Remote")
    await put_state(alice, room_id, "m.room.history_visibility", {"history_visibility": "shared"})
    await put_state(alice, room_id, "m.room.avatar", {"url": "mxc://a/pic"})
    for i in range(8):
        await alice.send(room_id, f"early {i}")
    await join_via(bob, room_id, a)
    await settle(a, b)

    joined = await summary_of(b.server, room_id)
    assert (joined.name, joined.avatar, joined.joined_count) == ("Remote", "mxc://a/pic", 2)
    # bob's join is no bump; nothing before it is live on b
    assert joined.bump_stamp == 0
    at_a = await summary_of(a.server, room_id)
    assert (at_a.name, at_a.joined_count) == ("Remote", 2)

    # Paging back fetches the history over federation: still no bump.
    page = await bob.request("GET", f"/rooms/{quote(room_id)}/messages?dir=b&limit=30")
    assert any(e["type"] == "m.room.message" for e in page["chunk"])
    assert (await summary_of(b.server, room_id)).bump_stamp == 0

    message = await alice.send(room_id, "live")
    await settle(a, b)
    assert (await summary_of(b.server, room_id)).bump_stamp == await position(b.server, message)


async def test_a_fork_resolved_when_a_partition_heals(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    servers = [a, b]
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    room_id = await alice.create_room(preset="public_chat", name="Before")
    await join_via(bob, room_id, a)
    levels = dict(await alice.state(room_id, "m.room.power_levels"))
    levels["users"] = {bob.user_id: 100}  # alice created the room (v12: no entry)
    await put_state(alice, room_id, "m.room.power_levels", levels)
    await settle(a, b)

    await cut_off(b)
    await put_state(alice, room_id, "m.room.name", {"name": "from a"})
    await put_state(alice, room_id, "m.room.avatar", {"url": "mxc://a/a"})
    await put_state(bob, room_id, "m.room.name", {"name": "from b"})
    await put_state(bob, room_id, "m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"})
    assert (await summary_of(a.server, room_id)).name == "from a"
    assert (await summary_of(b.server, room_id)).name == "from b"

    await heal(servers, b)
    await alice.send(room_id, "healed a")
    await settle(a, b)
    await bob.send(room_id, "healed b")
    await settle(a, b)

    # Both servers hold the same resolved state, and summaries that follow it.
    state_a = await a.server.stores.state.get_current_state(room_id)
    assert state_a == await b.server.stores.state.get_current_state(room_id)
    name = (await alice.state(room_id, "m.room.name"))["name"]
    for server in (a.server, b.server):
        summary = await summary_of(server, room_id)
        assert summary.name == name
        assert summary.avatar == "mxc://a/a"
        assert summary.is_encrypted
        assert summary.joined_count == 2
